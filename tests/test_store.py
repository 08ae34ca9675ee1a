"""The lineage store, against SQLite and (when DISCOVER_TEST_PG_URL is set) a real PostgreSQL.

Every test that takes ``db_url`` runs twice: on a fresh SQLite file, and in a fresh schema of
the PostgreSQL database named by ``DISCOVER_TEST_PG_URL`` (``.ci/postgres.sh`` starts a
server and prints that variable). Expected values come from the inputs themselves or from
independent computations (hashlib, raw SQL, sorting in Python), never from the store.

Why one file: one repository's contract, run against both databases.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.pg import fresh_schema_url
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from discover.space import TaskResult
from discover.store import (EVALUATED, INVALID, PENDING, Store, StoreError, alembic_config, code_hash,
                            default_url, head_revision)
from discover.store import _db
from discover.store._models import Base

REPO = Path(__file__).resolve().parents[1]
TABLES = {"runs", "programs", "program_parents", "evaluations", "rejections", "llm_calls", "reflections"}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'discover.db'}"
        return
    with fresh_schema_url() as url:
        yield url


@pytest.fixture
def store(db_url):
    s = Store.open(db_url)
    yield s
    s.close()


def _run(store, name="r", space="cfr_variants", **kw):
    args = dict(config={"budget": 10}, seed=0, budget=10, mutator="offline", versions={"numpy": np.__version__})
    args.update(kw)
    return store.create_run(name, space, **args)


def _ok(score, **metrics):
    return TaskResult(status="ok", metrics={"score": score, **metrics}, curve=[(1, 0.5), (10, 0.05)], wall_time=0.25)


def _count(url, table, where="1=1", **params):
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), params).scalar_one()
    finally:
        eng.dispose()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# ----------------------------------------------------------------------------- runs
def test_run_round_trip(store):
    config = {"space": "cfr_variants", "budget": 10, "tasks": ["kuhn_poker", "leduc_poker"],
              "nested": {"eps": 1e-3}, "limit": math.inf}
    versions = {"open_spiel": "2.0.2", "jax": "0.10.2"}
    run = store.create_run("exp1", "cfr_variants", config=config, seed=7, budget=60, mutator="offline",
                           versions=versions, model="none")
    assert (run.name, run.space, run.seed, run.budget, run.mutator, run.model) == \
        ("exp1", "cfr_variants", 7, 60, "offline", "none")
    assert run.config == config and run.versions == versions
    assert run.status == "running" and run.finished_at is None
    assert run.created_at.tzinfo is not None and abs(time.time() - run.created_at.timestamp()) < 60

    assert store.get_run(run.id) == run
    assert store.get_run("exp1") == run
    assert store.get_run(str(run.id)) == run  # a CLI argument of digits that names no run is an id
    assert store.get_run("nope") is None and store.get_run(run.id + 100) is None

    other = store.create_run(None, "ppo_objectives", config={}, seed=0, budget=None, mutator="llm", versions={})
    assert other.name.startswith("ppo_objectives-") and other.budget is None
    assert [r.id for r in store.list_runs()] == [run.id, other.id]
    assert store.latest_run() == other
    assert store.latest_run("cfr_variants") == run
    assert store.latest_run("psro_meta_solvers") is None

    stopped = store.set_run_status(run.id, "stopped")
    assert stopped.status == "stopped" and stopped.finished_at >= run.created_at
    resumed = store.set_run_status(run.id, "running")
    assert resumed.status == "running" and resumed.finished_at is None
    assert store.set_run_budget(run.id, 120).budget == 120
    assert store.get_run(run.id).budget == 120

    with pytest.raises(ValueError, match="exists already"):
        store.create_run("exp1", "cfr_variants", config={}, seed=0, budget=1, mutator="offline", versions={})
    with pytest.raises(ValueError, match="run status must be one of"):
        store.set_run_status(run.id, "done")
    with pytest.raises(ValueError, match="no run with id"):
        store.set_run_status(run.id + 100, "failed")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.create_run("exp2", "cfr_variants", config={"path": object()}, seed=0, budget=1, mutator="m",
                         versions={})


def test_records_are_frozen(store):
    run = _run(store)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "finished"
    p = store.add_program(run.id, "x = 1\n", 0, "seed: x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.score = 1.0


# ----------------------------------------------------------------------------- programs
def test_program_round_trip_and_lineage(store):
    run = _run(store)
    a = store.add_program(run.id, "def f():\n    return 1\n", 0, "seed: one", [], mutator="seed")
    b = store.add_program(run.id, "def f():\n    return 2\n", 0, "seed: two", [], mutator="seed")
    fp = np.array([0.1, -2.5e-300, 1e300, np.pi])
    c = store.add_program(run.id, "def f():\n    return 3\n", 1, "return 3 instead of 1", [a.id, b.id],
                          mutator="llm", model="gpt-x", fingerprint=fp)
    d = store.add_program(run.id, "def f():\n    return 4\n", 2, "cross a and c", [a.id, c.id],
                          mutator="offline", roles=["crossover", "crossover"])

    # SHA-256 of the source without trailing whitespace (discover.program.code_hash).
    assert c.code_hash == hashlib.sha256(b"def f():\n    return 3").hexdigest() == code_hash(c.source)
    assert (c.run_id, c.space, c.generation, c.edit, c.mutator, c.model) == \
        (run.id, "cfr_variants", 1, "return 3 instead of 1", "llm", "gpt-x")
    assert c.status == PENDING and c.score is None and c.held_out_score is None
    assert c.fingerprint == tuple(fp.tolist())  # bit-exact float64 round trip
    assert a.fingerprint is None
    assert store.program(c.id) == c and store.program(d.id + 1) is None

    assert [(e.parent_id, e.role, e.ordinal) for e in store.parents(c.id)] == \
        [(a.id, "parent", 0), (b.id, "inspiration", 1)]
    assert [(e.parent_id, e.role) for e in store.parents(d.id)] == [(a.id, "crossover"), (c.id, "crossover")]
    assert store.parents(a.id) == []
    assert [(e.child_id, e.role) for e in store.children(a.id)] == [(c.id, "parent"), (d.id, "crossover")]
    assert [e.child_id for e in store.children(d.id)] == []
    assert [p.id for p in store.programs(run.id)] == [a.id, b.id, c.id, d.id]

    fp2 = [1.0, float("nan"), -0.0]
    got = store.set_fingerprint(b.id, fp2).fingerprint
    assert got[0] == 1.0 and math.isnan(got[1]) and math.copysign(1, got[2]) == -1
    assert store.set_fingerprint(b.id, None).fingerprint is None

    assert store.set_program_status(c.id, EVALUATED, score=0.75).score == 0.75
    assert store.set_held_out_score(c.id, 0.5).held_out_score == 0.5
    assert store.set_held_out_score(c.id, None).held_out_score is None
    assert store.set_program_status(c.id, INVALID).score is None
    assert [p.id for p in store.programs(run.id, status=INVALID)] == [c.id]

    with pytest.raises(ValueError, match="unknown parent program id"):
        store.add_program(run.id, "x = 9\n", 1, "e", [d.id + 50])
    with pytest.raises(ValueError, match="one role per parent"):
        store.add_program(run.id, "x = 9\n", 1, "e", [a.id], roles=["parent", "inspiration"])
    with pytest.raises(ValueError, match="parent role must be one of"):
        store.add_program(run.id, "x = 9\n", 1, "e", [a.id], roles=["mother"])
    with pytest.raises(ValueError, match="no run with id"):
        store.add_program(run.id + 9, "x = 9\n", 1, "e")
    with pytest.raises(ValueError, match="must not be NaN"):
        store.set_program_status(a.id, EVALUATED, score=float("nan"))
    with pytest.raises(ValueError, match="program status must be one of"):
        store.set_program_status(a.id, "done")
    with pytest.raises(ValueError, match="1-D sequence of numbers"):
        store.set_fingerprint(a.id, [[1.0, 2.0]])
    assert len(store.programs(run.id)) == 4  # the failed calls stored nothing


def test_add_program_is_idempotent(store, db_url):
    run = _run(store)
    other = _run(store, name="other")
    seed = store.add_program(run.id, "x = 0\n", 0, "seed")
    first = store.add_program(run.id, "x = 1\n", 1, "first", [seed.id])
    again = store.add_program(run.id, "x = 1\n", 5, "second attempt", [], mutator="llm")
    assert again == first  # the stored program, unchanged
    # Trailing whitespace is editor noise, not a new program.
    assert store.add_program(run.id, "x = 1   \n\n\n", 2, "noise") == first
    assert _count(db_url, "programs", "run_id = :r", r=run.id) == 2
    assert _count(db_url, "program_parents") == 1
    # The same source in another run is another program.
    elsewhere = store.add_program(other.id, "x = 1\n", 0, "seed")
    assert elsewhere.id != first.id and elsewhere.code_hash == first.code_hash


def test_database_enforces_unique_constraints(store, db_url):
    """The uniqueness the store relies on is the database's own, not only a Python check."""
    run = _run(store)
    p = store.add_program(run.id, "x = 1\n", 0, "seed")
    store.record_evaluation(p.id, "kuhn_poker", 0, "train", _ok(1.0))
    now = "2026-01-01 00:00:00"
    eng = create_engine(db_url)
    inserts = [
        ("INSERT INTO runs (name, space, config, versions, seed, status, created_at) "
         "VALUES ('r', 's', '{}', '{}', 0, 'running', :t)"),
        ("INSERT INTO programs (run_id, source, code_hash, space, generation, status, created_at) "
         f"VALUES ({run.id}, 'x = 1\n', '{p.code_hash}', 's', 0, 'pending', :t)"),
        ("INSERT INTO evaluations (program_id, task, seed, split, status, metrics, curve, wall_time, created_at) "
         f"VALUES ({p.id}, 'kuhn_poker', 0, 'train', 'ok', '{{}}', '[]', 0, :t)"),
        ("INSERT INTO program_parents (child_id, parent_id, role, ordinal) "
         f"VALUES ({p.id}, {p.id + 1000}, 'parent', 0)"),  # no such parent: foreign key
    ]
    try:
        for sql in inserts:
            with pytest.raises(IntegrityError):
                with eng.begin() as conn:
                    if conn.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                    conn.execute(text(sql), {"t": now})
    finally:
        eng.dispose()


