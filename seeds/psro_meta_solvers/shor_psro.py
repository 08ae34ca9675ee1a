"""SHOR-PSRO: Smoothed Hybrid Optimistic Regret meta-strategy solvers.

Li, Schultz, Hennes & Lanctot, "Discovering Multiagent Learning Algorithms with Large
Language Models" (2026, arXiv:2602.16928), section 4.3 and Listing 6: meta-solvers evolved
with AlphaEvolve from the uniform seed, on the same training games as this space.

Both solvers run an inner loop on the meta-game (``_hybrid``), for every player in turn
(Gauss-Seidel: a player sees the mixtures the players before it just chose):

1. u = the player's expected payoff of each policy against the others' current mixtures;
   its centred gain g = u - mean(u).
2. Optimistic gain (1 + momentum) * g - momentum * g_previous, plus a diversity bonus
   diversity * (1 - x) for policies the player rarely plays; divided by its largest
   magnitude (scale-free across games).
3. Regret matching+ on the cumulative gains (floored at 0) gives x_orm.
4. A softmax of u at a temperature gives x_soft, a smoothed best pure policy.
5. x = (1 - blend) * x_orm + blend * x_soft.

The training solver anneals blend 0.3 -> 0.05, temperature 0.5 -> 0.01 and diversity
0.05 -> 0.001 linearly over the first 75 PSRO iterations, runs 1000 + 20 (n - 1) inner
iterations (at most 5000; n = the population size) with momentum 0.5, and returns the
average of the inner iterates. The evaluation solver uses blend 0.01, temperature 0.001,
no diversity bonus, momentum 0.2, 8000 + 50 (n - 1) inner iterations (at most 15000), and
returns the last iterate.
"""

import numpy as np

# EVOLVE-BLOCK-START
ANNEAL_ITERATIONS = 75.0
TRAIN_BLEND = (0.3, 0.05)
TRAIN_TEMPERATURE = (0.5, 0.01)
TRAIN_DIVERSITY = (0.05, 0.001)
TRAIN_MOMENTUM = 0.5
TRAIN_INNER = (1000, 20, 5000)     # base, per extra policy, most
EVAL_BLEND = 0.01
EVAL_TEMPERATURE = 0.001
EVAL_DIVERSITY = 0.0
EVAL_MOMENTUM = 0.2
EVAL_INNER = (8000, 50, 15000)


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


def _softmax(values, temperature):
    weights = np.exp((values - np.max(values)) / temperature)
    total = weights.sum()
    return weights / total if total > 1e-12 else np.full(values.shape[0], 1.0 / values.shape[0])


def _inner_iterations(payoffs, schedule):
    base, per_policy, most = schedule
    return int(min(max(base + per_policy * (payoffs.shape[0] - 1), base), most))


def _hybrid(payoffs, iterations, blend, temperature, diversity, momentum, average):
    sizes = payoffs.shape[:-1]
    tables = _payoff_tables(payoffs)
    mixtures = [np.full(n, 1.0 / n) for n in sizes]
    cumulative = [np.zeros(n) for n in sizes]
    previous = [np.zeros(n) for n in sizes]
    totals = [np.zeros(n) for n in sizes]
    for _ in range(iterations):
        for p, n in enumerate(sizes):
            values = _expected_payoffs(tables, mixtures, p)
            centred = values - values.mean()
            gains = (1.0 + momentum) * centred - momentum * previous[p]
            gains = gains + diversity * (1.0 - mixtures[p])
            scale = np.max(np.abs(gains))
            if scale > 1e-8:
                gains = gains / scale
            cumulative[p] = np.maximum(cumulative[p] + gains, 0.0)
            total = cumulative[p].sum()
            matched = cumulative[p] / total if total > 1e-12 else np.full(n, 1.0 / n)
            mixtures[p] = (1.0 - blend) * matched + blend * _softmax(values, temperature)
            previous[p] = centred
            totals[p] += mixtures[p]
    if average:
        return [t / t.sum() for t in totals]
    return mixtures


def train_meta_solver(payoffs, iteration, state):
    progress = min(1.0, iteration / ANNEAL_ITERATIONS)

    def annealed(schedule):
        start, end = schedule
        return start + (end - start) * progress

    mixtures = _hybrid(payoffs, _inner_iterations(payoffs, TRAIN_INNER),
                       annealed(TRAIN_BLEND), annealed(TRAIN_TEMPERATURE),
                       annealed(TRAIN_DIVERSITY), TRAIN_MOMENTUM, average=True)
    return mixtures, state


def eval_meta_solver(payoffs, iteration, state):
    mixtures = _hybrid(payoffs, _inner_iterations(payoffs, EVAL_INNER), EVAL_BLEND,
                       EVAL_TEMPERATURE, EVAL_DIVERSITY, EVAL_MOMENTUM, average=False)
    return mixtures, state
# EVOLVE-BLOCK-END
