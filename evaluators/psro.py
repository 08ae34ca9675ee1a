"""Exact policy-space response oracles (PSRO) on game arrays, with swappable meta-solvers.

PSRO (Lanctot et al., "A Unified Game-Theoretic Approach to Multiagent Reinforcement
Learning", NeurIPS 2017) grows a population of policies per player. Here every step is
exact, as in Li, Schultz, Hennes & Lanctot, "Discovering Multiagent Learning Algorithms
with Large Language Models" (2026, arXiv:2602.16928), so that only the meta-strategy
solvers decide the outcome. Each player's population starts as the uniform policy; PSRO
iteration ``t`` = 1, 2, ..., T then does:

1. ``train_meta_solver(payoffs, t, state)``: one mixture over the population per player,
   from the payoff tensor ``[n_1, ..., n_P, P]`` of the current population (n = t).
2. Every player's exact best response to the others' training mixtures
   (``best_response.best_response_policy``, uniform over tied optimal actions) joins that
   player's population (n = t + 1).
3. The payoff tensor is extended by the new entries (``payoff_slab``).
4. At a checkpoint, ``eval_meta_solver(payoffs, t, state)`` gives the mixtures whose
   exploitability (NashConv / P, ``best_response.evaluate``) is the curve point ``(t, e)``.

A mixture over a player's population is played as one behavioural policy, the
realisation-equivalent mixture (Kuhn's theorem): at information set ``I``, member ``j``
weighs in with ``sigma_j`` times its own reach probability of ``I``,

    mixed(I, a) = sum_j sigma_j r_j(I) pi_j(I, a) / sum_j sigma_j r_j(I),

uniform over legal actions where no member with positive weight reaches ``I`` (as
OpenSpiel's ``PolicyAggregator``). The per-information-set average of the members'
policies would be a different, wrong, strategy.

Exact payoffs come from one top-down pass per new population index (all players' new
members at once, ``best_response.reach_factors``): a member's own reach ``R_p[j, z]`` of
every terminal ``z``. The expected utility of a joint pure profile is then a contraction,

    M[j_1, ..., j_P, q] = sum_z c(z) u_q(z) prod_p R_p[j_p, z]        (c: chance reach),

which is exact (utilities sit at terminals only) and costs a few matrix products per
iteration instead of one value pass per profile (``benchmarks/psro_speed.py`` measures both).

Example::

    from evaluators.psro import run_psro
    uniform = lambda payoffs, t, state: ([np.full(n, 1 / n) for n in payoffs.shape[:-1]], state)
    run = run_psro(uniform, uniform, "kuhn_poker", iterations=50)
    run.curve[-1]   # (50, 0.0319...)

Why one file: one algorithm, exact PSRO, whose steps (payoffs, best responses,
exploitability) share the game arrays and the mixture checks.
"""

from __future__ import annotations

import dataclasses
import time
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from evaluators import best_response as br
from evaluators.cfr import log_checkpoints
from evaluators.games import TERMINAL, GameArrays, load_game_arrays, uniform_policies

MetaSolver = Callable[[np.ndarray, int, dict], tuple[Sequence[Any], dict]]

# A mixture entry may be this far below 0 (rounding) and is then read as 0.
NEGATIVE_TOL = 1e-9
# |sum of a mixture - 1| allowed before it counts as not normalised.
SUM_TOL = 1e-6
# Ties in the best response: actions within TIE_TOL * (1 + |best|) of the best value
# share the probability equally (the exact oracle of Li et al. 2026 randomises uniformly
# among optimal actions).
TIE_TOL = 1e-12
# The payoff tensor is allocated for the whole run up front; refuse runs above this.
MAX_PAYOFF_BYTES = 1 << 30

__all__ = ["InvalidCandidate", "PsroRun", "Population", "run_psro", "mixture_policy", "member_reaches",
           "terminal_weights", "payoff_slab", "payoff_tensor", "check_mixtures",
           "log_checkpoints", "TIE_TOL"]


class InvalidCandidate(Exception):
    """A meta-solver broke the contract (shape, NaN, negative or unnormalised mixture, a
    result that is not a pair, a state that is not a dict); the message is the reason."""