# ----------------------------------------------------------------------------- evaluations
def test_evaluation_round_trip_and_idempotency(store, db_url):
    run = _run(store)
    p = store.add_program(run.id, "x = 1\n", 0, "seed")
    metrics = {"score": np.float32(0.5), "final_exploitability": np.float64(2.5e-4), "iterations": np.int64(100),
               "worst": -math.inf}
    result = TaskResult(status="ok", metrics=metrics, curve=[(1, 0.4), (100, 2.5e-4)], wall_time=1.5)
    e = store.record_evaluation(p.id, "leduc_poker", 3, "train", result, device="cpu")
    assert (e.program_id, e.task, e.seed, e.split, e.status, e.device, e.wall_time) == \
        (p.id, "leduc_poker", 3, "train", "ok", "cpu", 1.5)
    assert e.metrics == {"score": 0.5, "final_exploitability": 2.5e-4, "iterations": 100, "worst": -math.inf}
    assert e.curve == ((1, 0.4), (100, 2.5e-4))
    assert e.ok and e.result == TaskResult(status="ok", metrics=e.metrics, curve=e.curve, wall_time=1.5, device="cpu")

    failed = TaskResult.failure("error", "ZeroDivisionError: division by zero", wall_time=0.1)
    f = store.record_evaluation(p.id, "kuhn_poker(players=3)", 0, "held_out", failed, device="cuda:0")
    assert (f.status, f.error, f.metrics, f.curve, f.ok) == \
        ("error", "ZeroDivisionError: division by zero", {}, (), False)

    # Same key again, even with another result: the stored evaluation wins, no new row.
    again = store.record_evaluation(p.id, "leduc_poker", 3, "train", _ok(9.0), device="gpu")
    assert again == e
    assert _count(db_url, "evaluations") == 2
    # Another seed or split of the same task is another evaluation.
    store.record_evaluation(p.id, "leduc_poker", 4, "train", _ok(0.6))
    store.record_evaluation(p.id, "leduc_poker", 3, "reeval", _ok(0.55))

    assert [x.id for x in store.evaluations(p.id)][:2] == [e.id, f.id]
    assert len(store.evaluations(p.id)) == 4
    assert [x.task for x in store.evaluations(p.id, split="held_out")] == ["kuhn_poker(players=3)"]
    assert store.count_evaluations(run.id) == 4
    assert store.count_evaluations(run.id, split="train") == 2
    assert store.count_evaluations(_run(store, name="empty").id) == 0

    with pytest.raises(ValueError, match="split must be one of"):
        store.record_evaluation(p.id, "t", 0, "test", _ok(1.0))
    with pytest.raises(ValueError, match="evaluation status must be one of"):
        store.record_evaluation(p.id, "t", 0, "train", TaskResult(status="fine"))
    with pytest.raises(ValueError, match="no program with id"):
        store.record_evaluation(p.id + 100, "t", 0, "train", _ok(1.0))
    with pytest.raises(ValueError, match="TaskResult"):
        store.record_evaluation(p.id, "t", 0, "train", {"status": "ok"})


