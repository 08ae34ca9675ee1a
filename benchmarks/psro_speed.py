"""One exact PSRO iteration: ours (evaluators.psro) against one built from OpenSpiel's Python.

An iteration, at a population of ``n`` policies per player (taken from a uniform-mixture
run), is: the training mixtures played as one policy per player, every player's exact best
response to them, the payoff entries of the new policies (2n + 1 profiles for two
players), and the exploitability of the evaluation mixtures over the n + 1 policies.
Uniform mixtures are used, so no meta-solver time enters.

- ours: ``Population.best_responses`` (realisation-equivalent mixing + vectorised best
  response), ``Population.add`` (one reach pass + a contraction over terminals) and
  ``Population.exploitability`` (``best_response.evaluate``);
- OpenSpiel: ``policy_aggregator.PolicyAggregator`` for the mixtures,
  ``best_response.BestResponsePolicy`` for the responses (read out as a tabular policy)
  and their values, ``expected_game_score.policy_value`` for every new payoff entry and
  for the on-policy values of the exploitability.

A second table compares ways of filling the new payoff entries: the contraction against one
on-policy value pass per profile (``best_response.on_policy_values``).

    python benchmarks/psro_speed.py
    python benchmarks/psro_speed.py --games leduc_poker --size 20

Figures are medians of three runs; the last line printed is JSON:
``{"<game>": <OpenSpiel's seconds per iteration divided by ours>, ...}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from open_spiel.python import policy as policy_lib  # noqa: E402
from open_spiel.python.algorithms import best_response as os_best_response  # noqa: E402
from open_spiel.python.algorithms import expected_game_score, policy_aggregator  # noqa: E402

from evaluators import best_response as br  # noqa: E402
from evaluators import games  # noqa: E402
from evaluators.psro import Population, run_psro  # noqa: E402

DEFAULT_GAMES = ["kuhn_poker", "leduc_poker"]


def seconds(f: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``f()`` (repeated within a run when it is very fast)."""
    begin = time.perf_counter()
    f()
    inner = max(1, int(0.05 / max(time.perf_counter() - begin, 1e-9)))
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        for _ in range(inner):
            f()
        times.append((time.perf_counter() - begin) / inner)
    return statistics.median(times)


def _uniform(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state


def _new_profiles(num_players: int, n: int):
    """Joint profiles over n + 1 policies that use the newest one (index n)."""
    return [j for j in itertools.product(range(n + 1), repeat=num_players) if n in j]


def openspiel_iteration(game, members, n: int) -> float:
    """One PSRO iteration from OpenSpiel's Python; ``members[j]`` is the tabular policy
    holding every player's j-th policy. Returns the exploitability."""
    num_players = game.num_players()
    root = game.new_initial_state()
    players = list(range(num_players))
    train = policy_aggregator.PolicyAggregator(game).aggregate(
        players, [members[:n]] * num_players, [[1.0 / n] * n] * num_players)
    response = policy_lib.TabularPolicy(game)
    for p in players:
        oracle = os_best_response.BestResponsePolicy(game, p, train)
        oracle.value(root)
        for key in oracle.infosets:
            row = response.state_lookup[key]
            response.action_probability_array[row] = 0.0
            response.action_probability_array[row, oracle.best_response_action(key)] = 1.0
    grown = members[:n] + [response]
    for profile in _new_profiles(num_players, n):
        expected_game_score.policy_value(root, [grown[j] for j in profile])
    measured = policy_aggregator.PolicyAggregator(game).aggregate(
        players, [grown] * num_players, [[1.0 / (n + 1)] * (n + 1)] * num_players)
    best = [os_best_response.BestResponsePolicy(game, p, measured).value(root) for p in players]
    on = expected_game_score.policy_value(root, [measured] * num_players)
    return float(np.sum(np.asarray(best) - np.asarray(on)) / num_players)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=DEFAULT_GAMES, help="OpenSpiel game strings")
    parser.add_argument("--size", type=int, default=10, help="policies per player before the iteration")
    args = parser.parse_args(argv)
    n = args.size
    ratios = {}
    print(f"one exact PSRO iteration at {n} policies per player (median of 3)")
    print(f"{'game':<16}{'ours':>12}{'OpenSpiel':>12}{'ratio':>9}   payoff entries: "
          f"{'contraction':>12}{'per profile':>13}")
    for game_string in args.games:
        arrays = games.load_game_arrays(game_string)
        game = games.load_game(arrays.game_string)
        run = run_psro(_uniform, _uniform, arrays, n - 1)
        profiles = [[run.populations[p][j] for p in range(arrays.num_players)] for j in range(n)]

        population = Population(arrays, n + 1)
        for profile in profiles:
            population.add(profile)
        train = [np.full(n, 1.0 / n)] * arrays.num_players
        measure = [np.full(n + 1, 1.0 / (n + 1))] * arrays.num_players
        responses = population.best_responses(train)

        def ours():
            population.size = n  # the iteration's additions overwrite row n
            population.add(population.best_responses(train))
            return population.exploitability(measure)

        def add_only():
            population.size = n
            population.add(responses)

        grown = [np.concatenate([population.policies[p][:n], responses[p][None]])
                 for p in range(arrays.num_players)]

        def per_profile():
            for profile in _new_profiles(arrays.num_players, n):
                br.on_policy_values(arrays, [grown[p][j] for p, j in enumerate(profile)])

        members = [games.to_tabular_policy(arrays, profile, game) for profile in profiles]
        ours_value = ours()
        theirs_value = openspiel_iteration(game, members, n)
        if abs(ours_value - theirs_value) > 1e-9:
            # Ties between best-response actions may be broken differently (ours splits
            # them evenly, OpenSpiel takes the first), which can change the population.
            print(f"  note: exploitabilities differ ({ours_value:.6g} vs {theirs_value:.6g}), "
                  "from the tie-breaking of the best responses")
        t_ours = seconds(ours)
        t_theirs = seconds(lambda: openspiel_iteration(game, members, n))
        t_add = seconds(add_only)
        t_profiles = seconds(per_profile)
        ratios[game_string] = t_theirs / t_ours
        print(f"{game_string:<16}{t_ours * 1e3:>10.2f}ms{t_theirs * 1e3:>10.1f}ms"
              f"{t_theirs / t_ours:>8.0f}x   {'':15}{t_add * 1e3:>10.3f}ms{t_profiles * 1e3:>11.2f}ms")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
