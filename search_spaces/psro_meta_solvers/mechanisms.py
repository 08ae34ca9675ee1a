"""Known meta-strategy solvers, for the offline mutator to splice into a candidate.

``MECHANISMS`` maps a name to Python source: a complete definition of
``train_meta_solver`` or ``eval_meta_solver``, written against the contract (``DOC``),
with the imports, constants and helpers it needs. Splicing an entry replaces the parent's
function of the same name and leaves the other solver alone, so the training and
evaluation solvers are recombined independently. Helpers shared with the seeds
(``_payoff_tables``, ``_expected_payoffs``) have the seeds' exact text, so a splice reuses
the parent's copy; constants are prefixed per mechanism so that two spliced mechanisms do
not collide.

Sources: uniform mixtures (fictitious play; Brown 1951, Heinrich et al. 2015); Nash by
linear programming (double oracle; McMahan et al. 2003); regret matching (Hart &
Mas-Colell 2000) and its optimistic, floored form (Syrgkanis et al. 2015; Farina et al.
2021); projected replicator dynamics (Lanctot et al. 2017); the SHOR-PSRO hybrid of
optimistic regret matching and a softmax over payoffs, annealed at training time (Li,
Schultz, Hennes & Lanctot 2026); an annealed blend of Nash and uniform; and warm-started
regret matching that carries its regrets across PSRO iterations in the solver's state.
"""

from __future__ import annotations

_TABLES = '''
import numpy as np


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
'''

_REGRET_MATCHING = _TABLES + '''

RM_ITERATIONS = 1000


def _rm_average(payoffs, iterations):
    """Average of simultaneous regret matching from uniform (Hart & Mas-Colell 2000)."""
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
'''

_NASH = _REGRET_MATCHING + '''
from scipy.optimize import linprog


def _lp_maximin(matrix):
    """The row player's maximin mixture of the zero-sum matrix game ``matrix`` [m, n];
    uniform if the solver fails."""
    m, n = matrix.shape
    cost = np.zeros(m + 1)
    cost[-1] = -1.0
    a_ub = np.hstack([-matrix.T, np.ones((n, 1))])
    a_eq = np.hstack([np.ones((1, m)), np.zeros((1, 1))])
    result = linprog(cost, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0],
                     bounds=[(0.0, None)] * m + [(None, None)], method="highs")
    if result.status != 0:
        return np.full(m, 1.0 / m)
    x = np.maximum(result.x[:m], 0.0)
    return x / x.sum()


def _lp_nash(payoffs):
    """Maximin mixtures of the two-player zero-sum part; regret matching otherwise."""
    if payoffs.shape[-1] != 2:
        return _rm_average(payoffs, RM_ITERATIONS)
    zero_sum = 0.5 * (payoffs[..., 0] - payoffs[..., 1])
    return [_lp_maximin(zero_sum), _lp_maximin(-zero_sum.T)]
'''

_PRD = _TABLES + '''

PRD_ITERATIONS = 1000
PRD_DT = 0.01
PRD_GAMMA = 1e-6


def _prd_project(x, floor):
    """Euclidean projection of ``x`` onto {y : y >= floor, sum(y) = 1}."""
    n = x.shape[0]
    ordered = np.sort(x)[::-1]
    shift = (1.0 - np.cumsum(ordered) - (n - np.arange(1, n + 1)) * floor) / np.arange(1, n + 1)
    k = int(np.searchsorted(ordered + shift <= floor, True))
    return np.maximum(x + shift[k - 1], floor)


def _prd_average(payoffs):
    """Average of projected replicator dynamics from uniform (Lanctot et al. 2017)."""
    sizes = payoffs.shape[:-1]
    tables = _payoff_tables(payoffs)
    mixtures = [np.full(n, 1.0 / n) for n in sizes]
    totals = [m.copy() for m in mixtures]
    for _ in range(PRD_ITERATIONS):
        updated = []
        for p in range(len(sizes)):
            values = _expected_payoffs(tables, mixtures, p)
            step = mixtures[p] + PRD_DT * mixtures[p] * (values - values @ mixtures[p])
            updated.append(_prd_project(step, PRD_GAMMA))
        mixtures = updated
        for p in range(len(sizes)):
            totals[p] += mixtures[p]
    return [t / t.sum() for t in totals]
'''

_HYBRID = _TABLES + '''


def _hybrid_softmax(values, temperature):
    weights = np.exp((values - np.max(values)) / temperature)
    total = weights.sum()
    return weights / total if total > 1e-12 else np.full(values.shape[0], 1.0 / values.shape[0])


def _hybrid_solve(payoffs, iterations, blend, temperature, diversity, momentum, average):
    """Optimistic regret matching+ on centred, normalised gains blended with a softmax
    over payoffs (SHOR-PSRO's inner loop, Li et al. 2026); Gauss-Seidel over players."""
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
            mixtures[p] = (1.0 - blend) * matched + blend * _hybrid_softmax(values, temperature)
            previous[p] = centred
            totals[p] += mixtures[p]
    if average:
        return [t / t.sum() for t in totals]
    return mixtures
'''