@dataclasses.dataclass(frozen=True)
class PsroRun:
    """The result of one PSRO run.

    Attributes:
      game: the canonical game string.
      iterations: PSRO iterations run (each player's population ends with
        ``iterations + 1`` policies).
      curve: ``(t, exploitability of the evaluation mixtures after iteration t)`` at each
        checkpoint; the last is at ``iterations``.
      payoffs: the final payoff tensor ``[n, ..., n, P]`` (n = iterations + 1).
      populations: per player ``[n, I_p, A]``, the policies in the order they joined
        (index 0 is the uniform policy).
      eval_mixtures: per player ``[n]``, the evaluation mixtures at the last checkpoint.
      train_mixtures: per iteration, per player, the training mixture (length t).
      meta_solver_time: seconds spent inside the two meta-solvers.
      wall_time: seconds for the whole run.
    """

    game: str
    iterations: int
    curve: list[tuple[int, float]]
    payoffs: np.ndarray
    populations: list[np.ndarray]
    eval_mixtures: list[np.ndarray]
    train_mixtures: list[list[np.ndarray]]
    meta_solver_time: float
    wall_time: float


# ---------------------------------------------------------------------------------------
# Exact payoffs


@lru_cache(maxsize=16)
def _tables(arrays: GameArrays):
    """The best-response module's pass tables for ``arrays``, built once per game."""
    return br.tables(arrays)


def _terminals(arrays: GameArrays) -> np.ndarray:
    return np.flatnonzero(arrays.player == TERMINAL)


def _first_nodes(arrays: GameArrays, player: int) -> np.ndarray:
    """[I_p] the first node of each of ``player``'s information sets."""
    return arrays.player_nodes[player][arrays.infoset_members[player][:, 0]]


def member_reaches(arrays: GameArrays, profile: Sequence[np.ndarray]):
    """Each player's own reach probabilities under ``profile`` (one policy per player).

    One top-down pass (``best_response.reach_factors``) serves all players at once,
    because a player's own reach of a node depends on its own policy only.

    Returns:
      ``(terminal [P, Z], infoset)``: ``terminal[p, z]`` is player p's own reach of the
      z-th terminal (``terminals`` order: ascending node id); ``infoset[p]`` is ``[I_p]``,
      p's own reach of each of its information sets (the same at all their nodes, by
      perfect recall).
    """
    t = _tables(arrays)
    ep = br.edge_probs(np, t, profile)
    reach = br.reach_factors(np, arrays, t, ep)
    terminal = reach[_terminals(arrays), :arrays.num_players].T.copy()
    infoset = [reach[_first_nodes(arrays, p), p] for p in range(arrays.num_players)]
    return terminal, infoset


def terminal_weights(arrays: GameArrays) -> np.ndarray:
    """[Z, P] chance's reach of each terminal times the players' utilities there."""
    t = _tables(arrays)
    ep = br.edge_probs(np, t, uniform_policies(arrays))
    chance = br.reach_factors(np, arrays, t, ep)[:, arrays.num_players]
    z = _terminals(arrays)
    return chance[z, None] * arrays.utility[z]


def payoff_slab(weights: np.ndarray, reaches: Sequence[np.ndarray]) -> np.ndarray:
    """Expected utilities of every joint pure profile over the given members.

    Args:
      weights: [Z, P] ``terminal_weights``.
      reaches: per player ``[m_p, Z]``, own terminal reaches of the members to combine.

    Returns:
      ``[m_1, ..., m_P, P]``: entry ``[j_1, ..., j_P, q]`` is player q's expected utility
      when each player p plays its member ``j_p``.
    """
    num_players = len(reaches)
    sizes = [r.shape[0] for r in reaches]
    if min(sizes) == 0:
        return np.zeros(sizes + [weights.shape[1]])
    # The player with most members is contracted last, by one matrix product; the
    # others are folded into the weights first, smallest first, so that the
    # intermediate [..., Z, P] stays small (1 x Z x P for a two-player slab).
    last = int(np.argmax(sizes))
    folded = sorted((p for p in range(num_players) if p != last), key=lambda p: sizes[p])
    x = weights                                                   # [Z, P]
    for p in folded:                                              # x: [m_p, ..., Z, P]
        r = reaches[p].reshape((sizes[p],) + (1,) * (x.ndim - 2) + (-1, 1))
        x = r * x[None]
    z = weights.shape[0]
    flat = np.moveaxis(x, -2, 0).reshape(z, -1)                  # [Z, prod(m_folded) * P]
    out = (reaches[last] @ flat).reshape([sizes[last]] + [sizes[p] for p in reversed(folded)]
                                         + [weights.shape[1]])
    order = [last] + list(reversed(folded))                     # the players' axes in ``out``
    return np.transpose(out, [order.index(p) for p in range(num_players)] + [num_players])


def payoff_tensor(arrays: GameArrays, populations: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The exact payoff tensor ``[n_1, ..., n_P, P]`` of the given populations (per player,
    a list of [I_p, A] policies; the populations may differ in size)."""
    reaches = []
    for p, members in enumerate(populations):
        rows = []
        for pi in members:
            profile = list(uniform_policies(arrays))
            profile[p] = np.asarray(pi, dtype=np.float64)
            rows.append(member_reaches(arrays, profile)[0][p])
        reaches.append(np.stack(rows) if rows else np.zeros((0, _terminals(arrays).size)))
    return payoff_slab(terminal_weights(arrays), reaches)


# ---------------------------------------------------------------------------------------
# Mixtures


def mixture_policy(policies: np.ndarray, infoset_reach: np.ndarray, weights: np.ndarray,
                   legal: np.ndarray) -> np.ndarray:
    """The behavioural policy realisation-equivalent to a mixture of policies.

    Args:
      policies: [n, I, A] the members' policies.
      infoset_reach: [n, I] each member's own reach probability of each information set.
      weights: [n] the mixture (non-negative, summing to 1).
      legal: [I, A] legal-action mask.

    Returns:
      [I, A]: ``sum_j w_j r_j(I) pi_j(I, a) / sum_j w_j r_j(I)``; uniform over legal
      actions where the denominator is 0.
    """
    reach = np.asarray(weights, dtype=np.float64)[:, None] * infoset_reach          # [n, I]
    numerator = np.einsum("ni,nia->ia", reach, policies)
    denominator = reach.sum(axis=0)[:, None]
    uniform = legal / legal.sum(axis=1, keepdims=True)
    reached = denominator > 0.0
    return np.where(reached, numerator / np.where(reached, denominator, 1.0), uniform)


def check_mixtures(who: str, out: Any, sizes: Sequence[int]) -> tuple[list[np.ndarray], dict]:
    """Validates a meta-solver's return value ``(mixtures, state)``.

    Args:
      who: the function's name, for messages.
      out: what it returned.
      sizes: the population size of each player.

    Returns:
      ``(mixtures, state)`` with each mixture a float64 vector, entries above
      ``-NEGATIVE_TOL`` clipped at 0 and renormalised to sum exactly to 1.

    Raises:
      InvalidCandidate: not a pair, a state that is not a dict, a wrong number of
        mixtures, a wrong length, NaN/inf, a negative entry, or a sum off 1 by more
        than ``SUM_TOL``.
    """
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise InvalidCandidate(f"{who} must return a pair (mixtures, state), got "
                               f"{type(out).__name__}{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.")
    mixtures, state = out
    if not isinstance(state, dict):
        raise InvalidCandidate(f"{who} returned a state of type {type(state).__name__}; "
                               "it must be a dict.")
    try:
        count = len(mixtures)
    except TypeError:
        raise InvalidCandidate(f"{who} returned mixtures of type {type(mixtures).__name__}; "
                               f"expected one vector per player ({len(sizes)}).") from None
    if count != len(sizes):
        raise InvalidCandidate(f"{who} returned {count} mixtures for {len(sizes)} players.")
    checked = []
    for p, (mix, n) in enumerate(zip(mixtures, sizes)):
        try:
            x = np.asarray(mix, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidCandidate(f"{who} returned a mixture for player {p} that is not a "
                                   f"numeric vector ({e}).") from None
        if x.shape != (n,):
            raise InvalidCandidate(f"{who} returned a mixture of shape {x.shape} for player "
                                   f"{p}, whose population has {n} policies (expected ({n},)).")
        if not np.all(np.isfinite(x)):
            raise InvalidCandidate(f"{who} returned a mixture with NaN or infinite entries "
                                   f"for player {p}.")
        if x.min() < -NEGATIVE_TOL:
            raise InvalidCandidate(f"{who} returned a mixture with a negative entry "
                                   f"({x.min():.3g}) for player {p}.")
        total = float(x.sum())
        if abs(total - 1.0) > SUM_TOL:
            raise InvalidCandidate(f"{who} returned a mixture for player {p} that sums to "
                                   f"{total:.9g}, not 1.")
        x = np.maximum(x, 0.0)
        checked.append(x / x.sum())
    return checked, state


def _call(solver: MetaSolver, who: str, payoffs: np.ndarray, iteration: int,
          state: dict) -> tuple[list[np.ndarray], dict, float]:
    """Calls a meta-solver on a private copy of the payoffs; returns its checked output
    and the seconds it took."""
    begin = time.perf_counter()
    with np.errstate(all="ignore"):  # a candidate's overflow is judged by its output
        out = solver(payoffs.copy(), iteration, state)
    elapsed = time.perf_counter() - begin
    mixtures, state = check_mixtures(who, out, payoffs.shape[:-1])
    return mixtures, state, elapsed


# ---------------------------------------------------------------------------------------
# The loop


class Population:
    """The growing populations of one PSRO run and their exact payoff tensor.

    Storage for ``capacity`` policies per player is allocated up front; all players grow
    together (PSRO adds one policy per player per iteration).

    Attributes:
      arrays: the game.
      size: policies per player so far.
      policies: per player ``[capacity, I_p, A]`` (rows ``:size`` are filled).
      infoset_reach: per player ``[capacity, I_p]``, each member's own reach of each
        information set (for realisation-equivalent mixing).
      terminal_reach: per player ``[capacity, Z]``, each member's own reach of each terminal.
      payoff_table: ``[capacity] * P + [P]``; the block ``[:size] * P`` is exact.
    """

    def __init__(self, arrays: GameArrays, capacity: int):
        num_players = arrays.num_players
        shape = (capacity,) * num_players + (num_players,)
        nbytes = 8 * int(np.prod(shape, dtype=np.float64))
        if nbytes > MAX_PAYOFF_BYTES:
            raise ValueError(f"A {num_players}-player payoff tensor for {capacity} policies "
                             f"per player needs {nbytes / 2**30:.1f} GiB; run fewer iterations.")
        self.arrays = arrays
        self.capacity = capacity
        self.size = 0
        self.weights = terminal_weights(arrays)
        num_terminals = self.weights.shape[0]
        self.payoff_table = np.zeros(shape)
        self.policies = [np.zeros((capacity,) + legal.shape) for legal in arrays.legal]
        self.infoset_reach = [np.zeros((capacity, legal.shape[0])) for legal in arrays.legal]
        self.terminal_reach = [np.zeros((capacity, num_terminals)) for _ in range(num_players)]

    def payoffs(self) -> np.ndarray:
        """The exact payoff tensor of the current populations (a view)."""
        return self.payoff_table[(slice(0, self.size),) * self.arrays.num_players]

    def add(self, profile: Sequence[np.ndarray]) -> None:
        """Adds ``profile[p]`` to every player p's population and the new payoff entries."""
        if self.size >= self.capacity:
            raise ValueError(f"The populations are full ({self.capacity} policies per player).")
        num_players, index = self.arrays.num_players, self.size
        terminal, infoset = member_reaches(self.arrays, profile)
        for p in range(num_players):
            self.policies[p][index] = profile[p]
            self.terminal_reach[p][index] = terminal[p]
            self.infoset_reach[p][index] = infoset[p]
        # The new entries are the profiles with some index equal to ``index``: for player
        # p, those with j_p = index, j_q < index for q < p and j_q <= index for q > p
        # (a partition, so every entry is written once).
        for p in range(num_players):
            reaches = [self.terminal_reach[q][:index] if q < p else self.terminal_reach[q][:index + 1]
                       for q in range(num_players)]
            reaches[p] = self.terminal_reach[p][index:index + 1]
            block = tuple(slice(0, index) if q < p else slice(0, index + 1)
                          for q in range(num_players))
            block = block[:p] + (slice(index, index + 1),) + block[p + 1:]
            self.payoff_table[block] = payoff_slab(self.weights, reaches)
        self.size += 1

    def play(self, mixtures: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per player, the behavioural policy realisation-equivalent to its mixture."""
        n = self.size
        return [mixture_policy(self.policies[p][:n], self.infoset_reach[p][:n], mixtures[p],
                               self.arrays.legal[p])
                for p in range(self.arrays.num_players)]

    def best_responses(self, mixtures: Sequence[np.ndarray], tie_tol: float = TIE_TOL
                       ) -> list[np.ndarray]:
        """Every player's exact best response to the others' mixtures (ties split evenly)."""
        played = self.play(mixtures)
        return [br.best_response_policy(self.arrays, played, p, tie_tol=tie_tol)
                for p in range(self.arrays.num_players)]

    def exploitability(self, mixtures: Sequence[np.ndarray]) -> float:
        """NashConv / P of the mixtures, played as behavioural policies."""
        return float(br.evaluate(self.arrays, self.play(mixtures)).exploitability)


def run_psro(meta_solver_train: MetaSolver, meta_solver_eval: MetaSolver,
             game: str | GameArrays, iterations: int,
             checkpoints: Sequence[int] | None = None, tie_tol: float = TIE_TOL) -> PsroRun:
    """Runs exact PSRO for ``iterations`` iterations with the given meta-solvers.

    Args:
      meta_solver_train: ``f(payoffs, iteration, state) -> (mixtures, state)``; called at
        every iteration t = 1..T on the payoff tensor of t policies per player; the next
        best responses answer its mixtures.
      meta_solver_eval: the same signature; called after iteration t at each checkpoint,
        on the tensor of t + 1 policies per player; its mixtures are the ones measured.
      game: a game string or its arrays (any number of players).
      iterations: T >= 1.
      checkpoints: iterations at which to measure (default ``log_checkpoints(T)``); T is
        always included.
      tie_tol: relative tolerance under which best-response actions count as tied.

    Each meta-solver owns its state: a dict, ``{}`` at its first call, then whatever it
    returned last time. ``payoffs[j_1, ..., j_P, q]`` is player q's expected utility when
    each player p plays its ``j_p``-th policy.

    Raises:
      InvalidCandidate: a meta-solver broke the contract (see ``check_mixtures``).
      ValueError: bad ``iterations`` or checkpoints, or a payoff tensor too large.
    """
    begin = time.perf_counter()
    arrays = load_game_arrays(game) if isinstance(game, str) else game
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    iterations = int(iterations)
    marks = sorted({int(c) for c in (checkpoints if checkpoints is not None
                                      else log_checkpoints(iterations))} | {iterations})
    if marks[0] < 1 or marks[-1] > iterations:
        raise ValueError(f"checkpoints must lie in 1..{iterations}, got {marks}.")
    population = Population(arrays, iterations + 1)
    population.add(uniform_policies(arrays))
    train_state: dict = {}
    eval_state: dict = {}
    solver_time = 0.0
    curve: list[tuple[int, float]] = []
    train_history: list[list[np.ndarray]] = []
    eval_mixtures: list[np.ndarray] = []
    for t in range(1, iterations + 1):
        mixtures, train_state, spent = _call(meta_solver_train, "train_meta_solver",
                                             population.payoffs(), t, train_state)
        solver_time += spent
        train_history.append(mixtures)
        population.add(population.best_responses(mixtures, tie_tol))
        if t in marks:
            eval_mixtures, eval_state, spent = _call(meta_solver_eval, "eval_meta_solver",
                                                     population.payoffs(), t, eval_state)
            solver_time += spent
            curve.append((t, population.exploitability(eval_mixtures)))
    n = population.size
    return PsroRun(
        game=arrays.game_string, iterations=iterations, curve=curve,
        payoffs=population.payoffs().copy(),
        populations=[pi[:n].copy() for pi in population.policies],
        eval_mixtures=eval_mixtures, train_mixtures=train_history,
        meta_solver_time=solver_time, wall_time=time.perf_counter() - begin)