# ----------------------------------------------------------------------------- top, counts
def test_top_orders_best_first(store):
    run_a, run_b = _run(store, name="a"), _run(store, name="b")
    scores = {"a0": 0.3, "a1": 0.9, "a2": -1.5, "a3": 0.9, "a4": 2.0, "b0": 1.2, "b1": -math.inf}
    ids = {}
    for key, score in scores.items():
        run = run_a if key[0] == "a" else run_b
        p = store.add_program(run.id, f"x = {key!r}\n", 0, key)
        store.set_program_status(p.id, EVALUATED, score=score)
        ids[key] = p.id
    # Programs that must never appear: pending, and invalid (even with a score).
    store.add_program(run_a.id, "x = 'pending'\n", 0, "pending")
    bad = store.add_program(run_a.id, "x = 'invalid'\n", 0, "invalid")
    store.set_program_status(bad.id, INVALID, score=99.0)

    def expected(keys):  # best score first, ties to the older (smaller id) program
        return [ids[k] for k in sorted(keys, key=lambda k: (-scores[k], ids[k]))]

    a_keys = [k for k in scores if k[0] == "a"]
    assert [p.id for p in store.top(run_a.id, n=10)] == expected(a_keys)
    assert [p.id for p in store.top(run_a.id, n=2)] == expected(a_keys)[:2]
    assert [p.id for p in store.top(n=3)] == expected(scores)[:3]
    assert [p.id for p in store.top(None, n=100)] == expected(scores)
    assert store.top(run_a.id, n=0) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        store.top(run_a.id, n=-1)