MECHANISMS: dict[str, str] = {
    # ---- training-time solvers -----------------------------------------------------------
    "uniform_train": '''
import numpy as np


def train_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state
''',
    "nash_lp_train": _NASH + '''

def train_meta_solver(payoffs, iteration, state):
    return _lp_nash(payoffs), state
''',
    "regret_matching_train": _REGRET_MATCHING + '''

def train_meta_solver(payoffs, iteration, state):
    return _rm_average(payoffs, RM_ITERATIONS), state
''',
    "prd_train": _PRD + '''

def train_meta_solver(payoffs, iteration, state):
    return _prd_average(payoffs), state
''',
    "shor_hybrid_train": _HYBRID + '''

SHOR_ANNEAL_ITERATIONS = 75.0
SHOR_TRAIN_BLEND = (0.3, 0.05)
SHOR_TRAIN_TEMPERATURE = (0.5, 0.01)
SHOR_TRAIN_DIVERSITY = (0.05, 0.001)
SHOR_TRAIN_MOMENTUM = 0.5
SHOR_TRAIN_INNER = (1000, 20, 5000)


def train_meta_solver(payoffs, iteration, state):
    progress = min(1.0, iteration / SHOR_ANNEAL_ITERATIONS)

    def annealed(schedule):
        return schedule[0] + (schedule[1] - schedule[0]) * progress

    base, per_policy, most = SHOR_TRAIN_INNER
    inner = int(min(max(base + per_policy * (payoffs.shape[0] - 1), base), most))
    mixtures = _hybrid_solve(payoffs, inner, annealed(SHOR_TRAIN_BLEND),
                             annealed(SHOR_TRAIN_TEMPERATURE), annealed(SHOR_TRAIN_DIVERSITY),
                             SHOR_TRAIN_MOMENTUM, average=True)
    return mixtures, state
''',
    "annealed_nash_uniform_train": _NASH + '''

MIX_HALF_LIFE = 10.0


def train_meta_solver(payoffs, iteration, state):
    """Mostly uniform early (explore: fictitious play), mostly Nash late (double oracle)."""
    explore = 1.0 / (1.0 + iteration / MIX_HALF_LIFE)
    nash = _lp_nash(payoffs)
    return [explore / m.shape[0] + (1.0 - explore) * m for m in nash], state
''',
    "warm_started_regret_matching_train": _TABLES + '''

WARM_RM_ITERATIONS = 200


def train_meta_solver(payoffs, iteration, state):
    """Regret matching+ whose regrets and average carry over from the previous PSRO
    iteration (new policies start at zero), so each call only refines."""
    sizes = payoffs.shape[:-1]
    tables = _payoff_tables(payoffs)
    regrets = [np.zeros(n) for n in sizes]
    totals = [np.zeros(n) for n in sizes]
    for p in range(len(sizes)):
        old = state.get(f"warm_rm_regrets_{p}")
        if old is not None:
            regrets[p][:old.shape[0]] = old
            totals[p][:old.shape[0]] = state[f"warm_rm_totals_{p}"]
    mixtures = []
    for p, n in enumerate(sizes):
        positive = np.maximum(regrets[p], 0.0)
        mixtures.append(positive / positive.sum() if positive.sum() > 0.0 else np.full(n, 1.0 / n))
    for _ in range(WARM_RM_ITERATIONS):
        updated = []
        for p, n in enumerate(sizes):
            values = _expected_payoffs(tables, mixtures, p)
            regrets[p] = np.maximum(regrets[p] + values - values @ mixtures[p], 0.0)
            total = regrets[p].sum()
            updated.append(regrets[p] / total if total > 0.0 else np.full(n, 1.0 / n))
        mixtures = updated
        for p in range(len(sizes)):
            totals[p] += mixtures[p]
    new_state = dict(state)
    for p in range(len(sizes)):
        new_state[f"warm_rm_regrets_{p}"] = regrets[p]
        new_state[f"warm_rm_totals_{p}"] = totals[p]
    return [t / t.sum() for t in totals], new_state
''',
    # ---- evaluation-time solvers ---------------------------------------------------------
    "uniform_eval": '''
import numpy as np


def eval_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state
''',
    "nash_lp_eval": _NASH + '''

def eval_meta_solver(payoffs, iteration, state):
    return _lp_nash(payoffs), state
''',
    "regret_matching_eval": _REGRET_MATCHING + '''

def eval_meta_solver(payoffs, iteration, state):
    return _rm_average(payoffs, RM_ITERATIONS), state
''',
    "prd_eval": _PRD + '''

def eval_meta_solver(payoffs, iteration, state):
    return _prd_average(payoffs), state
''',
    "shor_hybrid_eval": _HYBRID + '''

SHOR_EVAL_BLEND = 0.01
SHOR_EVAL_TEMPERATURE = 0.001
SHOR_EVAL_MOMENTUM = 0.2
SHOR_EVAL_INNER = (8000, 50, 15000)


def eval_meta_solver(payoffs, iteration, state):
    base, per_policy, most = SHOR_EVAL_INNER
    inner = int(min(max(base + per_policy * (payoffs.shape[0] - 1), base), most))
    mixtures = _hybrid_solve(payoffs, inner, SHOR_EVAL_BLEND, SHOR_EVAL_TEMPERATURE, 0.0,
                             SHOR_EVAL_MOMENTUM, average=False)
    return mixtures, state
''',
    "optimistic_regret_matching_eval": _HYBRID + '''

ORM_EVAL_ITERATIONS = 3000
ORM_EVAL_MOMENTUM = 1.0


def eval_meta_solver(payoffs, iteration, state):
    """Optimistic regret matching+ alone (no softmax), its average: a fast, accurate
    equilibrium of the current table."""
    mixtures = _hybrid_solve(payoffs, ORM_EVAL_ITERATIONS, 0.0, 1.0, 0.0, ORM_EVAL_MOMENTUM,
                             average=True)
    return mixtures, state
''',
}
