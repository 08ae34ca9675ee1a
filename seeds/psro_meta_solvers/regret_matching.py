"""Regret-matching meta-strategies: the time average of regret matching on the meta-game.

Hart & Mas-Colell, "A Simple Adaptive Procedure Leading to Correlated Equilibrium"
(Econometrica 2000); as a PSRO meta-solver in OpenSpiel's psro_v2 ("rm", Lanctot et al.
2019, arXiv:1908.09453) and among the baselines of Li, Schultz, Hennes & Lanctot (2026,
arXiv:2602.16928).

1. Start from uniform mixtures and cumulative regrets of 1e-6 (OpenSpiel's start).
2. ITERATIONS times, for every player at once: add the regret of each policy against the
   others' current mixtures (its expected payoff minus the mixture's), then play each
   policy in proportion to its positive cumulative regret (uniform if none is positive),
   mixed with GAMMA of the uniform mixture.
3. Return the average of all mixtures played. In two-player zero-sum meta-games the
   average approaches a Nash equilibrium; in general games, the marginals of a coarse
   correlated equilibrium.

OpenSpiel runs 100,000 iterations; 1,000 here keep an evaluation within seconds.
"""

import numpy as np

# EVOLVE-BLOCK-START
ITERATIONS = 1000
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
            matched = positive / total if total > 0.0 else np.full(n, 1.0 / n)
            updated.append(GAMMA / n + (1.0 - GAMMA) * matched)
        mixtures = updated
        for p in range(len(sizes)):
            totals[p] += mixtures[p]
    return [t / t.sum() for t in totals]


def train_meta_solver(payoffs, iteration, state):
    return _regret_matching(payoffs, ITERATIONS), state


def eval_meta_solver(payoffs, iteration, state):
    return _regret_matching(payoffs, ITERATIONS), state
# EVOLVE-BLOCK-END