def test_counts(store):
    run = _run(store)
    statuses = [EVALUATED, EVALUATED, EVALUATED, INVALID, PENDING]
    for i, status in enumerate(statuses):
        p = store.add_program(run.id, f"x = {i}\n", 0, "e")
        if status != PENDING:
            store.set_program_status(p.id, status, score=1.0 if status == EVALUATED else None)
    for i in range(2):
        store.record_rejection(run.id, f"y = {i}\n", "static check: no update_regret", [], 1)
    assert store.counts(run.id) == {"pending": 1, "evaluated": 3, "invalid": 1, "rejected": 2}
    assert store.counts(_run(store, name="empty").id) == {"pending": 0, "evaluated": 0, "invalid": 0, "rejected": 0}


# ----------------------------------------------------------------------------- rejections, LLM calls, reflections
def test_rejections(store, db_url):
    run = _run(store)
    seed = store.add_program(run.id, "x = 0\n", 0, "seed")
    r = store.record_rejection(run.id, "x = 0.0\n", "ε-net: behaves like program 1", [seed.id], 3,
                               edit="0 -> 0.0", mutator="offline")
    assert (r.run_id, r.source, r.code_hash, r.reason, r.parent_ids, r.generation, r.edit, r.mutator) == \
        (run.id, "x = 0.0\n", hashlib.sha256(b"x = 0.0").hexdigest(), "ε-net: behaves like program 1",
         (seed.id,), 3, "0 -> 0.0", "offline")
    again = store.record_rejection(run.id, "x = 0.0\n", "duplicate", [], 4)
    assert again == r and _count(db_url, "rejections") == 1
    r2 = store.record_rejection(run.id, "x = (\n", "static check: syntax error", [seed.id], 4)
    assert store.rejections(run.id) == [r, r2]
    assert store.programs(run.id) == [seed]  # rejections are not programs
    with pytest.raises(ValueError, match="no run with id"):
        store.record_rejection(run.id + 5, "z = 1\n", "why", [], 0)


