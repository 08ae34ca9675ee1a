"""The behavioural fingerprint of a psro_meta_solvers candidate (for the selector's ε-net).

The candidate's two solvers are called the way PSRO calls them, on two fixed, seeded,
zero-sum meta-games standing in for growing populations:

- two players, a 9 x 9 game: ``train_meta_solver`` at iterations t = 1..8 on its leading
  t x t block, ``eval_meta_solver`` after iterations 1, 2, 4, 8 on the leading
  (t + 1) x (t + 1) block;
- three players, a 5 x 5 x 5 game: training at t = 1..4, evaluation after 2 and 4.

Each game starts with fresh states ({}), which are threaded through the calls as in a run.
The fingerprint is every returned mixture, concatenated: 72 + 38 numbers for two players,
30 + 24 for three, 164 in all. Two programs that compute the same mixtures share a
fingerprint whatever their code looks like; only behaviour enters.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from evaluators.psro import InvalidCandidate, check_mixtures

PROBE_SEED = 20260218
SOLVER_NAMES = ("train_meta_solver", "eval_meta_solver")
# (players, training iterations, evaluation checkpoints)
PROBE_RUNS = ((2, 8, (1, 2, 4, 8)), (3, 4, (2, 4)))


def probe_payoffs(num_players: int, size: int) -> np.ndarray:
    """A seeded zero-sum payoff tensor ``[size] * P + [P]`` (last player's payoff is minus
    the others' sum), with entries of magnitude about 1."""
    rng = np.random.default_rng(PROBE_SEED + num_players)
    shape = (size,) * num_players
    first = rng.standard_normal(shape + (num_players - 1,))
    return np.concatenate([first, -first.sum(axis=-1, keepdims=True)], axis=-1)


def _call(namespace: Mapping[str, Any], name: str, payoffs: np.ndarray, t: int,
          state: dict) -> tuple[list[np.ndarray], dict]:
    with np.errstate(all="ignore"):
        out = namespace[name](payoffs.copy(), t, state)
    try:
        return check_mixtures(name, out, payoffs.shape[:-1])
    except InvalidCandidate as e:
        raise ValueError(f"on the probe inputs: {e}") from None


def fingerprint(namespace: Mapping[str, Any]) -> np.ndarray:
    """The candidate's mixtures on the probe inputs as a flat float64 vector.

    Args:
      namespace: the candidate module's globals (must define both solvers).

    Raises:
      ValueError: a solver is missing or returns something that breaks the contract.
    """
    missing = [n for n in SOLVER_NAMES if not callable(namespace.get(n))]
    if missing:
        raise ValueError(f"the candidate does not define {', '.join(missing)}.")
    outputs = []
    for num_players, iterations, evaluations in PROBE_RUNS:
        game = probe_payoffs(num_players, iterations + 1)
        train_state: dict = {}
        eval_state: dict = {}
        for t in range(1, iterations + 1):
            block = game[(slice(0, t),) * num_players]
            mixtures, train_state = _call(namespace, "train_meta_solver", block, t, train_state)
            outputs.extend(mixtures)
            if t in evaluations:
                block = game[(slice(0, t + 1),) * num_players]
                mixtures, eval_state = _call(namespace, "eval_meta_solver", block, t, eval_state)
                outputs.extend(mixtures)
    return np.concatenate(outputs)
