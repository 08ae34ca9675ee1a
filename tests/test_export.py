"""`discover export`, installed algorithms (`discover.algorithms`) and the OpenSpiel-style
CFR solver.

Fast tests export programs of the toy space (``tests/toy_space.py``: a program defines
``f(x)``, its score on task ``x`` with seed ``s`` is ``f(x) + s``), so every expected number
is a formula. The CFR adapter is checked against OpenSpiel's own solvers. The slow test
exports a cfr_variants program from a small real run, installs the package into a fresh
virtual environment, runs the package's own tests there, and checks that its solver's
exploitability on a game outside the space's tasks equals what `discover eval` reports.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from discover.space import TaskResult
from discover.store import Store
from tests import toy_space
from tests.test_views import build_small_run, cli_main, one_error_line  # noqa: F401  (cli_main: fixture)

REPO = Path(__file__).resolve().parents[1]
TOY = f"{toy_space.__name__}:SPACE"
SEED_SOURCE = "def f(x):\n    return x\n"
DOUBLE_SOURCE = "def f(x):\n    return 2 * x\n"
NAN_SOURCE = "def f(x):\n    return float('nan')\n"


def sha256_normalised(source: str) -> str:
    text = "\n".join(line.rstrip() for line in source.splitlines()).rstrip("\n")
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def toy_run(tmp_path):
    """A toy run: a seed ``f(x) = x`` and its child ``f(x) = 2x``, plus a program that
    returns NaN; train evaluations with seed 0 (score f(x))."""
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    store = Store.open(url)
    run = store.create_run("toy", TOY, config={"eval_options": {}}, seed=0, budget=3, mutator="offline", versions={})
    ids = {}
    for name, src, gen, edit, parents, k in (("seed", SEED_SOURCE, 0, "seed: identity", [], 1.0),
                                              ("double", DOUBLE_SOURCE, 1, "multiply by two", ["seed"], 2.0),
                                              ("nan", NAN_SOURCE, 1, "return NaN", ["seed"], None)):
        p = store.add_program(run.id, src, gen, edit, [ids[q] for q in parents], mutator="offline")
        ids[name] = p.id
        for task in toy_space.SPACE.train_tasks:
            r = TaskResult("ok", {"score": k * float(task)}, [[0.0, k * float(task)]]) if k else \
                TaskResult.failure("invalid", "f(x) is not finite")
            store.record_evaluation(p.id, task, 0, "train", r)
        store.set_program_status(p.id, "evaluated" if k else "invalid", score=1.5 * k if k else None)
    store.close()
    return url, ids


# ----------------------------------------------------------------------------- export (toy space)
def test_export_writes_the_package_and_records_fresh_evaluations(toy_run, cli_main, tmp_path):
    url, ids = toy_run
    out = tmp_path / "pkg"
    code, stdout, _ = cli_main("export", str(ids["double"]), "--out", str(out), "--name", "Doubler",
                               "--db", url, "--json", "--workers", "1")
    assert code == 0
    res = json.loads(stdout)
    assert (res["name"], res["distribution"], res["module"]) == ("doubler", "discover-algo-doubler",
                                                                  "discover_algo_doubler")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "discover_algo_doubler/__init__.py", "discover_algo_doubler/metadata.json",
                     "discover_algo_doubler/program.py", "metadata.json", "pyproject.toml",
                     "tests/test_algorithm.py"]
    assert (out / "discover_algo_doubler/program.py").read_text() == DOUBLE_SOURCE
    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["name"] == "discover-algo-doubler"
    assert project["project"]["entry-points"]["discover.algorithms"] == {"doubler": "discover_algo_doubler:ALGORITHM"}
    assert any(d.startswith("numpy") for d in project["project"]["dependencies"])
    meta = json.loads((out / "metadata.json").read_text())
    assert meta == json.loads((out / "discover_algo_doubler/metadata.json").read_text())
    assert meta["code_hash"] == sha256_normalised(DOUBLE_SOURCE)
    # Fresh seed: one more than the seeds used so far (0). Toy score = f(x) + seed.
    assert meta["evaluation"]["seed"] == 1
    tasks = meta["scores"]["train"]["tasks"]
    assert {t: r["metrics"]["score"] for t, r in tasks.items()} == {"1": 2 * 1 + 1, "2": 2 * 2 + 1}
    assert meta["scores"]["train"]["score"] == (3 + 5) / 2
    assert meta["scores"]["train"]["stored_score"] == 3.0
    assert [(a["id"], a["edit"], a["parents"]) for a in meta["lineage"]] == [
        (ids["double"], "multiply by two", [ids["seed"]]), (ids["seed"], "seed: identity", [])]
    assert meta["versions"]["export"]["numpy"]
    readme = (out / "README.md").read_text()
    assert "multiply by two" in readme and "+4.0000" in readme and meta["code_hash"] in readme
    # The store holds the re-evaluation, with the fresh seed.
    store = Store.open(url)
    reeval = {(e.task, e.seed): e.metrics["score"] for e in store.evaluations(ids["double"], split="reeval")}
    assert reeval == {("1", 1): 3.0, ("2", 1): 5.0}
    # A second export re-evaluates again, on the next fresh seed.
    code, stdout, _ = cli_main("export", str(ids["double"]), "--out", str(tmp_path / "again"), "--db", url, "--json")
    assert code == 0
    again = json.loads(stdout)
    assert again["name"] == "toy_space_" + str(ids["double"])
    assert again["metadata"]["evaluation"]["seed"] == 2 and again["metadata"]["scores"]["train"]["score"] == 5.0


def test_the_exported_package_imports_and_carries_its_algorithm(toy_run, tmp_path):
    from discover.algorithms import Algorithm
    from discover.export import export_program

    url, ids = toy_run
    res = export_program(Store.open(url), ids["double"], tmp_path / "pkg", name="doubler", workers=1)
    sys.path.insert(0, str(res.directory))
    try:
        module = importlib.import_module(res.module)
        algo = module.ALGORITHM
        assert isinstance(algo, Algorithm)
        assert (algo.name, algo.space, algo.source) == ("doubler", TOY, DOUBLE_SOURCE)
        assert algo.functions(("f",))["f"](21.0) == 42.0
        assert algo.metadata["program_id"] == ids["double"]
        with pytest.raises(AttributeError, match="offer no solver"):
            algo.solver("kuhn_poker")
    finally:
        sys.path.remove(str(res.directory))
        sys.modules.pop(res.module, None)


def test_an_existing_directory_is_one_clear_error_and_nothing_is_evaluated(toy_run, cli_main, tmp_path):
    url, ids = toy_run
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    line = one_error_line(*cli_main("export", str(ids["double"]), "--out", str(out), "--db", url)[::2])
    assert "exists already" in line
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert Store.open(url).evaluations(ids["double"], split="reeval") == []


def test_unknown_program_and_bad_name_are_one_clear_error(toy_run, cli_main, tmp_path):
    url, ids = toy_run
    line = one_error_line(*cli_main("export", "999", "--out", str(tmp_path / "x"), "--db", url)[::2])
    assert "no program with id 999" in line
    line = one_error_line(*cli_main("export", str(ids["double"]), "--out", str(tmp_path / "y"), "--name", "9lives",
                                    "--db", url)[::2])
    assert "invalid algorithm name" in line
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_program_that_fails_its_reevaluation_is_not_exported(toy_run, cli_main, tmp_path):
    url, ids = toy_run
    out = tmp_path / "nan"
    line = one_error_line(*cli_main("export", str(ids["nan"]), "--out", str(out), "--db", url)[::2])
    assert "failed its re-evaluation" in line and "invalid" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".nan-")]
    statuses = {e.status for e in Store.open(url).evaluations(ids["nan"], split="reeval")}
    assert statuses == {"invalid"}


# ----------------------------------------------------------------------------- algorithms
def test_load_algorithm_names_what_is_installed():
    from discover.algorithms import UnknownAlgorithm, load_algorithm, normalize_name

    with pytest.raises(UnknownAlgorithm, match="no installed algorithm named 'surely_not_installed'"):
        load_algorithm("surely_not_installed")
    assert normalize_name("VAD-like.CFR") == "vad_like_cfr"
    with pytest.raises(ValueError):
        normalize_name("has space")


def _seed(name: str) -> str:
    return (REPO / "seeds" / "cfr_variants" / f"{name}.py").read_text()


@pytest.mark.parametrize("seed, reference", [("cfr_plus", "CFRPlusSolver"), ("cfr", "CFRSolver")])
def test_the_cfr_adapter_matches_openspiel_solvers(seed, reference):
    """The CFR and CFR+ seeds through the adapter give OpenSpiel's own solvers' average
    policies (alternating updates; OpenSpiel's CFR+ uses linear averaging)."""
    import numpy as np
    import pyspiel
    from open_spiel.python.algorithms import cfr, exploitability

    from search_spaces.cfr_variants.adapter import CfrSolver

    game = pyspiel.load_game("kuhn_poker")
    ours = CfrSolver(game, _seed(seed), backend="numpy")
    theirs = getattr(cfr, reference)(game)
    for _ in range(30):
        ours.evaluate_and_update_policy()
        theirs.evaluate_and_update_policy()
    a, b = ours.average_policy(), theirs.average_policy()
    assert ours.iteration == 30
    np.testing.assert_allclose(a.action_probability_array, b.action_probability_array, atol=1e-12)
    e = exploitability.exploitability(game, a)
    assert e == pytest.approx(exploitability.exploitability(game, b), abs=1e-12)
    assert ours.exploitability() == pytest.approx(e, abs=1e-12)


def test_run_equals_stepping_and_simultaneous_games_are_refused():
    import numpy as np
    import pyspiel

    from search_spaces.cfr_variants.adapter import CfrSolver

    stepped = CfrSolver("kuhn_poker(players=3)", _seed("dcfr"), backend="numpy")
    for _ in range(12):
        stepped.evaluate_and_update_policy()
    jumped = CfrSolver("kuhn_poker(players=3)", _seed("dcfr"), backend="numpy").run(12)
    np.testing.assert_array_equal(stepped.average_policy().action_probability_array,
                                  jumped.average_policy().action_probability_array)
    with pytest.raises(ValueError, match="load_game_as_turn_based"):
        CfrSolver(pyspiel.load_game("goofspiel(num_cards=3)"), _seed("cfr"))


# ----------------------------------------------------------------------------- end to end (slow)
def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(path)], check=True, timeout=300)
    return path / "bin" / "python"


