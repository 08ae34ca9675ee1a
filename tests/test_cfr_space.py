"""The cfr_variants space: contract text, evaluation and score, probe fingerprint, mechanisms.

The score is checked against the formula computed here from two independent ``run_cfr``
curves; exploitabilities come from the engine, whose agreement with OpenSpiel is tested
with the engine.
"""

from __future__ import annotations

import ast
import math
import time

import numpy as np
import pytest

from search_spaces.game_space import GameSpace
from tests.reference_cache import private_reference_cache  # noqa: F401  (autouse fixture)

from evaluators.cfr import log_checkpoints, run_cfr
from search_spaces.cfr_variants import (
    HELD_OUT_TASKS, OPTIONAL_HELD_OUT_TASKS, SPACE, TRAIN_TASKS, CfrVariantsSpace, load_rules)
from search_spaces.cfr_variants import scoring

RULES = ("init_state", "update_regret", "derive_policy", "update_average")
ARITY = {"init_state": 3, "update_regret": 5, "derive_policy": 6, "update_average": 6}
SEED_NAMES = {"cfr", "cfr_plus", "linear_cfr", "dcfr", "pcfr_plus", "pdcfr_plus", "vad_cfr"}




def _namespace(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<test>", "exec"), namespace)
    return namespace


def _seed(name: str) -> str:
    return SPACE.seeds()[name]


# ---- the space's declaration ------------------------------------------------------------

def test_space_declares_contract_tasks_and_seeds():
    assert isinstance(SPACE, CfrVariantsSpace)
    assert SPACE.name == "cfr_variants"
    assert SPACE.required_functions == RULES
    assert SEED_NAMES <= set(SPACE.seeds())
    assert SPACE.train_tasks == TRAIN_TASKS and len(TRAIN_TASKS) == 4
    assert "kuhn_poker(players=3)" in TRAIN_TASKS and "leduc_poker" in TRAIN_TASKS
    assert any("num_cards=4" in t and "imp_info=True" in t and "descending" in t for t in TRAIN_TASKS)
    assert "liars_dice(numdice=1,dice_sides=5)" in TRAIN_TASKS
    assert "kuhn_poker(players=4)" in HELD_OUT_TASKS
    assert any("num_cards=5" in t for t in HELD_OUT_TASKS)
    assert OPTIONAL_HELD_OUT_TASKS == ("leduc_poker(players=3)",)
    assert SPACE.stochastic is False


def test_doc_states_signatures_order_score_and_invalidity():
    doc = SPACE.doc
    for signature in ("def init_state(num_infosets: int, num_actions: int, xp)",
                      "def update_regret(cum_regret, inst_regret, t, state, xp)",
                      "def derive_policy(cum_regret, inst_regret, legal, t, state, xp)",
                      "def update_average(cum_policy, policy, reach, t, state, xp)"):
        assert signature in doc
    for phrase in ("[I, A]", "alternating", "log10", "1e-15", "10, 18, 32, 56, 100, 178, 316, 562",
                   "invalid", "xp.where", "CFR+"):
        assert phrase in doc


def test_every_train_and_held_out_game_loads():
    import pyspiel
    from evaluators.games import load_game

    for task in TRAIN_TASKS + HELD_OUT_TASKS + OPTIONAL_HELD_OUT_TASKS:
        game = load_game(task)
        assert game.get_type().dynamics == pyspiel.GameType.Dynamics.SEQUENTIAL


# ---- evaluation and score ---------------------------------------------------------------

def test_score_checkpoints_start_at_ten():
    assert scoring.score_checkpoints(1000) == [10, 18, 32, 56, 100, 178, 316, 562, 1000]
    assert scoring.score_checkpoints(100) == [10, 18, 32, 56, 100]
    assert scoring.score_checkpoints(5) == [5]


@pytest.mark.parametrize("task", TRAIN_TASKS)
def test_cfr_plus_seed_scores_zero_on_every_train_game(task):
    result = SPACE.evaluate(_seed("cfr_plus"), task, iterations=100, backend="numpy")
    assert result.status == "ok", result.error
    assert result.metrics["score"] == 0.0
    assert result.metrics["final_exploitability"] == result.metrics["cfr_plus_final_exploitability"]
    assert result.metrics["backend"] == "numpy"
    assert [p[0] for p in result.curve] == log_checkpoints(100)


def test_score_matches_formula_from_two_independent_runs():
    result = SPACE.evaluate(_seed("dcfr"), "leduc_poker", iterations=100, backend="numpy")
    assert result.status == "ok", result.error

    checkpoints = log_checkpoints(100)
    ours = dict(run_cfr(load_rules(_seed("dcfr"))[0], "leduc_poker", 100, checkpoints, "numpy").curve)
    cfr_plus = dict(run_cfr(load_rules(_seed("cfr_plus"))[0], "leduc_poker", 100, checkpoints, "numpy").curve)
    counted = [10, 18, 32, 56, 100]
    expected = sum(math.log10(max(cfr_plus[c], 1e-15) / max(ours[c], 1e-15)) for c in counted) / len(counted)

    assert result.metrics["score"] == pytest.approx(expected, abs=1e-12)
    assert result.metrics["final_exploitability"] == pytest.approx(ours[100], rel=1e-12)
    assert result.metrics["cfr_plus_final_exploitability"] == pytest.approx(cfr_plus[100], rel=1e-12)
    assert [list(p) for p in result.curve] == [[c, pytest.approx(ours[c], rel=1e-12)] for c in checkpoints]
    # DCFR beats CFR+ on Leduc over the first 100 iterations (Brown & Sandholm 2019).
    assert result.metrics["score"] > 0.0


def test_relative_score_floors_and_validates():
    curve = [(1, 0.0), (10, 1e-3)]
    reference = [(1, 1e-13), (10, 1e-2)]
    assert scoring.relative_score(curve, reference, [1]) == pytest.approx(2.0)  # floor 1e-15
    assert scoring.relative_score(curve, reference, [1, 10]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="missing"):
        scoring.relative_score(curve, reference, [100])
    with pytest.raises(ValueError):
        scoring.relative_score(curve, reference, [])


def test_reference_curve_is_cached_on_disk(private_reference_cache, monkeypatch):
    first = SPACE.evaluate(_seed("pcfr_plus"), "kuhn_poker", iterations=50, backend="numpy")
    files = list(private_reference_cache.glob("*.json"))
    assert len(files) == 1
    GameSpace._curves.clear()
    begin = time.perf_counter()
    monkeypatch.setattr(type(SPACE), "run", lambda *a, **k: pytest.fail("the reference was recomputed"))
    cached = SPACE.reference_curve("kuhn_poker", 50, log_checkpoints(50), {"backend": "numpy"})
    assert time.perf_counter() - begin < 0.5
    assert cached[-1][1] == first.metrics["cfr_plus_final_exploitability"]




def test_nan_policy_is_invalid_with_reason():
    source = _seed("cfr_plus").replace(
        "return xp.where(total > 0.0, positive / safe_total, uniform), state",
        "return xp.where(total > 0.0, positive / safe_total, uniform) * xp.nan, state")
    assert source != _seed("cfr_plus")
    result = SPACE.evaluate(source, "kuhn_poker", iterations=10, backend="numpy")
    assert result.status == "invalid"
    assert "derive_policy" in result.error and "NaN" in result.error


def test_candidate_exceptions_propagate():
    source = _seed("cfr_plus").replace("return {}", "raise RuntimeError('broken rule')")
    with pytest.raises(RuntimeError, match="broken rule"):
        SPACE.evaluate(source, "kuhn_poker", iterations=10, backend="numpy")


# ---- probe ------------------------------------------------------------------------------


def test_probe_distinguishes_cfr_from_cfr_plus():
    cfr = SPACE.probe(_namespace(_seed("cfr")))
    cfr_plus = SPACE.probe(_namespace(_seed("cfr_plus")))
    assert cfr.dtype == np.float64 and cfr.ndim == 1 and cfr.shape == cfr_plus.shape
    assert np.linalg.norm(cfr - cfr_plus) > 0.1




def test_probe_is_deterministic_fast_and_separates_all_seeds():
    prints = {}
    for name in sorted(SEED_NAMES):
        namespace = _namespace(_seed(name))
        begin = time.perf_counter()
        prints[name] = SPACE.probe(namespace)
        assert time.perf_counter() - begin < 0.05
        np.testing.assert_array_equal(prints[name], SPACE.probe(namespace))
        assert np.all(np.isfinite(prints[name]))
    names = sorted(prints)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.linalg.norm(prints[a] - prints[b]) > 0.1, (a, b)


def test_probe_rejects_missing_nan_and_wrong_shape():
    namespace = _namespace(_seed("cfr_plus"))
    del namespace["derive_policy"]
    with pytest.raises(ValueError, match="derive_policy"):
        SPACE.probe(namespace)

    namespace = _namespace(_seed("cfr_plus"))
    namespace["derive_policy"] = lambda cum, inst, legal, t, state, xp: (cum * np.nan, state)
    with pytest.raises(ValueError, match="derive_policy.*NaN"):
        SPACE.probe(namespace)

    namespace = _namespace(_seed("cfr_plus"))
    namespace["update_regret"] = lambda cum, inst, t, state, xp: (cum[:, :2], state)
    with pytest.raises(ValueError, match="update_regret.*shape"):
        SPACE.probe(namespace)

    namespace = _namespace(_seed("cfr_plus"))
    namespace["update_average"] = lambda cum, pol, reach, t, state, xp: cum + pol
    with pytest.raises(ValueError, match="update_average.*pair"):
        SPACE.probe(namespace)


# ---- mechanisms -------------------------------------------------------------------------

def _with_mechanism(name: str) -> dict:
    """CFR+ with the mechanism's functions put in its place (state keys merged)."""
    base = _namespace(_seed("cfr_plus"))
    mechanism = _namespace(SPACE.mechanisms[name])
    rules = {n: base[n] for n in RULES}
    for n in RULES[1:]:
        if n in mechanism:
            rules[n] = mechanism[n]
    if "init_state" in mechanism:
        def init_state(i, a, xp, _first=base["init_state"], _second=mechanism["init_state"]):
            return {**_first(i, a, xp), **_second(i, a, xp)}
        rules["init_state"] = init_state
    return rules


def test_mechanisms_are_complete_rule_definitions():
    assert len(SPACE.mechanisms) >= 10
    defined = set()
    for name, source in SPACE.mechanisms.items():
        tree = ast.parse(source)
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        rules = [f for f in functions if f in RULES[1:]]
        assert rules, f"{name} defines no rule function"
        for f in functions.values():
            if f.name in ARITY:
                assert len(f.args.args) == ARITY[f.name], (name, f.name)
        defined.update(rules)
    assert defined == set(RULES[1:])
    for required in ("regret_matching_plus", "dcfr_discounting", "linear_averaging",
                     "quadratic_averaging", "predictive_regret_matching", "warm_start_averaging",
                     "volatility_adaptive_discount"):
        assert required in SPACE.mechanisms


@pytest.mark.parametrize("name", sorted(SPACE.mechanisms))
def test_each_mechanism_is_a_valid_rule(name):
    rules = _with_mechanism(name)
    fingerprint = SPACE.probe(rules)
    assert np.all(np.isfinite(fingerprint))
    run = run_cfr(rules, "kuhn_poker", 200, [200], backend="numpy")
    assert run.curve[-1][1] < 0.46  # better than the uniform policy (0.458333)


@pytest.mark.slow
@pytest.mark.parametrize("task", TRAIN_TASKS)
def test_cfr_plus_seed_scores_zero_at_1000_iterations_compiled(task):
    result = SPACE.evaluate(_seed("cfr_plus"), task)
    assert result.status == "ok", result.error
    assert result.metrics["backend"] == "jax"
    assert result.metrics["score"] == 0.0
    assert [p[0] for p in result.curve] == log_checkpoints(1000)


def test_fitness_prefers_robust_improvement_over_a_large_gain_on_one_game():
    from discover.space import TaskResult
    from search_spaces.cfr_variants import SPACE
    from search_spaces.cfr_variants.scoring import balanced_fitness

    def results(*scores):
        return [TaskResult(status="ok", metrics={"score": s}) for s in scores]
    # CFR+ against itself: 0.
    assert SPACE.score(results(0.0, 0.0, 0.0, 0.0)) == 0.0
    # Eleven decades on one small game do not buy a loss on another.
    lopsided = SPACE.score(results(11.0, -0.3, 0.5, 0.2))
    robust = SPACE.score(results(0.6, 0.3, 0.5, 0.2))
    assert robust > lopsided
    assert lopsided < (11.0 - 0.3 + 0.5 + 0.2) / 4  # the plain mean would have preferred it
    # The formula: mean of gains capped at one decade, plus the weakest game.
    assert balanced_fitness([2.0, 0.5, -0.1, 0.3]) == pytest.approx((1.0 + 0.5 - 0.1 + 0.3) / 4 - 0.1)
    # A failed game makes the program fail.
    assert SPACE.score(results(1.0, 1.0, 1.0) + [TaskResult.failure("invalid", "nan policy")]) == float("-inf")