def test_llm_calls_and_cost(store):
    run = _run(store, mutator="gpt-x")
    p = store.add_program(run.id, "x = 1\n", 1, "e")
    costs = [0.0123, 0.5, None, 1e-4]
    calls = []
    for i, cost in enumerate(costs):
        calls.append(store.record_llm_call(
            run.id, "gpt-x", f"prompt {i} ✓", None if cost is None else f"response {i}",
            prompt_tokens=100 + i, completion_tokens=None if cost is None else 20, cost_usd=cost, latency_s=0.5 * i,
            status="ok" if cost is not None else "timeout", error=None if cost is not None else "timed out after 60 s",
            program_id=p.id if i == 1 else None))
    c = calls[1]
    assert (c.run_id, c.program_id, c.model, c.prompt, c.response, c.prompt_tokens, c.completion_tokens,
            c.cost_usd, c.latency_s, c.status, c.error) == \
        (run.id, p.id, "gpt-x", "prompt 1 ✓", "response 1", 101, 20, 0.5, 0.5, "ok", None)
    assert (calls[2].status, calls[2].error, calls[2].response) == ("timeout", "timed out after 60 s", None)
    assert store.llm_calls(run.id) == calls
    assert store.total_cost(run.id) == pytest.approx(math.fsum(x for x in costs if x is not None), rel=1e-12)
    other = _run(store, name="other")
    assert store.total_cost(other.id) == 0.0
    store.record_llm_call(other.id, "m", "p", "r", cost_usd=2.0)
    assert store.total_cost() == pytest.approx(2.0 + 0.5124, rel=1e-12)
    with pytest.raises(ValueError, match="no program with id"):
        store.record_llm_call(run.id, "m", "p", "r", program_id=p.id + 10)


def test_reflections(store):
    run = _run(store)
    texts = [(1, "short", "raising the discount helped"), (2, "short", "predictive terms failed"),
             (2, "long", "so far: discounts > predictions"), (3, "short", "clipping at zero is key")]
    made = [store.add_reflection(run.id, g, k, t) for g, k, t in texts]
    assert [(r.generation, r.kind, r.text) for r in store.reflections(run.id)] == texts
    assert store.reflections(run.id) == made
    assert [r.text for r in store.reflections(run.id, kind="long")] == ["so far: discounts > predictions"]
    assert store.reflections(_run(store, name="other").id) == []
    with pytest.raises(ValueError, match="reflection kind must be one of"):
        store.add_reflection(run.id, 4, "medium", "x")


# ----------------------------------------------------------------------------- schema and migrations
def _tables(url):
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn)
            names = set(conn.dialect.get_table_names(conn))
            return names, ctx.get_current_revision()
    finally:
        eng.dispose()


