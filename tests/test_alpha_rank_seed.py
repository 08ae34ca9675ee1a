"""The α-Rank seed of psro_meta_solvers (Omidshafiei et al., Sci. Rep. 2019).

References run inside the tests: OpenSpiel's ``alpharank.compute`` (multi-population form,
per-player normal-form payoff tables, dense eigen-solve) for the stationary distribution
over joint profiles, OpenSpiel's ``psro_v2.utils.get_alpharank_marginals`` for the
marginals, and the finite-sum form of the Moran fixation probability from the paper for ρ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.reference_cache import private_reference_cache  # noqa: F401  (autouse fixture)
from open_spiel.python.algorithms.psro_v2 import utils as psro_utils
from open_spiel.python.egt import alpharank

from evaluators.psro import log_checkpoints
from search_spaces.psro_meta_solvers import SPACE

ROCK_PAPER_SCISSORS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
def _zero_sum(payoffs: np.ndarray) -> np.ndarray:
    """Appends the last player's payoff, minus the others' sum."""
    return np.concatenate([payoffs, -payoffs.sum(axis=-1, keepdims=True)], axis=-1)


GAMES = {
    "general_sum_4x5": np.random.default_rng(0).uniform(-1.0, 1.0, (4, 5, 2)),
    # Two pure equilibria whose basins exchange mass slowly (leaving rates down to 4e-8 at
    # α = 1): power iteration does not settle within MAX_STEPS, the exact solve takes over.
    # From α = 10 on the chain is reducible in floating point and OpenSpiel finds two
    # stationary distributions.
    "general_sum_4x5_two_equilibria": np.random.default_rng(4).uniform(-1.0, 1.0, (4, 5, 2)),
    "general_sum_3x3x3": np.random.default_rng(3).uniform(-1.0, 1.0, (3, 3, 3, 3)),
    "zero_sum_12x12": _zero_sum(np.random.default_rng(12).standard_normal((12, 12, 1))),
    "rock_paper_scissors": np.stack([ROCK_PAPER_SCISSORS, -ROCK_PAPER_SCISSORS], axis=-1),
}
CASES = [(game, alpha) for game in sorted(GAMES) for alpha in (0.1, 1.0, 10.0, 100.0)
         if not (game == "general_sum_4x5_two_equilibria" and alpha > 1.0)]




@pytest.fixture(scope="module")
def seed() -> dict:
    namespace: dict = {}
    exec(compile(SPACE.seeds()["alpha_rank"], "<alpha_rank>", "exec"), namespace)
    return namespace


def _tables(payoffs: np.ndarray) -> list[np.ndarray]:
    """OpenSpiel's multi-population input: one normal-form table [n_1, ..., n_P] per player."""
    return [payoffs[..., k] for k in range(payoffs.shape[-1])]


def _openspiel(payoffs: np.ndarray, **settings) -> np.ndarray:
    # OpenSpiel evaluates (1 - e^{-u}) / (1 - e^{-mu}) as written; e^{-mu} overflows to inf
    # for strongly selected-against mutants, which still gives the right limit, 0.
    with np.errstate(over="ignore"):
        return alpharank.compute(_tables(payoffs), **settings)[2]


def _dominance_solvable(rng: np.random.Generator) -> np.ndarray:
    """A 3 x 4 general-sum game whose strategy 0 strictly dominates for both players:
    (0, 0) is its only strict pure Nash equilibrium and the only sink of its response graph."""
    payoffs = rng.uniform(0.0, 1.0, (3, 4, 2))
    payoffs[0, :, 0] = payoffs[:, :, 0].max(axis=0) + 0.5
    payoffs[:, 0, 1] = payoffs[:, :, 1].max(axis=1) + 0.5
    return payoffs


@pytest.mark.parametrize("game, alpha", CASES)
def test_distribution_and_marginals_equal_openspiel(seed, game, alpha):
    payoffs = GAMES[game]
    reference = _openspiel(payoffs, m=50, alpha=alpha)
    joint, marginals = seed["_alpha_rank"](payoffs, 50, alpha)
    assert joint.shape == payoffs.shape[:-1]
    np.testing.assert_allclose(joint.ravel(), reference, rtol=0, atol=1e-8)
    expected = psro_utils.get_alpharank_marginals(_tables(payoffs), reference)
    for mine, theirs in zip(marginals, expected, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-8)


def test_solvers_use_openspiel_default_settings_and_keep_state(seed):
    payoffs = GAMES["general_sum_3x3x3"]
    expected = psro_utils.get_alpharank_marginals(_tables(payoffs), _openspiel(payoffs))
    for name in ("train_meta_solver", "eval_meta_solver"):
        state = {"kept": 1}
        mixtures, returned = seed[name](payoffs.copy(), 4, state)
        assert returned is state and state == {"kept": 1}
        for mine, theirs in zip(mixtures, expected, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-8)
    assert (seed["M"], seed["ALPHA"]) == (50, 100.0)


