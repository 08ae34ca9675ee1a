"""Vectorised best response and NashConv against OpenSpiel's Python implementation."""

from __future__ import annotations

import numpy as np
import pytest
from open_spiel.python.algorithms import best_response as os_best_response
from open_spiel.python.algorithms import expected_game_score
from open_spiel.python.algorithms import exploitability as os_exploitability

from evaluators import best_response as br
from evaluators import games

GOOFSPIEL4 = "goofspiel(imp_info=True,num_cards=4,points_order=descending)"
GOOFSPIEL5 = "goofspiel(imp_info=True,num_cards=5,points_order=descending)"

# Train and held-out games of the cfr_variants space (and two-player Kuhn).
GAMES = [
    "kuhn_poker",
    "kuhn_poker(players=3)",
    "leduc_poker",
    GOOFSPIEL4,
    "liars_dice(numdice=1,dice_sides=5)",
    "kuhn_poker(players=4)",
    GOOFSPIEL5,
    pytest.param("liars_dice", marks=pytest.mark.slow),  # OpenSpiel's side takes ~20 s
]


def _random_policies(arrays, seed: int, sparsity: float = 0.3):
    """Random policies, with some legal actions at probability zero so that some
    information sets are unreachable (exercising ties in the best response)."""
    rng = np.random.default_rng(seed)
    out = []
    for legal in arrays.legal:
        x = rng.random(legal.shape) ** 2 * legal
        x = np.where(rng.random(legal.shape) < sparsity, 0.0, x)
        keep = np.argmax(x + legal * rng.random(legal.shape) * 1e-3, axis=1)
        x[np.arange(len(x)), keep] += (x.sum(axis=1) == 0) * 1.0
        out.append(x / x.sum(axis=1, keepdims=True))
    return out


def test_uniform_nash_conv_golden_values():
    # Values asserted by OpenSpiel's exploitability_test.py.
    kuhn = games.load_game_arrays("kuhn_poker")
    leduc = games.load_game_arrays("leduc_poker")
    assert br.nash_conv(kuhn, games.uniform_policies(kuhn)) == pytest.approx(11 / 12, abs=1e-14)
    assert br.nash_conv(leduc, games.uniform_policies(leduc)) == pytest.approx(
        4.747222222222222, abs=1e-12)
    assert br.exploitability(kuhn, games.uniform_policies(kuhn)) == pytest.approx(11 / 24, abs=1e-14)


@pytest.mark.parametrize("game_string", GAMES)
def test_exploitability_matches_openspiel_on_random_policies(game_string):
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    policies = _random_policies(arrays, seed=len(game_string))
    tabular = games.to_tabular_policy(arrays, policies, game)
    expected = os_exploitability.nash_conv(game, tabular) / game.num_players()
    assert br.exploitability(arrays, policies) == pytest.approx(expected, rel=0, abs=1e-12)


@pytest.mark.parametrize("game_string", ["kuhn_poker(players=3)", "leduc_poker", GOOFSPIEL4])
def test_values_per_player_match_openspiel(game_string):
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    policies = _random_policies(arrays, seed=7)
    tabular = games.to_tabular_policy(arrays, policies, game)
    root = game.new_initial_state()
    result = br.evaluate(arrays, policies)
    expected_br = [os_best_response.BestResponsePolicy(game, p, tabular).value(root)
                   for p in range(game.num_players())]
    expected_on = expected_game_score.policy_value(root, [tabular] * game.num_players())
    np.testing.assert_allclose(result.best_response_values, expected_br, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.on_policy_values, expected_on, rtol=0, atol=1e-12)
    np.testing.assert_allclose(br.on_policy_values(arrays, policies), expected_on, atol=1e-12)
    assert result.nash_conv == pytest.approx(
        float(np.sum(np.array(expected_br) - expected_on)), abs=1e-12)


@pytest.mark.parametrize("game_string", ["kuhn_poker", "kuhn_poker(players=3)", "leduc_poker"])
def test_best_response_policy_attains_the_best_response_value(game_string):
    arrays = games.load_game_arrays(game_string)
    game = games.load_game(arrays.game_string)
    policies = _random_policies(arrays, seed=3)
    tabular = games.to_tabular_policy(arrays, policies, game)
    root = game.new_initial_state()
    for p in range(arrays.num_players):
        response = br.best_response_policy(arrays, policies, p)
        np.testing.assert_allclose(response.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(response[arrays.legal[p] == 0] == 0)
        swapped = list(policies)
        swapped[p] = response
        value = br.on_policy_values(arrays, swapped)[p]
        expected = os_best_response.BestResponsePolicy(game, p, tabular).value(root)
        assert value == pytest.approx(expected, abs=1e-12)


def test_best_response_policy_splits_ties_evenly():
    # Kuhn poker against a player 1 who always passes: player 0 must bet with the Jack
    # or Queen (pass loses or draws at showdown, a bet wins the fold); with the King both
    # actions win 1, a tie; and after "pass, bet", which never happens, everything ties.
    arrays = games.load_game_arrays("kuhn_poker")
    always_pass = np.zeros_like(arrays.legal[1])
    always_pass[:, 0] = 1.0
    policies = [games.uniform_policies(arrays)[0], always_pass]
    response = br.best_response_policy(arrays, policies, 0)
    expected = {"0": [0, 1], "1": [0, 1], "2": [0.5, 0.5],
                "0pb": [0.5, 0.5], "1pb": [0.5, 0.5], "2pb": [0.5, 0.5]}
    for i, key in enumerate(arrays.infoset_keys[0]):
        np.testing.assert_array_equal(response[i], expected[key])


def test_jax_nash_conv_matches_numpy():
    jax = pytest.importorskip("jax")
    arrays = games.load_game_arrays("leduc_poker")
    policies = _random_policies(arrays, seed=11)
    with jax.enable_x64(True):
        value = float(br.jax_nash_conv(arrays)(policies))
    assert value == pytest.approx(br.nash_conv(arrays, policies), abs=1e-12)


def test_rejects_policies_of_the_wrong_shape():
    arrays = games.load_game_arrays("kuhn_poker")
    policies = games.uniform_policies(arrays)
    with pytest.raises(ValueError, match="shape"):
        br.nash_conv(arrays, [policies[0], policies[1][:, :1]])
    with pytest.raises(ValueError, match="policies"):
        br.nash_conv(arrays, policies[:1])
    with pytest.raises(ValueError, match="Player"):
        br.best_response_policy(arrays, policies, 2)