def test_schema_of_newest_revision_matches_models(store, db_url):
    """Migrations and ORM models describe the same tables, columns, types and indexes."""
    names, rev = _tables(db_url)
    assert TABLES <= names and rev == head_revision()
    eng = create_engine(db_url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        eng.dispose()
    assert diff == []


def test_upgrade_from_revision_0001_keeps_data(db_url):
    cfg = alembic_config(db_url)
    command.upgrade(cfg, "0001")
    names, rev = _tables(db_url)
    assert rev == "0001" and TABLES <= names
    eng = create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO runs (name, space, config, versions, seed, status, created_at) "
                          "VALUES ('old', 'cfr_variants', '{\"budget\": 5}', '{}', 3, 'finished', :t)"),
                     {"t": "2026-01-01 00:00:00"})
        run_id = conn.execute(text("SELECT id FROM runs WHERE name = 'old'")).scalar_one()
        conn.execute(text("INSERT INTO programs (run_id, source, code_hash, space, generation, status, score, created_at) "
                          "VALUES (:r, 'y = 2\n', 'h0', 'cfr_variants', 0, 'evaluated', 0.25, :t)"), {"r": run_id, "t": "2026-01-01"})
        program_id = conn.execute(text("SELECT id FROM programs WHERE code_hash = 'h0'")).scalar_one()
        conn.execute(text("INSERT INTO evaluations (program_id, task, seed, split, status, metrics, curve, wall_time, "
                          "device, created_at) VALUES (:p, 'kuhn_poker', 0, 'train', 'ok', '{\"score\": 0.25}', "
                          "'[[1, 0.5]]', 1.5, 'cpu', :t)"), {"p": program_id, "t": "2026-01-01"})
    eng.dispose()

    with Store.open(db_url) as store:
        assert _tables(db_url)[1] == head_revision()
        old = store.get_run("old")
        assert (old.space, old.config, old.seed, old.status) == ("cfr_variants", {"budget": 5}, 3, "finished")
        (e,) = store.evaluations(program_id)
        assert (e.task, e.status, dict(e.metrics), e.curve, e.wall_time, e.device) == (
            "kuhn_poker", "ok", {"score": 0.25}, ((1, 0.5),), 1.5, "cpu")
        assert e.harness is None                 # computed before harness versions were kept
        p = store.add_program(old.id, "x = 1\n", 0, "seed")  # the upgraded database takes writes
        assert p in store.programs(old.id)

    # Every revision can be undone and redone.
    command.downgrade(cfg, "base")
    names, rev = _tables(db_url)
    assert rev is None and not (TABLES & names)
    command.upgrade(cfg, "head")
    assert _tables(db_url)[1] == head_revision()


def test_the_revisions_form_one_linear_history():
    from alembic.script import ScriptDirectory
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1
    revisions = list(script.walk_revisions())          # newest first
    for newer, older in zip(revisions, revisions[1:]):
        assert newer.down_revision == older.revision


def test_database_from_a_newer_version_is_refused(db_url):
    Store.open(db_url).close()
    eng = create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    eng.dispose()
    with pytest.raises(StoreError, match=r"schema revision '9999' is unknown to this version of discover"):
        Store.open(db_url)


def test_migrations_live_inside_the_package():
    """Found next to the code (not via the working directory), so an installed package migrates too."""
    import discover.store
    package = Path(discover.store.__file__).resolve().parent
    assert _db.MIGRATIONS_DIR == package / "migrations"
    for name in ("env.py", "script.py.mako", "__init__.py", "versions/__init__.py", "versions/0001_initial.py"):
        assert (_db.MIGRATIONS_DIR / name).is_file(), name


# ----------------------------------------------------------------------------- opening
def test_default_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISCOVER_DB", raising=False)
    assert default_url() == "sqlite:///runs/discover.db"
    with Store.open() as store:
        _run(store)
    assert (tmp_path / "runs" / "discover.db").is_file()
    with sqlite3.connect(tmp_path / "runs" / "discover.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT name FROM runs").fetchall() == [("r",)]

    monkeypatch.setenv("DISCOVER_DB", f"sqlite:///{tmp_path / 'elsewhere' / 'x.db'}")
    with Store.open(None) as store:
        assert store.list_runs() == []
        assert store.url.endswith("elsewhere/x.db")
    assert (tmp_path / "elsewhere" / "x.db").is_file()


