"""Projected replicator dynamics (PRD) meta-strategies.

Lanctot et al., "A Unified Game-Theoretic Approach to Multiagent Reinforcement Learning"
(NeurIPS 2017, arXiv:1711.00832), section 3 and appendix A; OpenSpiel's psro_v2 "prd".

1. Start from uniform mixtures.
2. ITERATIONS Euler steps of the replicator dynamics, every player at once:
   x <- x + DT * x * (u - x.u), with u the expected payoff of each policy against the
   others' current mixtures; then project x onto the simplex whose entries are at least
   GAMMA (Euclidean projection, as OpenSpiel's projected_replicator_dynamics), so that
   no policy's weight dies out and the dynamics keep exploring.
3. Return the average of all mixtures visited.

OpenSpiel takes 100,000 steps of size 0.001; here 1,000 steps of 0.01 keep an evaluation
within seconds (a shorter horizon: the averages move less far from uniform).
"""

import numpy as np

# EVOLVE-BLOCK-START
ITERATIONS = 1000
DT = 0.01
GAMMA = 1e-6


def _payoff_tables(payoffs):
    """Per player p, its own payoffs with its policies on the first axis (contiguous, so
    that the inner loops multiply without copying)."""
    return [np.ascontiguousarray(np.moveaxis(payoffs[..., p], p, 0))
            for p in range(payoffs.shape[-1])]


def _expected_payoffs(tables, mixtures, player):
    """[n_player] the player's expected payoff of each of its policies against the
    others' mixtures."""
    values = tables[player]
    for other in reversed(range(len(tables))):
        if other != player:
            values = values @ mixtures[other]
    return values


def _project(x, floor):
    """Euclidean projection of ``x`` onto {y : y >= floor, sum(y) = 1}."""
    n = x.shape[0]
    ordered = np.sort(x)[::-1]
    shift = (1.0 - np.cumsum(ordered) - (n - np.arange(1, n + 1)) * floor) / np.arange(1, n + 1)
    k = int(np.searchsorted(ordered + shift <= floor, True))
    return np.maximum(x + shift[k - 1], floor)


def _replicator_dynamics(payoffs, iterations):
    sizes = payoffs.shape[:-1]
    tables = _payoff_tables(payoffs)
    mixtures = [np.full(n, 1.0 / n) for n in sizes]
    totals = [m.copy() for m in mixtures]
    for _ in range(iterations):
        updated = []
        for p in range(len(sizes)):
            values = _expected_payoffs(tables, mixtures, p)
            step = mixtures[p] + DT * mixtures[p] * (values - values @ mixtures[p])
            updated.append(_project(step, GAMMA))
        mixtures = updated
        for p in range(len(sizes)):
            totals[p] += mixtures[p]
    return [t / t.sum() for t in totals]


def train_meta_solver(payoffs, iteration, state):
    return _replicator_dynamics(payoffs, ITERATIONS), state


def eval_meta_solver(payoffs, iteration, state):
    return _replicator_dynamics(payoffs, ITERATIONS), state
# EVOLVE-BLOCK-END
