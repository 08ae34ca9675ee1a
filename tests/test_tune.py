"""`discover tune`: the constant finder, substitution, and real Optuna studies in the store.

The constants of the DCFR seed are checked against the values Brown & Sandholm publish
(α = 3/2, β = 0, γ = 2) and against Python's own tokenizer. Tunes run for real: a
cfr_variants program is tuned on one small game (two-player Kuhn poker, 50 CFR iterations,
NumPy engine, through ``ONE_GAME``, the cfr_variants space restricted to that game), every
trial evaluated in the isolated executor. Expected scores come from evaluating the sources
in this process with the space's evaluator, and the study is read back with Optuna's own
``load_study``, never from what ``tune_program`` returns.

Why one file: every test drives the same tuner, from finding constants to the stored child.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import tokenize

import optuna
import pytest

from tests.pg import fresh_schema_url

from discover.config import RunConfig
from discover.space import TaskResult
from discover.store import Store
from discover.studies.tune import (STUDY_PREFIX, Constant, search_range, substitute, tune_program,
                           tunable_constants)
from search_spaces.cfr_variants import SPACE as CFR_SPACE
from search_spaces.cfr_variants import CfrVariantsSpace

ITERATIONS = 50
GAME = "kuhn_poker"
DCFR = CFR_SPACE.seeds()["dcfr"]
# DCFR with a too-flat average (γ = 0.25 instead of 2): 2.6 times more exploitable than DCFR
# at 50 iterations of Kuhn poker, so the tune has something to find. With the sampler's seed
# 0 every one of its first three random proposals beats it by at least 0.05.
MISTUNED = DCFR.replace("GAMMA = 2.0", "GAMMA = 0.25")


class OneGameSpace(CfrVariantsSpace):
    """cfr_variants with one train game and no held-out games (workers find it by name)."""

    name = "tests.test_tune:ONE_GAME"
    train_tasks = (GAME,)
    held_out_tasks = ()


ONE_GAME = OneGameSpace()
EVAL_OPTIONS = {"iterations": ITERATIONS, "backend": "numpy"}


def _evaluate_here(source: str) -> TaskResult:
    return ONE_GAME.evaluate(source, GAME, iterations=ITERATIONS, backend="numpy")


def _score_here(source: str) -> float:
    return ONE_GAME.score([_evaluate_here(source)])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'discover.db'}"
        return
    with fresh_schema_url() as url:
        yield url


def _seeded_run(url: str, source: str = DCFR, eval_options=None):
    """A run of ONE_GAME holding ``source`` as an evaluated seed, stored as the loop stores one."""
    store = Store.open(url)
    config = RunConfig(space=ONE_GAME.name, budget=4, workers=1, eval_options=eval_options or EVAL_OPTIONS)
    run = store.create_run("tune-me", ONE_GAME.name, config=config.to_json(), seed=0, budget=4,
                           mutator="offline", versions={})
    p = store.add_program(run.id, source, generation=0, edit="seed: dcfr", parents=[], mutator="seed")
    result = _evaluate_here(source)
    store.record_evaluation(p.id, GAME, 0, "train", result, device="cpu")
    score = ONE_GAME.score([result])
    store.set_program_status(p.id, "evaluated", score=score)
    return store, run, store.program(p.id)


def _study(url: str, name: str):
    # The store owns the database's alembic_version row, so Optuna's own schema check must be
    # skipped (a plain URL string would make load_study refuse the database).
    return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url, skip_compatibility_check=True))


# ----------------------------------------------------------------------------- constants
def test_dcfr_constants_are_the_published_exponents():
    cs = tunable_constants(DCFR)
    assert [(c.name, c.value, c.kind, c.text) for c in cs] == [
        ("ALPHA", 1.5, "float", "1.5"), ("BETA", 0.0, "float", "0.0"), ("GAMMA", 2.0, "float", "2.0")]
    lines = DCFR.splitlines()
    for c in cs:
        assert lines[c.line - 1] == f"{c.name} = {c.text}"
        assert lines[c.line - 1][c.col:c.col + len(c.text)] == c.text
    # Every position is a NUMBER token of Python's own tokenizer.
    numbers = {(t.start, t.string) for t in tokenize.generate_tokens(io.StringIO(DCFR).readline)
               if t.type == tokenize.NUMBER}
    assert all(((c.line, c.col), c.text) in numbers for c in cs)
    with pytest.raises(dataclasses_frozen_error()):
        cs[0].value = 3.0  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


RULES = '''"""Docstring with 2.5 and 1e-3: not code."""
import numpy as np
LIMIT = 7
# EVOLVE-BLOCK-START
ALPHA = 1.5
BETA = -0.25
STEPS = 500
FLAG = True
PAIR = (0.3, 20)
OPTS = {"lr": 2.5e-4, "name": "x"}


def rule(x, t, eps=1e-8, *, temperature=1.0):
    total = np.sum(x, axis=1, keepdims=True)
    for _ in range(3):
        x = x[:, 0] * 2 + x[-1] - 1.0 + np.zeros((2, 3))[0, 1]
    y = np.maximum(x, 0.0) ** 2 + t ** -0.5 + np.full(4, 0.01)
    z = x * 0.7 - 1 + softmax(y, temperature=0.5, axis=0) - (- 3.0)
    return total + y * z * 1.0 + 1e-12
# EVOLVE-BLOCK-END
TAIL = 9.5
'''


def test_the_rule_keeps_settings_and_skips_structure():
    cs = tunable_constants(RULES)
    got = [(c.name, c.value, c.kind, c.bound) for c in cs]
    fn_line = next(i for i, line in enumerate(RULES.splitlines(), 1) if line.startswith("    y = np.maximum"))
    assert got == [
        ("ALPHA", 1.5, "float", True), ("BETA", -0.25, "float", True), ("STEPS", 500, "int", True),
        ("PAIR[0]", 0.3, "float", True), ("PAIR[1]", 20, "int", True), ("lr", 2.5e-4, "float", True),
        ("eps", 1e-8, "float", True), ("temperature", 1.0, "float", True),
        # t ** -0.5 (folded minus) and the fill value 0.01; not ** 2, 0.0, axis, range(3), [0, 1]
        (f"rule:{fn_line}", -0.5, "float", False), (f"rule:{fn_line}", 0.01, "float", False),
        (f"rule:{fn_line + 1}", 0.7, "float", False), ("temperature", 0.5, "float", True),
        (f"rule:{fn_line + 1}", -3.0, "float", False),
        (f"rule:{fn_line + 2}", 1e-12, "float", False),
    ]
    assert [c.index for c in cs] == list(range(len(cs)))
    assert [c.text for c in cs if c.name == "BETA"] == ["-0.25"]
    assert [c.text for c in cs if not c.bound and c.value == -3.0] == ["- 3.0"]
    # Outside the block (LIMIT, TAIL, the docstring) nothing is found.
    assert not {"LIMIT", "TAIL"} & {c.name for c in cs}


def test_a_source_without_markers_is_all_block_and_errors_are_one_sentence():
    assert [(c.name, c.value) for c in tunable_constants("X = 3\ndef f(y):\n    return y * 0.5\n")] == \
        [("X", 3), ("f:3", 0.5)]
    with pytest.raises(ValueError, match="does not parse"):
        tunable_constants("def f(:\n")


def test_non_ascii_text_before_a_literal_keeps_columns_in_characters():
    src = 'def f(x):\n    return {"ε": 0.25, "γ": 0.5}["ε"] * x\n'
    cs = tunable_constants(src)
    assert [(c.name, c.value) for c in cs] == [("ε", 0.25), ("γ", 0.5)]
    line = src.splitlines()[1]
    assert [line[c.col:c.col + len(c.text)] for c in cs] == ["0.25", "0.5"]
    assert substitute(src, [0.125, 0.5]) == src.replace("0.25", "0.125")


# ----------------------------------------------------------------------------- ranges
def test_search_ranges():
    def c(value, kind):
        return Constant(index=0, value=value, line=1, col=0, text=repr(value), kind=kind, name="X", bound=True)

    r = search_range(c(1.5, "float"))
    assert (r.low, r.high, r.log, r.negate) == (pytest.approx(0.15), pytest.approx(15.0), True, False)
    r = search_range(c(-0.1, "float"))
    assert (r.low, r.high, r.log, r.negate) == (pytest.approx(0.01), pytest.approx(1.0), True, True)
    assert r.value(r.sampled(-0.1)) == -0.1
    r = search_range(c(0.0, "float"))
    assert (r.low, r.high, r.log) == (-1.0, 1.0, False)
    r = search_range(c(500, "int"))
    assert (r.low, r.high, r.log, r.kind) == (250, 1000, True, "int")
    r = search_range(c(-3, "int"))
    assert (r.low, r.high, r.negate, r.value(4)) == (2, 6, True, -4)
    r = search_range(c(0, "int"))
    assert (r.low, r.high, r.log) == (-2, 2, False)


# ----------------------------------------------------------------------------- substitute
def test_substitute_round_trips_and_changes_only_what_it_is_asked():
    for source in (DCFR, RULES, CFR_SPACE.seeds()["vad_cfr"]):
        cs = tunable_constants(source)
        assert substitute(source, [c.value for c in cs]) == source
        assert substitute(source, {}) == source
    out = substitute(DCFR, {2: 3.25})
    changed = [(a, b) for a, b in zip(DCFR.splitlines(), out.splitlines()) if a != b]
    assert changed == [("GAMMA = 2.0", "GAMMA = 3.25")]
    out = substitute(DCFR, [1.5, -0.375, 2])            # an int for a float constant stays a float
    assert "BETA = -0.375" in out and "GAMMA = 2.0" in out
    ns: dict = {}
    exec(compile(out, "<test>", "exec"), ns)
    assert (ns["ALPHA"], ns["BETA"], ns["GAMMA"]) == (1.5, -0.375, 2.0)
    assert isinstance(ns["GAMMA"], float)
    # A negative value as the base of ** gets parentheses: -0.5 ** t would be -(0.5 ** t).
    src = "def f(t):\n    return 0.5 ** t + t ** 0.5 + 0.5 .real\n"
    out = substitute(src, [-0.25, -0.25, -0.25])
    assert out == "def f(t):\n    return (-0.25) ** t + t ** -0.25 + (-0.25) .real\n"
    ns = {}
    exec(compile(out, "<test>", "exec"), ns)
    assert ns["f"](2.0) == pytest.approx(0.0625 + 2.0 ** -0.25 - 0.25)
    # Every literal of RULES changed at once: the result parses and reads back the new values.
    cs = tunable_constants(RULES)
    new = [(c.value * 3 if c.value else 1) if c.kind == "int" else -c.value * 1.75 for c in cs]
    out = substitute(RULES, new)
    ast.parse(out)
    assert [c.value for c in tunable_constants(out)] == new
    assert out.splitlines()[:3] == RULES.splitlines()[:3] and out.splitlines()[-1] == RULES.splitlines()[-1]


def test_substitute_refuses_bad_values():
    with pytest.raises(ValueError, match="integer"):
        substitute(RULES, {2: 2.5})
    with pytest.raises(ValueError, match="finite"):
        substitute(DCFR, {0: math.nan})
    with pytest.raises(ValueError, match="index"):
        substitute(DCFR, {7: 1.0})
    with pytest.raises(ValueError, match="one per constant"):
        substitute(DCFR, [1.0])


# ----------------------------------------------------------------------------- tune
def test_tune_stores_a_better_child_and_the_study(db_url):
    store, run, seed = _seeded_run(db_url, MISTUNED)
    reports = []
    result = tune_program(store, seed.id, trials=4, seed=0, workers=1, progress=reports.append)
    name = f"{STUDY_PREFIX}{seed.id}"
    assert result.study_name == name

    # The study, read back by Optuna itself from the same database.
    study = _study(db_url, name)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4
    assert list(trials[0].params.values()) == [1.5, 0.0, 0.25]       # trial 0: the original
    assert trials[0].value == pytest.approx(seed.score, abs=1e-12)
    assert [r.number for r in reports] == [0, 1, 2, 3] and all(r.total == 4 for r in reports)

    # The child: the best trial's constants, stored as the loop stores a mutation.
    best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
    assert best.number != 0 and best.value > seed.score
    child = store.program(result.child_id)
    assert (child.run_id, child.generation, child.status, child.mutator) == (run.id, 1, "evaluated", "tune")
    assert [(e.parent_id, e.role) for e in store.parents(child.id)] == [(seed.id, "parent")]
    # The values evaluated are the sampled ones rounded to 4 significant digits.
    expected_values = best.user_attrs["values"]
    assert expected_values == [float(f"{x:.4g}") for x in best.params.values()]
    assert [c.value for c in tunable_constants(child.source)] == expected_values
    assert child.source == substitute(seed.source, expected_values)
    # Its score is what the evaluator gives its source here, and not below the original's.
    assert child.score == pytest.approx(_score_here(child.source), abs=1e-12)
    assert child.score == pytest.approx(best.value, abs=1e-12)
    assert child.score >= seed.score
    evals = store.evaluations(child.id)
    assert [(e.task, e.seed, e.split, e.status) for e in evals] == [(GAME, 0, "train", "ok")]
    assert child.fingerprint is not None and len(child.fingerprint) == 336
    for c, v in zip(tunable_constants(seed.source), expected_values):
        if v != c.value:
            assert f"{c.name} {c.text} → " in child.edit

    # Resuming with the same number of trials runs none and stores nothing new.
    again = tune_program(store, seed.id, trials=4, seed=0, workers=1)
    assert again.child_id == child.id and len(_study(db_url, name).trials) == 4
    assert [p.id for p in store.programs(run.id)] == [seed.id, child.id]
    store.close()


# CFR+ with one setting K that changes nothing but fails the evaluation above 0.6 (the limit
# lives outside the evolve block, so K is the only tunable constant).
GUARDED = CFR_SPACE.seeds()["cfr_plus"].replace("# EVOLVE-BLOCK-START\n", "LIMIT = 0.6\n# EVOLVE-BLOCK-START\nK = 0.5\n").replace(
    "def update_regret(cum_regret, inst_regret, t, state, xp):\n",
    "def update_regret(cum_regret, inst_regret, t, state, xp):\n    if K > LIMIT:\n        raise ValueError('K is too large')\n")


def test_failing_trials_are_pruned_ties_keep_the_original_and_a_tune_resumes(tmp_path):
    assert [(c.name, c.value) for c in tunable_constants(GUARDED)] == [("K", 0.5)]
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store, run, seed = _seeded_run(url, GUARDED)
    first = tune_program(store, seed.id, trials=2, seed=0, workers=1)
    name = first.study_name
    _study(url, name).ask()                    # a trial left running, as by a killed tune
    result = tune_program(store, seed.id, trials=5, seed=0, workers=1)
    trials = _study(url, name).trials
    states = optuna.trial.TrialState
    assert len(trials) == 6 and [t.state for t in trials].count(states.FAIL) == 1   # 5 finished + the stale one
    finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    assert finished[0].params == {"c0:K": 0.5} and finished[0].value == pytest.approx(seed.score, abs=1e-12)
    # The resumed sampler did not replay the first tune's proposals.
    ks = [t.params["c0:K"] for t in finished]
    assert len(set(ks)) == len(ks)
    for t in finished:
        if t.params["c0:K"] > 0.6:
            assert t.state == states.PRUNED and "K is too large" in t.user_attrs["error"]
        else:                                   # K changes nothing: every other trial ties
            assert t.state == states.COMPLETE and t.value == finished[0].value
    assert any(t.state == states.PRUNED for t in finished)
    # Ties go to the original: nothing is stored.
    assert result.child_id is None and result.best_trial == 0 and result.best_values == (0.5,)
    assert result.original_score == result.best_score == pytest.approx(seed.score, abs=1e-12)
    assert [p.id for p in store.programs(run.id)] == [seed.id]
    store.close()


def test_errors_are_one_clear_sentence(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store, run, seed = _seeded_run(url)
    plain = store.add_program(run.id, CFR_SPACE.seeds()["cfr_plus"], generation=0, edit="seed", parents=[])
    with pytest.raises(ValueError, match="no program with id 999"):
        tune_program(store, 999, trials=2)
    with pytest.raises(ValueError, match="no tunable constants"):
        tune_program(store, plain.id, trials=2)
    with pytest.raises(ValueError, match="at least 1"):
        tune_program(store, seed.id, trials=0)
    store.close()


# ----------------------------------------------------------------------------- CLI
def _wired_parser():
    """discover.cli.build_parser, with `tune` added if cli.py does not add it yet."""
    from discover.cli import tune as cli_tune

    parser = _BUILD_PARSER()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "tune" not in sub.choices:
        def command(name, help, example):
            return sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)

        cli_tune.register(sub, command)
    return parser


from discover import cli as _cli  # noqa: E402

_BUILD_PARSER = _cli.build_parser


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Runs ``discover.cli.main(argv)`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(_cli, "build_parser", _wired_parser)

    def run(*argv: str):
        code = _cli.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_tune_end_to_end(tmp_path, run_cli):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store, run, seed = _seeded_run(url, MISTUNED)
    store.close()
    code, out, err = run_cli("tune", str(seed.id), "--trials", "3", "--db", url, "--workers", "1",
                          "--seed", "0", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["program_id"] == seed.id and res["trials"] == 3
    assert "[1/3] trial 0  score" in err and "[3/3] trial 2" in err
    study = _study(url, res["study_name"])
    assert len(study.trials) == 3
    assert res["original_score"] == pytest.approx(seed.score, abs=1e-12)
    store = Store.open(url)
    if res["child_id"] is not None:
        child = store.program(res["child_id"])
        assert child.score == pytest.approx(res["child_score"]) and child.score >= seed.score
    # The table, without --json, on the resumed study (no new trials).
    code, out, err = run_cli("tune", str(seed.id), "--trials", "3", "--db", url, "--workers", "1")
    assert code == 0, err
    assert "ALPHA" in out and "GAMMA" in out and "score" in out
    # Bad input: one line, exit status 2.
    code, out, err = run_cli("tune", "12345", "--trials", "2", "--db", url)
    assert code == 2 and err.strip().splitlines() == [f"discover: error: no program with id 12345 in {url}"]
    code, out, err = run_cli("tune", str(seed.id), "--trials", "0", "--db", url)
    assert code == 2 and "at least 1" in err
    help_text = _wired_parser()._subparsers._group_actions[0].choices["tune"].format_help()
    assert "example:" in help_text and "discover tune" in help_text
    store.close()


def test_tune_and_the_offline_mutator_share_one_rule_for_knobs():
    """An axis, an index, a shape and a keyword count are never knobs; a fill value and a
    discount are, for both the tuner and the mutator's perturbation."""
    import ast as _ast

    from discover.knobs import is_structural
    from discover.mutators._syntax import annotate_parents
    source = ("def f(x, xp):\n"
              "    y = xp.sum(x, 1) + x[:, 2] + xp.zeros((3, 4))[0, 0]\n"
              "    z = xp.full(x.shape, 0.5) * 0.9 + xp.roll(x, shift=2)\n"
              "    return y + z.mean(0)\n")
    tree = _ast.parse(source)
    annotate_parents(tree)
    numbers = [n for n in _ast.walk(tree) if isinstance(n, _ast.Constant) and isinstance(n.value, (int, float))]
    parents = {c: p for p in _ast.walk(tree) for c in _ast.iter_child_nodes(p)}
    mutator = {n.value for n in numbers if not is_structural(n, lambda node: getattr(node, "_parent", None))}
    tuner = {n.value for n in numbers if not is_structural(n, parents.get)}
    assert mutator == tuner == {0.5, 0.9}
    assert {c.value for c in tunable_constants(source)} == {0.5, 0.9}