def test_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("a text file, not a database\n" * 100)
    url = f"sqlite:///{path}"
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert str(info.value) == f"cannot open database '{url}': file is not a database"
    assert path.read_text() == "a text file, not a database\n" * 100  # left untouched


def test_bad_urls(tmp_path):
    with pytest.raises(StoreError, match=r"^cannot open database 'nosuchdb://x/y': unknown database kind 'nosuchdb'$"):
        Store.open("nosuchdb://x/y")
    with pytest.raises(StoreError, match="not a database URL"):
        Store.open("runs/discover.db")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create its folder"):
        Store.open(f"sqlite:///{tmp_path / 'file' / 'x.db'}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_fails_fast_with_one_sentence():
    port = _free_port()  # nothing listens there
    url = f"postgresql+psycopg://discover:s3cret@127.0.0.1:{port}/discover"
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert msg.startswith(f"cannot open database 'postgresql+psycopg://discover:***@127.0.0.1:{port}/discover': ")
    assert "Connection refused" in msg and "\n" not in msg and "s3cret" not in msg


def test_silent_postgres_server_times_out(monkeypatch):
    """A server that accepts the connection but never answers: the connect timeout ends the wait."""
    monkeypatch.setattr(_db, "PG_CONNECT_TIMEOUT_S", 1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        start = time.monotonic()
        with pytest.raises(StoreError, match="cannot open database") as info:
            Store.open(f"postgresql+psycopg://u:p@127.0.0.1:{listener.getsockname()[1]}/db")
        assert time.monotonic() - start < 5
        assert "timeout" in str(info.value).lower()
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        listener.close()


# ----------------------------------------------------------------------------- durability and concurrency
WRITER = textwrap.dedent("""
    import sys
    from discover.space import TaskResult
    from discover.store import Store

    store = Store.open(sys.argv[1])
    run = store.create_run("killed", "s", config={}, seed=0, budget=None, mutator="m", versions={})
    print("run", run.id, flush=True)
    i = 0
    while True:
        p = store.add_program(run.id, f"x = {i}\\n", i, f"edit {i}")
        e = store.record_evaluation(p.id, "task", 0, "train", TaskResult("ok", {"score": float(i)}), "cpu")
        store.set_program_status(p.id, "evaluated", score=float(i))
        print(p.id, e.id, i, flush=True)  # printed only after all three writes returned
        i += 1
""")


def test_sigkill_loses_nothing_committed(db_url, tmp_path):
    Store.open(db_url).close()  # schema in place, so the writer starts writing at once
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True, env=_env())
    lines = []
    try:
        while len(lines) < 40:
            line = proc.stdout.readline()
            assert line, f"the writer exited early with status {proc.wait()}"
            lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        lines += proc.stdout.readlines()  # anything it printed before dying was committed too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    run_id = int(lines[0].split()[1])
    done = [tuple(map(int, ln.split())) for ln in lines[1:] if ln.endswith("\n")]
    assert len(done) >= 39

    with Store.open(db_url) as store:
        for pid, eid, i in done:
            p = store.program(pid)
            assert (p.run_id, p.source, p.status, p.score) == (run_id, f"x = {i}\n", EVALUATED, float(i))
            assert [(e.id, e.metrics["score"]) for e in store.evaluations(pid)] == [(eid, float(i))]
        # At most the one write in flight is beyond what was printed; nothing is half-written.
        stored = store.programs(run_id)
        assert len(done) <= len(stored) <= len(done) + 1
        assert store.count_evaluations(run_id) in (len(stored) - 1, len(stored))
    if db_url.startswith("sqlite"):
        with sqlite3.connect(make_url(db_url).database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


CONCURRENT = textwrap.dedent("""
    import os, sys, time
    from discover.space import TaskResult
    from discover.store import Store

    url, run_id, lo, hi, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    store = Store.open(url)
    while not os.path.exists(go):
        time.sleep(0.01)
    for i in range(lo, hi):
        p = store.add_program(run_id, f"x = {i}\\n", 1, "e")
        store.record_evaluation(p.id, "task", 0, "train", TaskResult("ok", {"score": float(i)}), "cpu")
        store.set_program_status(p.id, "evaluated", score=float(i))
        store.record_rejection(run_id, f"y = {i % 7}\\n", "duplicate", [p.id], 1)
""")


def test_concurrent_writers(db_url, tmp_path):
    """Two processes writing the same programs, in the same order, into one database at once:
    every write races the other process's, yet there is no error and no duplicate."""
    with Store.open(db_url) as store:
        run = _run(store)
    script = tmp_path / "writer.py"
    script.write_text(CONCURRENT)
    go = tmp_path / "go"
    ranges = [(0, 60), (0, 60)]
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(run.id), str(lo), str(hi), str(go)],
                              stderr=subprocess.PIPE, text=True, env=_env()) for lo, hi in ranges]
    time.sleep(1.0)
    go.write_text("")
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            errors.append(err)
    assert not errors, errors[0]
    with Store.open(db_url) as store:
        programs = store.programs(run.id)
        assert sorted(p.source for p in programs) == sorted(f"x = {i}\n" for i in range(60))
        assert all(p.status == EVALUATED and p.score == float(p.source[4:]) for p in programs)
        assert store.count_evaluations(run.id) == 60
        assert len(store.rejections(run.id)) == 7
    assert _count(db_url, "evaluations") == 60


