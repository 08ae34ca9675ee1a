"""Nash meta-strategies by linear programming: PSRO becomes the double oracle algorithm.

McMahan, Gordon & Blum, "Planning in the Presence of Cost Functions Controlled by an
Adversary" (ICML 2003) introduced the double oracle; Lanctot et al. (NeurIPS 2017,
arXiv:1711.00832) generalised it to PSRO. Each mixture is a maximin strategy of the
two-player zero-sum meta-game, found by the linear program (von Neumann's minimax theorem)

    maximise v  subject to  M^T x >= v 1,  sum(x) = 1,  x >= 0,

solved for each player with its own payoff matrix (HiGHS through scipy.optimize.linprog).
The meta-game is made zero-sum as M = (payoffs[..., 0] - payoffs[..., 1]) / 2, which is
player 0's payoff when the game is zero-sum.

With more than two players there is no linear program for a Nash equilibrium; the seed
then falls back to the time-averaged strategies of regret matching (Hart & Mas-Colell,
Econometrica 2000), as OpenSpiel's "rm" meta-solver computes them (FALLBACK_ITERATIONS
simultaneous updates), which approach a coarse correlated equilibrium's marginals.
"""

import numpy as np

# EVOLVE-BLOCK-START
from scipy.optimize import linprog

FALLBACK_ITERATIONS = 1000


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


def _regret_matching(payoffs, iterations):
    sizes = payoffs.shape[:-1]
    tables = _payoff_tables(payoffs)
    mixtures = [np.full(n, 1.0 / n) for n in sizes]
    regrets = [np.full(n, 1e-6) for n in sizes]
    totals = [m.copy() for m in mixtures]
    for _ in range(iterations):
        updated = []
        for p, n in enumerate(sizes):
            values = _expected_payoffs(tables, mixtures, p)
            regrets[p] += values - values @ mixtures[p]
            positive = np.maximum(regrets[p], 0.0)
            total = positive.sum()
            updated.append(positive / total if total > 0.0 else np.full(n, 1.0 / n))
        mixtures = updated
        for p in range(len(sizes)):
            totals[p] += mixtures[p]
    return [t / t.sum() for t in totals]


def _maximin(matrix):
    """The row player's maximin mixture of the zero-sum matrix game ``matrix`` [m, n]
    (the row player's payoffs); uniform if the solver fails."""
    m, n = matrix.shape
    cost = np.zeros(m + 1)
    cost[-1] = -1.0
    a_ub = np.hstack([-matrix.T, np.ones((n, 1))])
    a_eq = np.hstack([np.ones((1, m)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * m + [(None, None)]
    result = linprog(cost, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0],
                     bounds=bounds, method="highs")
    if result.status != 0:
        return np.full(m, 1.0 / m)
    x = np.maximum(result.x[:m], 0.0)
    return x / x.sum()


def _nash(payoffs):
    if payoffs.shape[-1] != 2:
        return _regret_matching(payoffs, FALLBACK_ITERATIONS)
    zero_sum = 0.5 * (payoffs[..., 0] - payoffs[..., 1])
    return [_maximin(zero_sum), _maximin(-zero_sum.T)]


def train_meta_solver(payoffs, iteration, state):
    return _nash(payoffs), state


def eval_meta_solver(payoffs, iteration, state):
    return _nash(payoffs), state
# EVOLVE-BLOCK-END
