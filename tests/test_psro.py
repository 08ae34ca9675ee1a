"""Exact PSRO (evaluators.psro) against OpenSpiel's own computations and published figures.

Payoff tensors are checked entry by entry against ``expected_game_score.policy_value``,
best responses against ``best_response.BestResponsePolicy``, mixtures against
``policy_aggregator.PolicyAggregator``; the two-player Kuhn curves against the figures in
the project's FACTS (uniform 0.125 / 0.0833 / 0.0457 / 0.0319 at iterations 5 / 10 / 30 / 50,
Nash 0.0556 at 5 and 0 from 10).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from open_spiel.python.algorithms import best_response as os_best_response
from open_spiel.python.algorithms import expected_game_score, policy_aggregator

from evaluators import best_response as br
from evaluators import games
from evaluators.psro import (
    InvalidCandidate, check_mixtures, member_reaches, mixture_policy, payoff_tensor, run_psro)

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "psro_meta_solvers"
GOOFSPIEL4 = "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=4,points_order=descending))"
TRAIN_GAMES = ["kuhn_poker(players=3)", "leduc_poker", GOOFSPIEL4, "liars_dice(numdice=1,dice_sides=5)"]


def _seed(name: str) -> dict:
    namespace: dict = {}
    exec(compile((SEEDS / f"{name}.py").read_text(), "<candidate>", "exec"), namespace)
    return namespace


def _uniform(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state


def _random_policies(arrays, rng, sparsity=0.3):
    """Random policies with some legal actions at probability zero, so that some
    information sets are unreachable for some members."""
    out = []
    for legal in arrays.legal:
        x = rng.random(legal.shape) ** 2 * legal
        x = np.where(rng.random(legal.shape) < sparsity, 0.0, x)
        keep = np.argmax(x + legal * rng.random(legal.shape) * 1e-3, axis=1)
        x[np.arange(len(x)), keep] += (x.sum(axis=1) == 0) * 1.0
        out.append(x / x.sum(axis=1, keepdims=True))
    return out


def _mixtures(arrays, rng, size):
    """Per player: a random population of ``size`` policies, its own infoset reaches, and
    random weights with one zero."""
    pops = [_random_policies(arrays, rng) for _ in range(size)]
    out = []
    for p in range(arrays.num_players):
        members = np.stack([pop[p] for pop in pops])
        reach = np.stack([member_reaches(arrays, pop)[1][p] for pop in pops])
        weights = rng.random(size)
        weights[0] = 0.0
        out.append((members, reach, weights / weights.sum()))
    return out


# ---- the Kuhn poker figures ------------------------------------------------------------

def test_uniform_meta_solver_on_kuhn_matches_the_reference_figures():
    run = run_psro(_uniform, _uniform, "kuhn_poker", 50, checkpoints=[5, 10, 30, 50])
    curve = dict(run.curve)
    assert curve[5] == pytest.approx(0.125, abs=5e-5)
    assert curve[10] == pytest.approx(0.0833, abs=5e-5)
    assert curve[30] == pytest.approx(0.0457, abs=5e-5)
    assert curve[50] == pytest.approx(0.0319, abs=5e-5)


def test_nash_seed_solves_kuhn_by_iteration_ten():
    seed = _seed("nash")
    run = run_psro(seed["train_meta_solver"], seed["eval_meta_solver"], "kuhn_poker", 12,
                   checkpoints=[5, 10, 12])
    curve = dict(run.curve)
    assert curve[5] == pytest.approx(0.0556, abs=5e-5)
    assert abs(curve[10]) <= 1e-9 and abs(curve[12]) <= 1e-9


# ---- exact payoffs -----------------------------------------------------------------------

@pytest.mark.parametrize("game_string,iterations", [("kuhn_poker", 6), ("kuhn_poker(players=3)", 3)])
def test_payoffs_match_openspiel_expected_returns(game_string, iterations):
    run = run_psro(_uniform, _uniform, game_string, iterations)
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    root = game.new_initial_state()
    n = iterations + 1
    assert run.payoffs.shape == (n,) * arrays.num_players + (arrays.num_players,)
    for profile in itertools.product(range(n), repeat=arrays.num_players):
        policies = [run.populations[p][j] for p, j in enumerate(profile)]
        tabular = games.to_tabular_policy(arrays, policies, game)
        expected = expected_game_score.policy_value(root, [tabular] * arrays.num_players)
        np.testing.assert_allclose(run.payoffs[profile], expected, rtol=0, atol=1e-12)


def test_payoff_tensor_of_unequal_populations_matches_openspiel():
    arrays = games.load_game_arrays("kuhn_poker(players=3)")
    game = games.load_game(arrays.game_string)
    rng = np.random.default_rng(5)
    populations = [[_random_policies(arrays, rng)[p] for _ in range(size)]
                   for p, size in enumerate((2, 3, 1))]
    tensor = payoff_tensor(arrays, populations)
    assert tensor.shape == (2, 3, 1, 3)
    root = game.new_initial_state()
    for profile in itertools.product(range(2), range(3), range(1)):
        tabular = games.to_tabular_policy(
            arrays, [populations[p][j] for p, j in enumerate(profile)], game)
        expected = expected_game_score.policy_value(root, [tabular] * 3)
        np.testing.assert_allclose(tensor[profile], expected, rtol=0, atol=1e-12)


# ---- the best-response oracle ------------------------------------------------------------

@pytest.mark.parametrize("game_string", TRAIN_GAMES)
def test_best_response_oracle_matches_openspiel_against_mixtures(game_string):
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    rng = np.random.default_rng(len(game_string))
    played = [mixture_policy(members, reach, weights, legal)
              for (members, reach, weights), legal in zip(_mixtures(arrays, rng, 3), arrays.legal)]
    tabular = games.to_tabular_policy(arrays, played, game)
    root = game.new_initial_state()
    for p in range(arrays.num_players):
        response = br.best_response_policy(arrays, played, p)
        swapped = list(played)
        swapped[p] = response
        value = br.on_policy_values(arrays, swapped)[p]
        expected = os_best_response.BestResponsePolicy(game, p, tabular).value(root)
        assert value == pytest.approx(expected, rel=0, abs=1e-12)


# ---- mixtures ---------------------------------------------------------------------------

@pytest.mark.parametrize("game_string", ["kuhn_poker", "kuhn_poker(players=3)"])
def test_mixture_policy_equals_openspiel_policy_aggregator(game_string):
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    rng = np.random.default_rng(11)
    size = 3
    members = [_random_policies(arrays, rng) for _ in range(size)]
    weights = [rng.random(size) for _ in range(arrays.num_players)]
    weights = [w / w.sum() for w in weights]
    tabular = [[games.to_tabular_policy(arrays, members[j], game) for j in range(size)]
               for _ in range(arrays.num_players)]
    aggregate = policy_aggregator.PolicyAggregator(game).aggregate(
        list(range(arrays.num_players)), tabular, [list(w) for w in weights])
    for p in range(arrays.num_players):
        stack = np.stack([m[p] for m in members])
        reach = np.stack([member_reaches(arrays, m)[1][p] for m in members])
        ours = mixture_policy(stack, reach, weights[p], arrays.legal[p])
        for i, key in enumerate(arrays.infoset_keys[p]):
            theirs = aggregate.policy[p][key]
            for a, prob in theirs.items():
                assert ours[i, a] == pytest.approx(prob, abs=1e-12)


def test_mixture_is_realisation_equivalent_and_not_the_plain_average():
    # The expected payoffs of the mixture policies equal the payoff tensor contracted
    # with the weights (the mixture is played "pick a member, then follow it").
    arrays = games.load_game_arrays("kuhn_poker(players=3)")
    rng = np.random.default_rng(2)
    mix = _mixtures(arrays, rng, 3)
    played = [mixture_policy(m, r, w, legal) for (m, r, w), legal in zip(mix, arrays.legal)]
    tensor = payoff_tensor(arrays, [list(m) for m, _, _ in mix])
    expected = np.einsum("abcq,a,b,c->q", tensor, *[w for _, _, w in mix])
    np.testing.assert_allclose(br.on_policy_values(arrays, played), expected, atol=1e-13)
    plain = [np.einsum("j,jia->ia", w, m) for m, _, w in mix]
    assert np.abs(br.on_policy_values(arrays, plain) - expected).max() > 1e-3


# ---- the loop's contract ----------------------------------------------------------------

def test_call_order_sizes_and_states():
    calls = []

    def make(tag):
        def solver(payoffs, iteration, state):
            calls.append((tag, iteration, payoffs.shape, dict(state)))
            payoffs[...] = np.nan  # the solver's own copy: must not reach the engine
            return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], {"calls": state.get("calls", 0) + 1}
        return solver

    run = run_psro(make("train"), make("eval"), "kuhn_poker", 6, checkpoints=[2, 5])
    assert [c[:3] for c in calls if c[0] == "train"] == [
        ("train", t, (t, t, 2)) for t in range(1, 7)]
    assert [c[:3] for c in calls if c[0] == "eval"] == [
        ("eval", 2, (3, 3, 2)), ("eval", 5, (6, 6, 2)), ("eval", 6, (7, 7, 2))]
    assert [c[3] for c in calls if c[0] == "eval"] == [{}, {"calls": 1}, {"calls": 2}]
    assert [t for t, _ in run.curve] == [2, 5, 6]
    assert np.all(np.isfinite(run.payoffs))
    uniform = games.uniform_policies(games.load_game_arrays("kuhn_poker"))[0]
    assert run.populations[0].shape == (7,) + uniform.shape
    np.testing.assert_array_equal(run.populations[0][0], uniform)


def test_four_player_game_runs():
    run = run_psro(_uniform, _uniform, "kuhn_poker(players=4)", 2)
    assert run.payoffs.shape == (3, 3, 3, 3, 4)
    np.testing.assert_allclose(run.payoffs.sum(axis=-1), 0.0, atol=1e-12)  # zero-sum
    assert 0.0 < run.curve[-1][1] < 1.0


@pytest.mark.parametrize("returned,match", [
    (([np.ones(1)],), "pair"),
    (([np.ones(1), np.ones(1)], None), "dict"),
    (([np.ones(1)], {}), "2 players"),
    (([np.ones(2), np.ones(1)], {}), "shape"),
    (([np.array([np.nan]), np.ones(1)], {}), "NaN"),
    (([np.array([-0.5]), np.ones(1)], {}), "negative"),
    (([np.array([0.5]), np.ones(1)], {}), "sums to"),
    (("ab", {}), "numeric|shape"),
])
def test_invalid_meta_solvers_are_reported_with_reasons(returned, match):
    def solver(payoffs, iteration, state):
        return returned[0] if len(returned) == 1 else returned

    with pytest.raises(InvalidCandidate, match=match):
        run_psro(solver, _uniform, "kuhn_poker", 2)
    with pytest.raises(InvalidCandidate, match="eval_meta_solver"):
        run_psro(_uniform, solver, "kuhn_poker", 2)


def test_check_mixtures_clips_rounding_and_renormalises():
    mixtures, state = check_mixtures("f", ([[1.0 + 1e-9, -1e-12]], {"k": 1}), [2])
    assert state == {"k": 1}
    assert mixtures[0][1] == 0.0 and mixtures[0].sum() == 1.0


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="iterations"):
        run_psro(_uniform, _uniform, "kuhn_poker", 0)
    with pytest.raises(ValueError, match="checkpoints"):
        run_psro(_uniform, _uniform, "kuhn_poker", 3, checkpoints=[4])
    with pytest.raises(ValueError, match="GiB"):
        run_psro(_uniform, _uniform, "kuhn_poker(players=4)", 200)