OPENER = textwrap.dedent("""
    import os, sys, time
    from discover.store import Store

    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    Store.open(sys.argv[1]).close()
""")


def test_processes_opening_a_new_database_together_create_it_once(db_url, tmp_path):
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(go)], stderr=subprocess.PIPE, text=True,
                              env=_env()) for _ in range(3)]
    time.sleep(1.0)
    go.write_text("")
    errors = [err for p in procs for _, err in [p.communicate(timeout=120)] if p.returncode != 0]
    assert not errors, errors[0]
    names, rev = _tables(db_url)
    assert TABLES <= names and rev == head_revision()
    assert _count(db_url, "alembic_version") == 1


def _connection_identity(store):
    """Which database connection the store's next transaction uses: the server process on
    PostgreSQL, the sqlite3 connection object on SQLite."""
    with store._session() as s:
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        return id(conn.connection.dbapi_connection)


def test_forked_child_does_not_share_connections(store):
    """After a fork (a worker pool), the child opens its own connection instead of reusing the
    parent's pooled one: two processes on one socket or SQLite handle corrupt each other."""
    run = _run(store)
    parent_conn = _connection_identity(store)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its connection, write through the inherited store, leave without cleanup
        code = 1
        try:
            os.close(read)
            os.write(write, str(_connection_identity(store)).encode())
            store.add_program(run.id, "x = 'child'\n", 0, "from the child")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        child_conn = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_conn != str(parent_conn)
    # The parent's own connection still works, and sees the child's write.
    assert _connection_identity(store) == parent_conn
    assert [p.edit for p in store.programs(run.id)] == ["from the child"]
    store.add_program(run.id, "x = 'parent'\n", 0, "from the parent")
    assert len(store.programs(run.id)) == 2


# ----------------------------------------------------------------------------- packaging
@pytest.mark.slow
def test_installed_wheel_ships_and_applies_the_migrations(tmp_path):
    """Built as a wheel and installed elsewhere, the package still finds its migrations."""
    import shutil
    import zipfile
    src = tmp_path / "src"  # build from a copy: the build writes into its source tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "discover", "search_spaces", "seeds", "evaluators"):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy(path, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("discover-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"discover/store/migrations/{p.relative_to(_db.MIGRATIONS_DIR).as_posix()}"
               for p in _db.MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert shipped <= names, sorted(shipped - names)

    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    check = ("import discover.store as s, sys; store = s.Store.open(sys.argv[1]); "
             "assert s.__file__.startswith(sys.argv[2]), s.__file__; print(store.list_runs())")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", check, f"sqlite:///{tmp_path / 'x.db'}", str(target)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