def test_rock_paper_scissors_ranks_every_profile_equally(seed):
    joint, marginals = seed["_alpha_rank"](GAMES["rock_paper_scissors"])
    np.testing.assert_allclose(joint, np.full((3, 3), 1.0 / 9.0), rtol=0, atol=1e-12)
    for mixture in marginals:
        np.testing.assert_allclose(mixture, np.full(3, 1.0 / 3.0), rtol=0, atol=1e-12)


def test_mass_concentrates_on_the_unique_sink_as_alpha_grows(seed):
    payoffs = _dominance_solvable(np.random.default_rng(7))
    sink = [seed["_alpha_rank"](payoffs, 50, alpha)[0][0, 0] for alpha in (0.01, 0.1, 1.0, 10.0)]
    assert all(a < b for a, b in zip(sink, sink[1:])), sink
    joint, marginals = seed["_alpha_rank"](payoffs, 50, 100.0)
    np.testing.assert_allclose(joint.ravel(), _openspiel(payoffs, m=50, alpha=100.0),
                               rtol=0, atol=1e-8)
    assert joint[0, 0] > 1.0 - 1e-12
    assert marginals[0][0] > 1.0 - 1e-12 and marginals[1][0] > 1.0 - 1e-12


def test_payoff_gaps_beyond_exp_overflow_stay_finite(seed):
    """At α |f' - f| > 709 OpenSpiel's formula gives inf / inf; the seed's does not."""
    payoffs = 1000.0 * _dominance_solvable(np.random.default_rng(7))
    joint, marginals = seed["_alpha_rank"](payoffs, 50, 100.0)
    assert np.all(np.isfinite(joint))
    assert joint[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert all(np.isclose(m.sum(), 1.0, rtol=0, atol=1e-12) for m in marginals)


@pytest.mark.parametrize("m", [2, 50])
def test_fixation_probability_equals_the_moran_sum(seed, m):
    """ρ(u) = 1 / Σ_{l=0}^{m-1} e^{-l u} (Omidshafiei et al. 2019, eq. for the Moran process
    with the Fermi selection function), evaluated in log space, which never overflows."""
    u = np.array([-1e4, -700.0, -50.0, -3.0, -1e-3, -1e-15, 0.0, 1e-15, 1e-3, 3.0, 50.0,
                  700.0, 1e4])
    rho = seed["_fixation"](u, m)
    reference = np.exp(-np.logaddexp.reduce(-np.outer(u, np.arange(m)), axis=1))
    np.testing.assert_allclose(rho, reference, rtol=1e-12, atol=0)
    assert rho[6] == 1.0 / m and np.all((rho >= 0.0) & (rho <= 1.0))


# ---- in the search space -------------------------------------------------------------------

@pytest.mark.parametrize("task, iterations", [("kuhn_poker", 10), ("kuhn_poker(players=3)", 3)])
def test_seed_evaluates_in_the_space(task, iterations):
    result = SPACE.evaluate(SPACE.seeds()["alpha_rank"], task, iterations=iterations)
    assert result.ok, result.error
    assert math.isfinite(result.metrics["score"])
    assert [t for t, _ in result.curve] == log_checkpoints(iterations)
    assert all(e >= 0.0 for _, e in result.curve)


def test_probe_separates_alpha_rank_from_the_other_seeds(seed):
    fingerprint = SPACE.probe(seed)
    assert fingerprint.shape == (164,) and np.all(np.isfinite(fingerprint))
    for name, source in SPACE.seeds().items():
        if name != "alpha_rank":
            other: dict = {}
            exec(compile(source, f"<{name}>", "exec"), other)
            assert np.abs(fingerprint - SPACE.probe(other)).max() > 1e-3, name


@pytest.mark.parametrize("game, alpha", [("zero_sum_12x12", 10.0), ("general_sum_3x3x3", 100.0)])
def test_power_iteration_alone_equals_openspiel(seed, game, alpha):
    payoffs = GAMES[game]
    pi, converged = seed["_power_iteration"](seed["_moves"](payoffs, 50, alpha),
                                             seed["TOLERANCE"], seed["MAX_STEPS"])
    assert converged
    np.testing.assert_allclose(pi, _openspiel(payoffs, m=50, alpha=alpha), rtol=0, atol=1e-8)


def test_two_closed_classes_split_as_the_uniform_start_settles(seed):
    """A coordination game at α = 100: leaving either pure equilibrium underflows to
    probability 0, so the stationary distribution is not unique (OpenSpiel raises); the
    balance equations are singular and the seed returns where the uniform start settles,
    half on each equilibrium by symmetry."""
    payoffs = np.stack([np.eye(2), np.eye(2)], axis=-1)
    assert seed["_solve_directly"](seed["_moves"](payoffs, 50, 100.0)) is None
    joint, marginals = seed["_alpha_rank"](payoffs)
    np.testing.assert_allclose(joint, [[0.5, 0.0], [0.0, 0.5]], rtol=0, atol=1e-12)
    for mixture in marginals:
        np.testing.assert_allclose(mixture, [0.5, 0.5], rtol=0, atol=1e-12)
