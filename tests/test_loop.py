"""The discovery loop end to end on a fast space: improvement, reproducibility, resume
after kill -9, and containment of hostile candidates while the run goes on."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discover.config import RunConfig
from discover.isolation.executor import LocalExecutor
from discover.engine.loop import Discovery
from discover.mutators.base import Mutator, Proposal
from discover.mutators.offline import OfflineMutator
from discover.engine.runner import run_discovery
from discover.store import Store
from tests.fit_space import SPACE

ROOT = Path(__file__).resolve().parents[1]
FIT = "tests.fit_space:SPACE"


def _run(tmp_path, name, **overrides):
    db = f"sqlite:///{tmp_path / name}.db"
    values = {"space": FIT, "budget": 16, "workers": 1, "seed": 3, **overrides}
    run_discovery(values, db=db, run_name=name)
    store = Store.open(db)
    return store, store.get_run(name)


def test_offline_run_improves_on_its_seeds_and_records_everything(tmp_path):
    store, run = _run(tmp_path, "improve", budget=24, workers=2)
    programs = store.programs(run.id)
    evaluated = [p for p in programs if p.status in ("evaluated", "invalid")]
    assert len(evaluated) == 24
    seeds = [p for p in programs if p.generation == 0]
    best = store.top(run.id, n=1)[0]
    assert best.score > max(p.score for p in seeds)
    # Every child has its parent edge, every evaluated program one evaluation per train task.
    for p in programs:
        if p.generation > 0:
            assert any(e.role == "parent" for e in store.parents(p.id))
        if p.status == "evaluated":
            assert sorted(e.task for e in store.evaluations(p.id, split="train")) == sorted(SPACE.train_tasks)
    # The best programs and the seeds were checked on the held-out task.
    assert best.held_out_score is not None
    assert store.reflections(run.id, kind="short")
    assert run.status == "running" or store.get_run(run.id).status == "finished"


def test_same_seed_one_worker_gives_the_same_programs_in_the_same_order(tmp_path):
    a_store, a = _run(tmp_path, "a")
    b_store, b = _run(tmp_path, "b")
    a_src = [p.source for p in sorted(a_store.programs(a.id), key=lambda p: p.id)]
    b_src = [p.source for p in sorted(b_store.programs(b.id), key=lambda p: p.id)]
    assert len(a_src) == 16 and a_src == b_src
    c_store, c = _run(tmp_path, "c", seed=4)
    c_src = [p.source for p in sorted(c_store.programs(c.id), key=lambda p: p.id)]
    assert c_src != a_src


def _count(db_path):
    con = sqlite3.connect(db_path)
    try:
        done = con.execute("select count(*) from programs where status != 'pending'").fetchone()[0]
        evals = con.execute("select count(*) from evaluations").fetchone()[0]
        return done, evals
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        con.close()


def test_kill_minus_nine_then_resume_finishes_the_budget_without_loss_or_duplicates(tmp_path):
    db_path = tmp_path / "k.db"
    db = f"sqlite:///{db_path}"
    budget = 40
    cmd = [sys.executable, "-m", "discover.cli", "run", "--space", FIT, "--budget", str(budget),
           "--workers", "2", "--db", db, "--run-name", "k", "--seed", "5"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and _count(db_path)[0] < 12:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before_done, before_evals = _count(db_path)
    assert 0 < before_done < budget
    store = Store.open(db)
    run = store.get_run("k")
    kept = {p.id: (p.code_hash, p.score) for p in store.programs(run.id) if p.status != "pending"}

    out = subprocess.run([sys.executable, "-m", "discover.cli", "run", "--resume", "--run-name", "k", "--db", db],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    programs = store.programs(run.id)
    finished = [p for p in programs if p.status != "pending"]
    assert len(finished) == budget
    assert not [p for p in programs if p.status == "pending"]
    # Nothing evaluated before the kill was lost or changed, nothing was stored twice.
    now = {p.id: (p.code_hash, p.score) for p in finished}
    assert all(now[i] == v for i, v in kept.items())
    assert len({p.code_hash for p in programs}) == len(programs)
    for p in finished:
        evs = store.evaluations(p.id, split="train")
        assert len(evs) == len({e.task for e in evs}) == len(SPACE.train_tasks) or p.status == "invalid"
    assert store.get_run(run.id).status == "finished"


class ScriptedMutator(Mutator):
    """Proposes the given sources in order, one per call: a stand-in for a model that
    writes hostile or broken code."""

    name = "scripted"

    def __init__(self, sources):
        self.sources = list(sources)

    def propose(self, context, n):
        out = []
        for _ in range(n):
            if not self.sources:
                break
            kind, src = self.sources.pop(0)
            out.append(Proposal(source=src, edit=kind, parents=(context.parent.id,), kind=kind))
        return out


# Each misbehaves only at |x| >= 2, outside the probe inputs, so it passes the probe and
# misbehaves in the evaluation proper; the probe-stage variants follow.
HOSTILE = [
    ("infinite loop", "def f(x):\n    while abs(x) >= 2:\n        pass\n    return x\n"),
    ("memory", "import numpy as np\n\ndef f(x):\n    if abs(x) >= 2:\n        return float(np.ones((40000, 40000)).sum())\n    return x * 0.95\n"),
    ("raises", "def f(x):\n    if abs(x) >= 2:\n        raise RuntimeError('boom')\n    return x * 0.9\n"),
    ("nan", "def f(x):\n    return float('nan') if abs(x) >= 2 else x * 0.8\n"),
    ("probe timeout", "def f(x):\n    while True:\n        pass\n"),
    ("probe error", "def f(x):\n    return 1 / 0\n"),
    ("os.system", "import os\n\ndef f(x):\n    os.system('touch /tmp/discover-pwned')\n    return x\n"),
    ("dunder escape", "def f(x):\n    return x.__class__.__mro__[1].__subclasses__()\n"),
    ("same behaviour as a seed", "def f(x):\n    return 0.1 + x * 0.5\n"),
    ("good", "def f(x):\n    return 1.3 * x * x - 0.7 * x + 0.25\n"),
]


def test_hostile_candidates_are_recorded_with_their_reason_and_the_run_goes_on(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    config = RunConfig(space=FIT, budget=2 + 5, workers=2, time_limit=3.0, memory_limit_mb=1024,
                       batch_size=1, seed=0)
    run = store.create_run("h", FIT, config.to_json(), 0, config.budget, "scripted", {})
    with LocalExecutor(workers=2, time_limit=3.0, memory_limit_mb=1024) as ex:
        Discovery(SPACE, store, ex, ScriptedMutator(HOSTILE), config, run).execute()
    by_edit = {p.edit: p for p in store.programs(run.id)}
    status = lambda edit: {e.status for e in store.evaluations(by_edit[edit].id, split="train")}
    assert status("infinite loop") == {"timeout"}
    assert status("memory") == {"memory"}
    assert status("raises") == {"error"}
    assert "boom" in store.evaluations(by_edit["raises"].id)[0].error
    assert status("nan") == {"invalid"}
    for edit in ("infinite loop", "memory", "raises", "nan"):
        assert by_edit[edit].status == "invalid" and by_edit[edit].score is None
    rejected = {r.edit: r.reason for r in store.rejections(run.id)}
    assert rejected["os.system"].startswith("static check") and "os" in rejected["os.system"]
    assert rejected["dunder escape"].startswith("static check")
    assert rejected["probe timeout"].startswith("probe timeout")
    assert rejected["probe error"].startswith("probe error") and "ZeroDivisionError" in rejected["probe error"]
    assert rejected["same behaviour as a seed"].startswith("ε-net")
    assert not os.path.exists("/tmp/discover-pwned")
    # The run went on to evaluate the good candidate, which is now the best.
    assert store.top(run.id, n=1)[0].edit == "good"


def test_a_mutator_that_runs_dry_ends_the_run_with_a_reason(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'dry.db'}")
    config = RunConfig(space=FIT, budget=50, workers=1, batch_size=1)
    run = store.create_run("dry", FIT, config.to_json(), 0, config.budget, "scripted", {})
    with LocalExecutor(workers=1, time_limit=5.0) as ex:
        disc = Discovery(SPACE, store, ex, ScriptedMutator(HOSTILE[-1:]), config, run)
        disc.max_barren_generations = 3
        disc.execute()
    assert "no new program" in disc.progress.stop_reason
    assert len(store.programs(run.id)) == 3


def test_noisy_space_reevaluates_top_programs_and_scores_them_by_their_mean(tmp_path):
    from tests.fit_space import NOISY, noise_draw
    db = f"sqlite:///{tmp_path / 'noisy'}.db"
    run_discovery({"space": "tests.fit_space:NOISY", "budget": 14, "workers": 2, "seed": 1},
                  db=db, run_name="noisy")
    store = Store.open(db)
    run = store.get_run("noisy")
    reevaluated = 0
    for p in store.programs(run.id):
        if p.status != "evaluated":
            continue
        by_seed: dict[int, list] = {}
        for e in store.evaluations(p.id, split="train"):
            by_seed.setdefault(e.seed, []).append(e)
        assert 0 in by_seed
        per_seed = []
        for seed, evs in by_seed.items():
            assert sorted(e.task for e in evs) == sorted(NOISY.train_tasks)
            # Each seed's result carries that seed's own noise draw.
            for e in evs:
                assert e.result.metrics["noise"] == pytest.approx(noise_draw(p.source, e.task, seed))
            per_seed.append(sum(e.result.metrics["score"] for e in evs) / len(evs))
        reevaluated += len(by_seed) > 1
        assert p.score == pytest.approx(sum(per_seed) / len(per_seed), rel=1e-12)
    assert reevaluated >= 3
    # The final top programs were evaluated on at least three seeds before being trusted.
    for p in store.top(run.id, n=3):
        assert len({e.seed for e in store.evaluations(p.id, split="train")}) >= 3
    # The summary re-evaluated the best on a seed no evaluation of the run had used.
    best = store.top(run.id, n=1)[0]
    fresh = [e for e in store.evaluations(best.id, split="reeval")]
    assert fresh and all(e.seed >= 1_000_000 for e in fresh)


def test_the_end_of_a_run_reports_each_held_out_and_summary_evaluation(tmp_path):
    import io
    import re

    from rich.console import Console
    out = io.StringIO()
    run_discovery({"space": FIT, "budget": 6, "workers": 1, "seed": 2, "seeds": "parabola"},
                  db=f"sqlite:///{tmp_path / 'p.db'}", run_name="progress", console=Console(file=out, width=200))
    text = out.getvalue()
    held = [tuple(map(int, m)) for m in re.findall(r"held-out evaluation (\d+)/(\d+): program \d+ on far", text)]
    assert held and [k for k, _ in held] == list(range(1, held[-1][1] + 1)), text
    # "linear" is a seed of the space the run did not start from: the summary evaluates it
    # on the two train tasks and the held-out task, and says so as each one finishes.
    summary = re.findall(r"summary (\d)/3: linear on (\w+) ok \(\d+\.\d s\), (\d) left", text)
    assert sorted(int(k) for k, _, _ in summary) == [1, 2, 3], text
    assert {t for _, t, _ in summary} == {"left", "right", "far"}
    assert all(int(k) + int(left) == 3 for k, _, left in summary)


def _pending(db_path) -> int:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("select count(*) from programs where status = 'pending' and generation > 0").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_a_run_killed_twice_mid_generation_resumes_into_the_uninterrupted_run(tmp_path):
    """SIGKILL while a generation is being evaluated (its children stored, not all scored),
    twice, then resume: the same programs, by code hash, in the same order as a run with the
    same seed that was never stopped — so the resumed loop told the selector what the live
    one did (scores, fingerprints, parent counts)."""
    config = tmp_path / "slow.toml"
    config.write_text("[eval_options]\ndelay_s = 0.12\n")   # a generation takes ~0.5 s
    budget = 30

    def cmd(db, *extra):
        return [sys.executable, "-m", "discover.cli", "run", "--space", FIT, "--budget", str(budget), "--workers", "2",
                "--seed", "7", "--db", db, "--run-name", "r", "--config", str(config), *extra]

    killed = tmp_path / "killed.db"
    for at_least, extra in ((8, ()), (18, ("--resume",))):
        proc = subprocess.Popen(cmd(f"sqlite:///{killed}", *extra), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and not (_count(killed)[0] >= at_least and _pending(killed) > 0):
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _pending(killed) > 0, "the kill was meant to land in the middle of a generation"
    done = subprocess.run(cmd(f"sqlite:///{killed}", "--resume"), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    whole = tmp_path / "whole.db"
    straight = subprocess.run(cmd(f"sqlite:///{whole}"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    def lineage(path):
        store = Store.open(f"sqlite:///{path}")
        run = store.get_run("r")
        programs = sorted(store.programs(run.id), key=lambda p: p.id)
        return ([p.code_hash for p in programs], [p.score for p in programs],
                sorted(r.code_hash for r in store.rejections(run.id)))

    assert lineage(killed) == lineage(whole)


def test_a_live_run_tells_the_selector_each_programs_fingerprint(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'fp.db'}")
    config = RunConfig(space=FIT, budget=14, workers=1, seed=3)
    run = store.create_run("fp", FIT, config.to_json(), 3, config.budget, "offline", {})
    with LocalExecutor(workers=1, time_limit=30.0) as ex:
        disc = Discovery(SPACE, store, ex, OfflineMutator(seed=3), config, run)
        disc.execute()
    evaluated = [p for p in store.programs(run.id) if p.status == "evaluated"]
    assert len(evaluated) > 5
    for p in evaluated:
        # The probe's outputs, computed here from the stored source: the fingerprint the
        # selector uses to pick inspirations far in behaviour.
        ns: dict = {}
        exec(compile(p.source, "<candidate>", "exec"), ns)
        expected = SPACE.probe(ns)
        assert disc.selector.fingerprint(p.id) is not None
        assert disc.selector.fingerprint(p.id).tolist() == pytest.approx(expected.tolist())
    # Parent counts are the stored children (programs and rejections) of each parent.
    children: dict[int, int] = {}
    for p in store.programs(run.id):
        first = [e.parent_id for e in store.parents(p.id) if e.role == "parent"][:1]
        for q in first:
            children[q] = children.get(q, 0) + 1
    for r in store.rejections(run.id):
        if r.parent_ids:
            children[r.parent_ids[0]] = children.get(r.parent_ids[0], 0) + 1
    assert {p.id: disc.selector.expansions(p.id) for p in evaluated} == {p.id: children.get(p.id, 0)
                                                                         for p in evaluated}


def test_resume_refuses_evaluations_computed_by_another_harness(tmp_path):
    db_path = tmp_path / "h.db"
    db = f"sqlite:///{db_path}"
    run_discovery({"space": FIT, "budget": 4, "workers": 1, "seed": 1}, db=db, run_name="h")
    store = Store.open(db)
    run = store.get_run("h")
    evaluations = [e for p in store.programs(run.id) for e in store.evaluations(p.id)]
    assert {e.harness for e in evaluations} == {SPACE.harness_version({})}     # set by the executor
    assert SPACE.harness_version({}) != SPACE.harness_version({"delay_s": 0.5})
    con = sqlite3.connect(db_path)
    con.execute("UPDATE evaluations SET harness = 'an0ther0harness0' WHERE id = ?", (evaluations[0].id,))
    con.commit()
    con.close()
    out = subprocess.run([sys.executable, "-m", "discover.cli", "run", "--resume", "--run-name", "h", "--db", db,
                          "--budget", "6"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"discover: error: run 'h' was evaluated by harness an0ther0harness0, this installation evaluates "
        f"{FIT} by harness {SPACE.harness_version({})} (its evaluator, scoring or evaluation options differ): "
        "start a new run, or resume with the version that made it"]


def test_top_across_runs_leaves_out_programs_scored_by_another_harness(tmp_path):
    import json as _json
    db_path = tmp_path / "top.db"
    db = f"sqlite:///{db_path}"
    run_discovery({"space": FIT, "budget": 3, "workers": 1, "seed": 1}, db=db, run_name="now")
    run_discovery({"space": FIT, "budget": 3, "workers": 1, "seed": 2}, db=db, run_name="then")
    store = Store.open(db)
    then = store.get_run("then")
    then_ids = {p.id for p in store.programs(then.id)}
    con = sqlite3.connect(db_path)
    con.executemany("UPDATE evaluations SET harness = 'an0ther0harness0' WHERE program_id = ?", [(i,) for i in then_ids])
    con.commit()
    con.close()

    def top(*extra):
        out = subprocess.run([sys.executable, "-m", "discover.cli", "top", "--db", db, "--json", "--n", "50", *extra],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return {row["id"] for row in _json.loads(out.stdout)}
    assert top() and not top() & then_ids                        # only what this installation would score alike
    assert then_ids <= top("--any-harness")
    assert then_ids <= top("--run", "then")                      # within one run, nothing is mixed
