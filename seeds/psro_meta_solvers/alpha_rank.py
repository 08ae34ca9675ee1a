"""α-Rank meta-strategies: the marginals of the multi-population α-Rank distribution.

Omidshafiei, Papadimitriou, Piliouras, Tuyls, Rowland, Lespiau, Czarnecki, Lanctot,
Perolat & Munos, "α-Rank: Multi-Agent Evaluation by Evolution" (Scientific Reports 9, 2019,
arXiv:1903.01373), section "Multi-population α-Rank"; as a PSRO meta-solver in Muller,
Omidshafiei, Rowland, Tuyls, Perolat, Liu, Hennes, Marris, Lanctot, Hughes, Wang, Lever,
Heess, Graepel & Munos, "A Generalized Training Approach for Multiagent Learning" (ICLR
2020, arXiv:1909.12823, α-PSRO). A PSRO mixture is per player, so each player plays its
marginal of the joint α-Rank distribution, as OpenSpiel's psro_v2 does
(`get_alpharank_marginals`).

1. One state per joint pure profile s = (s_1, ..., s_P) of the payoff tensor [n_1, ..., n_P, P]
   (the populations of all players are monomorphic). From s, player k's population is
   taken over by a mutant strategy r_k != s_k with probability η ρ, where
   η = 1 / Σ_k (n_k − 1) and, with u = α (f_k(r) − f_k(s)) the mutant's selection advantage
   (f_k = player k's payoff, r = s with s_k replaced by r_k), the fixation probability of
   a Moran process in a population of m individuals is
       ρ(u) = (1 − e^{−u}) / (1 − e^{−m u}),   ρ(0) = 1/m.
   The rest of the probability stays at s. Only single-player deviations are reachable:
   Σ_k (n_k − 1) neighbours per profile, about 2·10⁶ transitions for 101 × 101, 31³ or 13⁴
   profiles, so the chain is a scipy.sparse matrix.
2. The stationary distribution π of that chain: power iteration from the uniform
   distribution until one step moves π by less than TOLERANCE (L1); where that has not
   happened after MAX_STEPS steps (nearly closed classes that exchange mass slowly) and
   the chain has at most DIRECT_LIMIT profiles, the exact solution of the balance
   equations by sparse LU instead.
3. Each player's mixture is its marginal of π.

Settings: M = 50 and ALPHA = 100 are the defaults of OpenSpiel's `alpharank.compute`, on
the raw payoffs. At α = 100 a payoff gain of 0.05 already gives ρ ≈ 0.99 while a loss of
0.05 gives ρ ≈ e^{−245}: the chain is the response graph of α → ∞ except between
(near-)tied profiles, whose moves keep the neutral 1/m. OpenSpiel evaluates ρ as written
above, which overflows to inf/inf = NaN once α |f_k(r) − f_k(s)| > 709; here ρ is
computed without overflow from g(a) = expm1(−a) / expm1(−m a) with a = |u| (all
exponents ≤ 0): ρ(u) = g(a) for u > 0 and ρ(u) = e^{−(m−1) a} g(a) for u < 0 (the
identity ρ(−a) / ρ(a) = e^{−(m−1) a}), 1/m for |u| <= 1e-14 as in OpenSpiel.

Why power iteration: a sparse LU of (Cᵀ − I) fills in (every profile neighbours 200
others at 101 × 101) and took minutes there, and about a second at 2,500 profiles;
power iteration needs 140-380 steps of a few ms on the largest PSRO meta-games here
(whose response graphs are one large cycle-rich component), 0.3-0.7 s per call. Warm
starts from the previous call's π saved about 5% of the steps and are not used. Where the
chain has several closed classes (moves out of them underflow to 0 at large α: OpenSpiel
then finds several stationary distributions and raises), the result is the distribution
the uniform start settles into.
"""

import numpy as np

# EVOLVE-BLOCK-START
from scipy import sparse
from scipy.sparse.linalg import splu

M = 50
ALPHA = 100.0
TOLERANCE = 1e-14
MAX_STEPS = 2000
DIRECT_LIMIT = 3000


def _fixation(u, m):
    """Fixation probability ρ(u) of a mutant with selection advantage u (any shape) in a
    population of m, without overflow."""
    a = np.abs(u)
    neutral = a <= 1e-14
    a = np.where(neutral, 1.0, a)
    gain = np.expm1(-a) / np.expm1(-m * a)
    rho = np.where(u > 0, gain, gain * np.exp(-(m - 1) * a))
    return np.where(neutral, 1.0 / m, rho)


def _moves(payoffs, m, alpha):
    """The off-diagonal part of the α-Rank Markov chain over joint profiles (C order): a
    CSR matrix [N, N] whose row s holds the probabilities η ρ of moving from profile s to
    each single-player deviation (staying at s takes the rest)."""
    sizes = payoffs.shape[:-1]
    count = int(np.prod(sizes))
    eta = 1.0 / sum(n - 1 for n in sizes)
    index = np.arange(count).reshape(sizes)
    targets, probabilities = [], []
    for k, n in enumerate(sizes):
        if n == 1:
            continue
        own = payoffs[..., k]
        # A new last axis r: the profile with player k's strategy replaced by r.
        mutant = np.expand_dims(np.moveaxis(own, k, -1), k)
        target = np.expand_dims(np.moveaxis(index, k, -1), k)
        current = np.arange(n).reshape((1,) * k + (n,) + (1,) * (len(sizes) - k - 1))
        is_move = np.broadcast_to(current[..., None] != np.arange(n), sizes + (n,))
        gain = (mutant - own[..., None])[is_move].reshape(count, n - 1)
        targets.append(np.broadcast_to(target, sizes + (n,))[is_move].reshape(count, n - 1))
        probabilities.append(eta * _fixation(alpha * gain, m))
    width = sum(t.shape[1] for t in targets)
    return sparse.csr_matrix(
        (np.concatenate(probabilities, axis=1).ravel(), np.concatenate(targets, axis=1).ravel(),
         np.arange(count + 1) * width), shape=(count, count))


def _power_iteration(moves, tolerance, max_steps):
    """(π [N], converged): power iteration from the uniform distribution on the chain with
    off-diagonal probabilities ``moves`` [N, N], until one step moves π by less than
    ``tolerance`` (L1) or for ``max_steps`` steps.

    Every move probability is divided by the largest probability of leaving a profile
    (uniformisation): the same stationary distribution, up to m times fewer steps where
    selection is weak and most steps stay put.
    """
    leave = np.asarray(moves.sum(axis=1)).ravel()
    scale = leave.max()
    step = (moves.T / scale).tocsr()
    stay = 1.0 - leave / scale
    pi = np.full(moves.shape[0], 1.0 / moves.shape[0])
    for _ in range(max_steps):
        following = step @ pi + stay * pi
        following /= following.sum()
        moved = np.abs(following - pi).sum()
        pi = following
        if moved < tolerance:
            return pi, True
    return pi, False


def _solve_directly(moves):
    """π [N] from the balance equations (Cᵀ − I) π = 0, the last replaced by Σ π = 1, by
    sparse LU; None where that system is singular (several closed classes)."""
    count = moves.shape[0]
    leave = np.asarray(moves.sum(axis=1)).ravel()
    balance = (moves.T - sparse.diags(leave)).tocsr()
    system = sparse.vstack([balance[:-1], sparse.csr_matrix(np.ones((1, count)))]).tocsc()
    rhs = np.zeros(count)
    rhs[-1] = 1.0
    try:
        pi = splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    except RuntimeError:
        return None
    if not np.all(np.isfinite(pi)) or pi.min() < -1e-9:
        return None
    pi = np.maximum(pi, 0.0)
    return pi / pi.sum()


def _stationary(moves):
    """The stationary distribution [N]: power iteration, which mixes within a few hundred
    steps on the meta-games here; where it has not settled after MAX_STEPS (nearly closed
    classes that exchange mass slowly) and the chain is small enough for sparse LU, the
    exact solve; otherwise the last iterate."""
    pi, converged = _power_iteration(moves, TOLERANCE, MAX_STEPS)
    if not converged and moves.shape[0] <= DIRECT_LIMIT:
        exact = _solve_directly(moves)
        if exact is not None:
            return exact
    return pi


def _alpha_rank(payoffs, m=M, alpha=ALPHA):
    """(the α-Rank distribution over joint profiles [n_1, ..., n_P], one marginal per
    player)."""
    sizes = payoffs.shape[:-1]
    if all(n == 1 for n in sizes):
        joint = np.ones(sizes)
    else:
        joint = _stationary(_moves(payoffs, m, alpha)).reshape(sizes)
    axes = range(len(sizes))
    marginals = [joint.sum(axis=tuple(q for q in axes if q != p)) for p in axes]
    return joint, marginals


def train_meta_solver(payoffs, iteration, state):
    return _alpha_rank(payoffs)[1], state


def eval_meta_solver(payoffs, iteration, state):
    return _alpha_rank(payoffs)[1], state
# EVOLVE-BLOCK-END
