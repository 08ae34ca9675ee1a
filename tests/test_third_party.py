"""A space from another installed package, registered under ``discover.spaces`` with its
own export adapter, is run, browsed and exported with no change to the engine."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SPACE_MODULE = '''
"""Fit f(x) to 2x + 1: a third-party space with its own export adapter."""
import math
import time
from pathlib import Path

import numpy as np

from discover.space import MEAN_FITNESS_DOC, OK, ExportAdapter, Space, TaskResult

HERE = Path(__file__).resolve().parent
RANGES = {"left": (-2.0, 0.0), "right": (0.0, 2.0), "far": (2.0, 4.0)}


def curve(algorithm, xs):
    """What the package's programs offer as ``load_algorithm(name).curve(xs)``."""
    f = algorithm.functions(("f",))["f"]
    return [float(f(x)) for x in xs]


class LineSpace(Space):
    name = "line_fit"
    doc = "Define f(x: float) -> float close to an unknown line. " + MEAN_FITNESS_DOC
    required_functions = ("f",)
    seeds_dir = HERE / "seeds"
    train_tasks = ("left", "right")
    held_out_tasks = ("far",)
    reference_seed = "flat"
    export_adapter = ExportAdapter(code=HERE / "adapter.py.tmpl", tests=HERE / "test_adapter.py.tmpl",
                                   readme_usage=HERE / "usage.md.tmpl", score_note=" 0 means a perfect line.",
                                   methods={"curve": curve})

    def evaluate(self, source, task, seed=0, **options):
        start = time.perf_counter()
        ns = {"__name__": "candidate"}
        exec(compile(source, "<candidate>", "exec"), ns)
        xs = np.linspace(*RANGES[task], 7)
        err = float(np.mean([(float(ns["f"](float(x))) - (2 * x + 1)) ** 2 for x in xs]))
        return TaskResult(status=OK, metrics={"score": -math.log10(err + 1e-12)}, curve=[[0.0, err]],
                          wall_time=time.perf_counter() - start, device="cpu")

    def probe(self, namespace):
        return np.array([float(namespace["f"](x)) for x in (-1.0, 0.5, 3.0)])


SPACE = LineSpace()
'''

ADAPTER = '''
def predict(x):
    """The evolved line at ``x``."""
    return ALGORITHM.curve([x])[0]


__all__ = ["ALGORITHM", "METADATA", "SOURCE", "predict"]
'''

ADAPTER_TEST = '''

def test_predict_is_the_programs_f():
    f = package.ALGORITHM.functions(("f",))["f"]
    assert package.predict(1.5) == float(f(1.5))
'''


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    pkg = site / "line_fit_space"
    (pkg / "seeds").mkdir(parents=True)
    (pkg / "__init__.py").write_text(SPACE_MODULE)
    (pkg / "adapter.py.tmpl").write_text(ADAPTER)
    (pkg / "test_adapter.py.tmpl").write_text(ADAPTER_TEST)
    (pkg / "usage.md.tmpl").write_text("```python\nimport $module\n$module.predict(2.0)\n```\n")
    (pkg / "seeds" / "flat.py").write_text("# EVOLVE-BLOCK-START\ndef f(x):\n    return 0.5 * x + 0.3\n"
                                           "# EVOLVE-BLOCK-END\n")
    (pkg / "seeds" / "steep.py").write_text("# EVOLVE-BLOCK-START\ndef f(x):\n    return 3.0 * x - 0.4\n"
                                            "# EVOLVE-BLOCK-END\n")
    info = site / "line_fit_space-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: line-fit-space\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[discover.spaces]\nline_fit = line_fit_space:SPACE\n")
    return site


def discover(site, *args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "DISCOVER_CACHE": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, "-m", "discover.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_third_party_space_runs_browses_and_exports_through_its_own_adapter(site, tmp_path):
    db = f"sqlite:///{tmp_path / 'tp.db'}"
    listed = {s["name"]: s for s in json.loads(discover(site, "spaces", "--json", cwd=tmp_path))}
    assert listed["line_fit"]["available"] and listed["line_fit"]["seeds"] == ["flat", "steep"]
    discover(site, "run", "--space", "line_fit", "--budget", "8", "--workers", "1", "--db", db, "--run-name", "tp",
             cwd=tmp_path)
    top = json.loads(discover(site, "top", "--run", "tp", "--json", "--db", db, cwd=tmp_path))
    best = top[0]
    assert len(top) >= 6 and best["held_out_score"] is not None
    shown = json.loads(discover(site, "show", str(best["id"]), "--json", "--db", db, cwd=tmp_path))
    assert {e["device"] for e in shown["evaluations"]} == {"cpu"}
    discover(site, "lineage", str(best["id"]), "--db", db, cwd=tmp_path)
    out = tmp_path / "exported"
    discover(site, "export", str(best["id"]), "--out", str(out), "--name", "my_line", "--workers", "1", "--db", db,
             cwd=tmp_path)
    init = next(out.glob("*/__init__.py")).read_text()
    assert "def predict(x):" in init                                 # the space's own adapter code
    assert "test_predict_is_the_programs_f" in (out / "tests" / "test_algorithm.py").read_text()
    assert "0 means a perfect line." in (out / "README.md").read_text()
    # The exported package, imported beside the third-party space, offers the space's method.
    check = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(out)!r}]
        import {next(out.glob('*/__init__.py')).parent.name} as package
        source = package.SOURCE
        ns = {{}}
        exec(source, ns)
        assert package.predict(1.5) == float(ns["f"](1.5)) == package.ALGORITHM.curve([1.5])[0]
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr
