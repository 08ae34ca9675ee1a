"""The CFR engine against OpenSpiel's C++ solvers, and its candidate validation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pyspiel
import pytest

from evaluators import best_response as br
from evaluators import cfr, games

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "cfr_variants"
GOOFSPIEL4 = "goofspiel(imp_info=True,num_cards=4,points_order=descending)"
PARITY_GAMES = ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)", GOOFSPIEL4,
                "kuhn_poker(players=4)"]
SOLVERS = {"cfr": pyspiel.CFRSolver, "cfr_plus": pyspiel.CFRPlusSolver}


def load_rules(name: str) -> dict:
    """The four functions of a seed file, as the space finds them: by exec'ing it."""
    namespace: dict = {}
    exec(compile((SEEDS / f"{name}.py").read_text(), f"{name}.py", "exec"), namespace)
    return {k: namespace[k] for k in cfr.RULE_NAMES}


@lru_cache(maxsize=None)
def openspiel_exploitability(game_string: str, solver: str, iterations: int) -> float:
    game = games.load_game(game_string)
    s = SOLVERS[solver](game)
    for _ in range(iterations):
        s.evaluate_and_update_policy()
    return pyspiel.exploitability(game, s.average_policy())


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("seed", ["cfr", "cfr_plus"])
@pytest.mark.parametrize("game_string", PARITY_GAMES)
def test_seeds_reproduce_openspiel_solvers(game_string, seed, backend):
    run = cfr.run_cfr(load_rules(seed), game_string, 100, checkpoints=[10, 100], backend=backend)
    assert run.backend == backend
    assert [it for it, _ in run.curve] == [10, 100]
    for it, value in run.curve:
        assert value == pytest.approx(openspiel_exploitability(game_string, seed, it), rel=1e-9)


def test_cfr_plus_reaches_the_kuhn_game_value():
    # OpenSpiel's cfr_test.py: the game value of Kuhn poker for player 0 is -1/18.
    run = cfr.run_cfr(load_rules("cfr_plus"), "kuhn_poker", 1000, backend="numpy")
    value = br.on_policy_values("kuhn_poker", run.average_policy)[0]
    assert value == pytest.approx(-1 / 18, abs=1e-3)
    assert run.curve[-1][1] == pytest.approx(8.736532e-5, rel=1e-3)  # OpenSpiel's CFR+ @1000


def test_run_record_and_checkpoints():
    run = cfr.run_cfr(load_rules("cfr"), "kuhn_poker", 100)
    assert run.game == games.canonical_game_string("kuhn_poker")
    assert run.iterations == 100
    assert [it for it, _ in run.curve] == cfr.log_checkpoints(100)
    assert run.backend == cfr.preferred_backend(games.load_game_arrays("kuhn_poker"), 100) == "numpy"
    assert run.wall_time > 0
    for policy, legal in zip(run.average_policy, games.load_game_arrays("kuhn_poker").legal):
        assert policy.shape == legal.shape
        np.testing.assert_allclose(policy.sum(axis=1), 1.0, atol=1e-12)
    # Exploitability of the average policy shrinks along the run.
    assert run.curve[-1][1] < run.curve[0][1]


def test_segments_do_not_change_the_result():
    rules = load_rules("cfr_plus")
    one = cfr.run_cfr(rules, "kuhn_poker(players=3)", 60, checkpoints=[60], backend="jax")
    many = cfr.run_cfr(rules, "kuhn_poker(players=3)", 60, checkpoints=[1, 7, 30, 59], backend="jax")
    assert one.curve[-1] == many.curve[-1]
    for x, y in zip(one.average_policy, many.average_policy):
        np.testing.assert_array_equal(x, y)


def test_log_checkpoints():
    assert cfr.log_checkpoints(1000) == [1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000]
    assert cfr.log_checkpoints(1) == [1]
    assert cfr.log_checkpoints(150, per_decade=1) == [1, 10, 100, 150]
    points = cfr.log_checkpoints(12345, per_decade=7)
    assert points == sorted(set(points)) and points[-1] == 12345
    with pytest.raises(ValueError):
        cfr.log_checkpoints(0)


# A stateful candidate (regret matching+ on an exponential average of regrets, and a
# counter): the two backends must agree on candidates with state too.
STATEFUL = '''
def init_state(num_infosets, num_actions, xp):
    return {"ewma": xp.zeros((num_infosets, num_actions)), "count": xp.zeros(())}

def update_regret(cum_regret, inst_regret, t, state, xp):
    ewma = 0.8 * state["ewma"] + 0.2 * inst_regret
    return xp.maximum(cum_regret + inst_regret + 0.1 * ewma, 0.0), {"ewma": ewma, "count": state["count"] + 1}

def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    return xp.where(total > 0.0, positive / xp.where(total > 0.0, total, 1.0), uniform), state

def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + (t ** 2) * reach[:, None] * policy, state
'''


def rules_from_source(source: str, **overrides) -> dict:
    namespace: dict = {}
    exec(source, namespace)
    rules = {k: namespace[k] for k in cfr.RULE_NAMES}
    rules.update(overrides)
    return rules


def test_backends_agree_on_a_stateful_candidate():
    rules = rules_from_source(STATEFUL)
    a = cfr.run_cfr(rules, "leduc_poker", 50, checkpoints=[50], backend="jax")
    b = cfr.run_cfr(rules, "leduc_poker", 50, checkpoints=[50], backend="numpy")
    assert a.curve[-1][1] == pytest.approx(b.curve[-1][1], rel=1e-9)


def test_auto_compiles_only_where_it_pays_on_the_cpu():
    small = games.load_game_arrays("kuhn_poker")
    large = games.load_game_arrays("liars_dice(numdice=1,dice_sides=5)")
    assert cfr.preferred_backend(small, 1000) == "numpy"
    assert cfr.preferred_backend(large, 100_000) == "jax"
    assert cfr.compile_cfr(load_rules("cfr_plus"), small, "auto", iterations=10).backend == "numpy"


def test_auto_falls_back_to_numpy_for_untraceable_candidates():
    plus = load_rules("cfr_plus")

    def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
        if float(xp.sum(cum_regret)) < 0.0:  # a Python branch on a value: not traceable
            raise AssertionError("regrets are floored at zero")
        return plus["derive_policy"](cum_regret, inst_regret, legal, t, state, xp)

    rules = dict(plus, derive_policy=derive_policy)
    # Without an iteration count "auto" prefers JAX, so this exercises the fallback.
    assert cfr.compile_cfr(rules, "kuhn_poker", "auto").backend == "numpy"
    run = cfr.run_cfr(rules, "kuhn_poker", 50, checkpoints=[50])
    assert run.backend == "numpy"
    assert run.curve[-1][1] == pytest.approx(
        openspiel_exploitability("kuhn_poker", "cfr_plus", 50), rel=1e-9)


# Invalid candidates: each replaces one function of CFR+ and breaks the contract from a
# given iteration on (t is a float, so the switch is traceable).
def _derive(transform):
    plus = load_rules("cfr_plus")

    def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
        policy, state = plus["derive_policy"](cum_regret, inst_regret, legal, t, state, xp)
        return transform(policy, legal, t, xp), state

    return dict(plus, derive_policy=derive_policy)


INVALID = {
    "nan": (_derive(lambda p, legal, t, xp: xp.where(t >= 3, xp.nan, p)),
            "derive_policy returned a policy with NaN or infinite entries at iteration 3"),
    "negative": (_derive(lambda p, legal, t, xp: xp.where(t >= 2, -p, p)),
                 "derive_policy returned a policy with negative probabilities at iteration 2"),
    "not normalised": (_derive(lambda p, legal, t, xp: xp.where(t >= 4, 0.5 * p, p)),
                       "derive_policy returned a policy whose rows do not sum to 1 at iteration 4"),
    "illegal mass": (_derive(lambda p, legal, t, xp: xp.where(t >= 2, (p + 1.0 - legal) / (1.0 + xp.sum(1.0 - legal, axis=1, keepdims=True)), p)),
                     "derive_policy returned a policy with mass on illegal actions at iteration 2"),
    "negative average": (
        dict(load_rules("cfr_plus"),
             update_average=lambda cum, policy, reach, t, state, xp: (cum - t * reach[:, None] * policy, state)),
        "update_average returned a cumulative policy with negative entries at iteration 1"),
}


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_candidates_are_reported(case, backend):
    rules, message = INVALID[case]
    with pytest.raises(cfr.InvalidCandidate) as error:
        cfr.run_cfr(rules, GOOFSPIEL4, 20, backend=backend)
    assert str(error.value).startswith(message + " (player 0)")


@pytest.mark.parametrize("backend", ["numpy", "jax", "auto"])
def test_structural_violations(backend):
    plus = load_rules("cfr_plus")
    narrow = dict(plus, derive_policy=lambda c, r, legal, t, s, xp: (legal[:, :1], s))
    with pytest.raises(cfr.InvalidCandidate, match=r"derive_policy returned shape \(6, 1\), expected \(6, 2\)"):
        cfr.run_cfr(narrow, "kuhn_poker", 5, backend=backend)
    lost_key = dict(plus, init_state=lambda i, a, xp: {"x": xp.zeros(i)},
                    update_regret=lambda c, r, t, s, xp: (c + r, {}))
    with pytest.raises(cfr.InvalidCandidate, match="update_regret returned state keys"):
        cfr.run_cfr(lost_key, "kuhn_poker", 5, backend=backend)
    missing = {k: v for k, v in plus.items() if k != "update_average"}
    with pytest.raises(cfr.InvalidCandidate, match="does not define update_average"):
        cfr.run_cfr(missing, "kuhn_poker", 5, backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "jax", "auto"])
def test_candidate_exceptions_propagate(backend):
    def update_regret(cum_regret, inst_regret, t, state, xp):
        raise ZeroDivisionError("candidate bug")

    rules = dict(load_rules("cfr"), update_regret=update_regret)
    with pytest.raises(ZeroDivisionError, match="candidate bug"):
        cfr.run_cfr(rules, "kuhn_poker", 5, backend=backend)


def test_numpy_candidates_cannot_corrupt_the_engine():
    # In-place edits of the arguments must not leak into the game or the run.
    plus = load_rules("cfr_plus")

    def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
        policy, state = plus["derive_policy"](cum_regret, inst_regret, legal, t, state, xp)
        legal[:] = 0.0
        cum_regret[:] = 1e9
        return policy, state

    run = cfr.run_cfr(dict(plus, derive_policy=derive_policy), "kuhn_poker", 30,
                      checkpoints=[30], backend="numpy")
    assert run.curve[-1][1] == pytest.approx(
        openspiel_exploitability("kuhn_poker", "cfr_plus", 30), rel=1e-9)
    assert games.load_game_arrays("kuhn_poker").legal[0].min() == 1.0


def test_rejects_bad_arguments():
    rules = load_rules("cfr")
    with pytest.raises(ValueError, match="backend"):
        cfr.run_cfr(rules, "kuhn_poker", 5, backend="torch")
    with pytest.raises(ValueError, match="iterations"):
        cfr.run_cfr(rules, "kuhn_poker", 0)
    with pytest.raises(ValueError, match="checkpoints"):
        cfr.run_cfr(rules, "kuhn_poker", 5, checkpoints=[6])


def test_checkpoint_exploitability_by_either_best_response(monkeypatch):
    arrays = games.load_game_arrays("leduc_poker")
    policies = cfr.run_cfr(load_rules("cfr"), arrays, 20, backend="numpy").average_policy
    by_numpy = cfr.checkpoint_exploitability(arrays, policies)
    monkeypatch.setattr(cfr, "JIT_BEST_RESPONSE_AFTER", 0.0)
    by_jit = cfr.checkpoint_exploitability(arrays, policies)
    assert by_jit == pytest.approx(by_numpy, abs=1e-12)
    assert by_numpy == pytest.approx(openspiel_exploitability("leduc_poker", "cfr", 20), rel=1e-9)


def test_init_state_may_need_jax_numpy():
    plus = load_rules("cfr_plus")

    def init_state(num_infosets, num_actions, xp):
        return {"mark": xp.zeros(num_infosets).at[0].set(1.0)}  # jax.numpy only

    run = cfr.run_cfr(dict(plus, init_state=init_state), "kuhn_poker", 20, checkpoints=[20], backend="jax")
    assert run.backend == "jax"
    assert run.curve[-1][1] == pytest.approx(
        openspiel_exploitability("kuhn_poker", "cfr_plus", 20), rel=1e-9)