def _env() -> dict[str, str]:
    # The venv sees this machine's packages; `discover` itself comes from this checkout
    # (in CI it is pip-installed already, and this changes nothing).
    env = dict(os.environ, PYTHONPATH=str(REPO), PIP_DISABLE_PIP_VERSION_CHECK="1", JAX_PLATFORMS="cpu")
    env.pop("PYTHONHOME", None)
    return env


SOLVER_SCRIPT = """
import json, sys
import pyspiel
from open_spiel.python.algorithms import exploitability
from discover.algorithms import load_algorithm
import {module} as package

game = pyspiel.load_game(sys.argv[1])
solver = package.Solver(game)
assert load_algorithm("{name}").source == package.SOURCE
for _ in range(int(sys.argv[2])):
    solver.evaluate_and_update_policy()
print(json.dumps({{"exploitability": exploitability.exploitability(game, solver.average_policy()),
                   "backend": solver.backend}}))
"""


@pytest.mark.slow
def test_export_install_and_solve_a_new_game(tmp_path, cli_main):
    from search_spaces.cfr_variants import HELD_OUT_TASKS, TRAIN_TASKS

    game, iterations = "leduc_poker(suit_isomorphism=True)", 50
    assert game not in TRAIN_TASKS + HELD_OUT_TASKS
    run = build_small_run(f"sqlite:///{tmp_path / 'run.db'}")
    best = max((n for n in run.scores if run.scores[n] is not None), key=lambda n: run.scores[n])
    pid = run.ids[best]
    out = tmp_path / "winner"

    code, stdout, err = cli_main("export", str(pid), "--out", str(out), "--name", "winner", "--db", run.url,
                                 "--json", "--time-limit", "900")
    assert code == 0, err
    meta = json.loads(stdout)["metadata"]
    assert set(meta["scores"]["train"]["tasks"]) == set(TRAIN_TASKS)
    assert set(meta["scores"]["held_out"]["tasks"]) == set(HELD_OUT_TASKS)
    # The fresh re-evaluation reproduces the run's own (deterministic) evaluations.
    # (The run was evaluated on the NumPy engine, the export on JAX: equal to rounding.)
    for task, result in run.results[best].items():
        fresh = meta["scores"]["train"]["tasks"][task]["curve"]
        assert [p[0] for p in fresh] == [p[0] for p in result.curve]
        assert [p[1] for p in fresh] == pytest.approx([p[1] for p in result.curve], rel=1e-9)
    store = Store.open(run.url)
    assert store.program(pid).held_out_score == pytest.approx(meta["scores"]["held_out"]["score"])
    assert {e.task for e in store.evaluations(pid, split="held_out") if e.seed == meta["evaluation"]["seed"]} \
        == set(HELD_OUT_TASKS)

    python = _venv(tmp_path / "venv")
    env = _env()
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(out)], check=True, env=env,
                   timeout=600)
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "tests")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout

    solved = subprocess.run([str(python), "-c", SOLVER_SCRIPT.format(module="discover_algo_winner", name="winner"),
                             game, str(iterations)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert solved.returncode == 0, solved.stderr
    ours = json.loads(solved.stdout.strip().splitlines()[-1])

    evaluated = subprocess.run([sys.executable, "-m", "discover.cli", "eval", str(out / "discover_algo_winner" / "program.py"),
                                "--space", "cfr_variants", "--game", game, "--iterations", str(iterations), "--json"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr
    curve = json.loads(evaluated.stdout.strip().splitlines()[-1])[game]
    assert curve[-1][0] == iterations
    assert ours["exploitability"] == pytest.approx(curve[-1][1], rel=1e-9, abs=1e-13)
