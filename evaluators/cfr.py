"""Exact, vectorised counterfactual regret minimisation with candidate update rules.

CFR (Zinkevich et al., "Regret Minimization in Games with Incomplete Information",
NeurIPS 2007) with alternating updates, as in OpenSpiel's ``CFRSolverBase``. A candidate
(see docs/cfr_candidate_api.md) supplies four functions, applied to all information sets
of the updating player at once. Iteration ``t`` = 1, 2, ... does, for each player p in turn:

1. Reach, top-down over depths: every node's reach by chance and the other players
   (counterfactual reach), from the carried edge probabilities of the current policies
   (p's sigma^t, the others' latest); p's own reach of each information set, as a
   product along one root path (perfect recall makes it the same for all its nodes).
2. Values for p, bottom-up over depths: ``v(h) = sum_a pi(h, a) v(ha)``, a sorted
   segment sum since a node's children are contiguous.
3. Instantaneous regrets ``r(I, a) = sum_{h in I} pi_{-p}(h) (v(ha) - v(h))``: one term
   per edge leaving p's nodes, summed into (information set, action) bins.
4. ``update_regret`` -> ``update_average`` (with p's own reach) -> ``derive_policy``;
   the edge probabilities of p's edges are re-read from the new policy.

This order and these weights reproduce OpenSpiel's ``CFRSolver`` and ``CFRPlusSolver``
(whose C++ adds regrets node by node and floors them after each player's traversal; the
sums differ only in rounding).

Two backends run the same passes (they are written once against an array module ``xp``):
``"jax"`` compiles the whole loop (``lax.while_loop``, float64) once per candidate and
game, in segments between checkpoints; ``"numpy"`` runs it step by step, for candidates
JAX cannot trace. ``"auto"`` picks the faster backend for the run's length (measured cost
model, ``preferred_backend``), and falls back to NumPy if tracing fails; on a
machine with a GPU, JAX uses it.

The candidate's outputs are validated every iteration (shapes at trace time; finiteness,
signs, normalisation and illegal mass as flags inside the compiled loop) and a violation
raises ``InvalidCandidate`` naming the function, the kind and the first iteration.

Why one file: one algorithm on both backends, NumPy and JAX, whose passes must agree to
1e-12.
"""

from __future__ import annotations

import dataclasses
import math
import time
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from evaluators import best_response as br
from evaluators.best_response import append, is_numpy, take
from evaluators.games import GameArrays, load_game_arrays

RULE_NAMES = ("init_state", "update_regret", "derive_policy", "update_average")

# Tolerances of the validity checks.
NEGATIVE_TOL = 1e-12   # probabilities (and cumulative policy entries) must be >= -this
ILLEGAL_TOL = 1e-12    # probability allowed on an illegal action
SUM_TOL = 1e-6         # |row sum - 1|

# XLA's algebraic simplifier rewrites x / broadcast(y) as x * broadcast(1 / y), which is
# not IEEE division: rows normalised by their sum then differ from OpenSpiel's in the last
# bit, and where regrets tie exactly (4-player Kuhn poker) regret matching turns that into
# a different policy at iteration 1. Without the pass the compiled loop matches the C++
# solvers to ~1e-13 there, for ~5% of speed.
COMPILER_OPTIONS = {"xla_disable_hlo_passes": "algsimp"}

# Kinds of violation, in the order the functions are called within a player update.
_VIOLATIONS = {
    1: "update_average returned a cumulative policy with NaN or infinite entries",
    2: "update_average returned a cumulative policy with negative entries",
    3: "derive_policy returned a policy with NaN or infinite entries",
    4: "derive_policy returned a policy with negative probabilities",
    5: "derive_policy returned a policy with mass on illegal actions",
    6: "derive_policy returned a policy whose rows do not sum to 1",
}


class InvalidCandidate(Exception):
    """The candidate broke the contract; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class CfrRun:
    """The result of running a candidate on one game.

    Attributes:
      game: the canonical game string.
      iterations: number of CFR iterations run.
      curve: (iteration, exploitability of the average policy) at each checkpoint; the
        last is at ``iterations``.
      backend: "jax" or "numpy".
      average_policy: per player [I_p, A], the normalised cumulative policy (uniform over
        legal actions where the cumulative policy is 0), in ``GameArrays`` infoset order.
      wall_time: seconds, including compilation.
    """

    game: str
    iterations: int
    curve: list[tuple[int, float]]
    backend: str
    average_policy: list[np.ndarray]
    wall_time: float


def log_checkpoints(iterations: int, per_decade: int = 4) -> list[int]:
    """Log-spaced checkpoints ``round(10**(k/per_decade))`` below ``iterations``, then
    ``iterations``: unique, increasing ints (e.g. 1, 2, 3, 6, 10, 18, ..., 562, 1000)."""
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    if int(per_decade) != per_decade or per_decade < 1:
        raise ValueError(f"per_decade must be a positive integer, got {per_decade!r}.")
    iterations = int(iterations)
    top = math.ceil(math.log10(iterations) * per_decade) + 1
    points = {int(round(10 ** (k / per_decade))) for k in range(top)}
    return sorted(p for p in points if p < iterations) + [iterations]


# ---------------------------------------------------------------------------------------
# The passes (array-module generic)


def cfr_tables(arrays: GameArrays) -> dict[str, Any]:
    """The arrays one CFR iteration reads, as a pytree of NumPy arrays."""
    a = arrays.num_actions
    edge_nodes, edge_bins = [], []
    for p in range(arrays.num_players):
        # The edges leaving the player's decision nodes, and the (infoset, action) bin of
        # the regret each contributes to.
        nodes = np.flatnonzero(arrays.edge_owner == p).astype(np.int32)
        edge_nodes.append(nodes)
        edge_bins.append((arrays.infoset[arrays.parent[nodes]] * a
                          + arrays.action[nodes]).astype(np.int32))
    offsets = _flat_offsets(arrays)
    own_edge = tuple(arrays.edge_owner == p for p in range(arrays.num_players))
    return {
        "own_edge": own_edge,
        # Index of each of the player's edges in its raveled policy (0 elsewhere).
        "own_index": tuple(np.where(own_edge[p], arrays.edge_index - offsets[p], 0).astype(np.int32)
                           for p in range(arrays.num_players)),
        "parent_local": br.parent_local(arrays),
        "utility": tuple(np.ascontiguousarray(arrays.utility[:, p])
                         for p in range(arrays.num_players)),
        "edge_nodes": tuple(edge_nodes),
        "edge_parents": tuple(arrays.parent[n] for n in edge_nodes),
        "edge_bins": tuple(edge_bins),
        "own_paths": arrays.infoset_paths,
        "legal": arrays.legal,
    }


def _flat_offsets(arrays: GameArrays) -> list[int]:
    """Where each player's raveled policy starts in the flat vector that
    ``GameArrays.edge_index`` indexes (the chance probabilities follow the last one)."""
    sizes = [legal.size for legal in arrays.legal]
    return [int(x) for x in np.concatenate([[0], np.cumsum(sizes)])]


def _product(xp, factors):
    """Product over the last axis, left to right (as reach is multiplied down a path)."""
    out = factors[..., 0]
    for k in range(1, factors.shape[-1]):
        out = out * factors[..., k]
    return out


def _segment_sum(xp, x, segments, num_segments: int, is_sorted: bool):
    """[num_segments] sums of ``x`` by segment id, each accumulated in index order."""
    if is_numpy(xp):
        return np.bincount(segments, weights=x, minlength=num_segments)
    import jax

    return jax.ops.segment_sum(x, segments, num_segments=num_segments,
                               indices_are_sorted=is_sorted)


def edge_update(xp, t, ep, sigma, player: int):
    """``ep`` with the edges of ``player`` re-read from its policy ``sigma`` [I_p, A]."""
    fresh = take(xp, xp.reshape(sigma, (-1,)), t["own_index"][player])
    return xp.where(t["own_edge"][player], fresh, ep)


def traverse(xp, arrays: GameArrays, t, ep, player: int):
    """One CFR traversal for ``player``.

    Args:
      t: ``cfr_tables(arrays)`` (NumPy arrays, or their JAX counterparts).
      ep: [N] probability of the edge into each node under the current policies.

    Returns:
      (inst_regret [I_p, A] counterfactual regrets, reach [I_p] the player's own reach).
    """
    off = [int(o) for o in arrays.depth_offsets]
    own_edge = t["own_edge"][player]

    # Counterfactual reach (chance and the other players), top-down over depths.
    others = xp.where(own_edge, 1.0, ep)
    blocks = [others[0:1]]
    for d in range(1, arrays.num_depths):
        blocks.append(take(xp, blocks[-1], t["parent_local"][d - 1]) * others[off[d]:off[d + 1]])
    cf_reach = xp.concatenate(blocks)                                          # [N]
    # Own reach is shared by an information set's nodes (perfect recall): one path each.
    own = append(xp, xp.where(own_edge, ep, 1.0), 1.0)
    own_reach = _product(xp, take(xp, own, t["own_paths"][player]))           # [I_p]

    # Values for the player, bottom-up over depths (children are contiguous).
    utility = t["utility"][player]
    v = utility[off[-2]:off[-1]]
    blocks = [v]
    for d in reversed(range(arrays.num_depths - 1)):
        x = ep[off[d + 1]:off[d + 2]] * v
        v = utility[off[d]:off[d + 1]] + _segment_sum(
            xp, x, t["parent_local"][d], off[d + 1] - off[d], is_sorted=True)
        blocks.append(v)
    values = xp.concatenate(blocks[::-1])                                      # [N]

    # Regret of each edge leaving the player's nodes, summed into (infoset, action).
    parents = t["edge_parents"][player]
    edge_regret = take(xp, cf_reach, parents) * (
        take(xp, values, t["edge_nodes"][player]) - take(xp, values, parents))
    num_infosets = arrays.legal[player].shape[0]
    inst = _segment_sum(xp, edge_regret, t["edge_bins"][player],
                        num_infosets * arrays.num_actions, is_sorted=False)
    return xp.reshape(inst, (num_infosets, arrays.num_actions)), own_reach


def violation(xp, sigma, cum_policy, legal):
    """The first kind of violation (a key of ``_VIOLATIONS``), 0 if none, as a scalar.

    Each array is scanned once: an element's worst problem is coded so that a larger code
    is an earlier check, and the maximum picks the first violated one.
    """
    if sigma.size == 0:
        return xp.asarray(0)
    cum_code = xp.max(xp.where(xp.isfinite(cum_policy),
                               xp.where(cum_policy >= -NEGATIVE_TOL, 0, 1), 2))
    sigma_code = xp.max(xp.where(
        xp.isfinite(sigma),
        xp.where(sigma >= -NEGATIVE_TOL,
                 xp.where(xp.abs(sigma) * (1.0 - legal) <= ILLEGAL_TOL, 0, 1), 2), 3))
    sums_ok = xp.all(xp.abs(xp.sum(sigma, axis=1) - 1.0) <= SUM_TOL)
    return xp.where(cum_code > 0, 3 - cum_code,
                    xp.where(sigma_code > 0, 6 - sigma_code, xp.where(sums_ok, 0, 6)))


def normalise(xp, cum_policy, legal):
    """Rows of ``cum_policy`` over legal actions, uniform where a row has no mass."""
    mass = cum_policy * legal
    total = xp.sum(mass, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    return xp.where(total > 0.0, mass / xp.where(total > 0.0, total, 1.0), uniform)


# ---------------------------------------------------------------------------------------
# Calling the candidate (structural checks; run at trace time on the JAX path)


def _unpack(name: str, out, expected_shape, state_template, xp):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise InvalidCandidate(f"{name} must return a pair (array, state), got {type(out).__name__}.")
    value, state = out
    shape = tuple(getattr(value, "shape", ()))
    if shape != tuple(expected_shape):
        raise InvalidCandidate(f"{name} returned shape {shape}, expected {tuple(expected_shape)}")
    return xp.asarray(value, dtype=xp.float64), _check_state(name, state, state_template, xp)


def _check_state(name: str, state, template, xp):
    if not isinstance(state, Mapping):
        raise InvalidCandidate(f"{name} returned a state of type {type(state).__name__}, expected a dict")
    if set(state) != set(template):
        raise InvalidCandidate(f"{name} returned state keys {sorted(state)}, expected {sorted(template)}")
    out = {}
    for key, ref in template.items():
        shape = tuple(getattr(state[key], "shape", ()))
        if shape != tuple(ref.shape):
            raise InvalidCandidate(f"{name} returned state[{key!r}] with shape {shape}, "
                                   f"expected {tuple(ref.shape)}")
        out[key] = xp.asarray(state[key], dtype=ref.dtype)
    return out


def _initial_state(rules, num_infosets: int, num_actions: int, xp):
    state = rules["init_state"](num_infosets, num_actions, xp)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise InvalidCandidate("init_state must return a dict with string keys")
    out = {}
    for key, value in state.items():
        value = xp.asarray(value)
        if not (xp.issubdtype(value.dtype, xp.floating) or xp.issubdtype(value.dtype, xp.integer)
                or value.dtype == xp.bool_):
            raise InvalidCandidate(f"init_state returned state[{key!r}] of dtype {value.dtype}")
        # Floats run in float64 whatever the candidate asked for.
        out[key] = value.astype(xp.float64) if xp.issubdtype(value.dtype, xp.floating) else value
    return out


def _player_update(xp, rules, t_float, inst, reach, sigma, cum_regret, cum_policy, state, legal):
    """update_regret -> update_average -> derive_policy, with structural checks."""
    # NumPy arrays are mutable: the candidate gets copies, so that an in-place edit can
    # corrupt neither the engine's arrays nor the game's.
    if is_numpy(xp):
        def c(x):
            return x.copy()

        def cs(st):
            return {k: v.copy() for k, v in st.items()}
    else:
        def c(x):
            return x

        def cs(st):
            return st
    shape = legal.shape
    cum_regret, state = _unpack(
        "update_regret", rules["update_regret"](c(cum_regret), c(inst), t_float, cs(state), xp),
        shape, state, xp)
    cum_policy, state = _unpack(
        "update_average",
        rules["update_average"](c(cum_policy), c(sigma), c(reach), t_float, cs(state), xp),
        shape, state, xp)
    sigma, state = _unpack(
        "derive_policy",
        rules["derive_policy"](c(cum_regret), c(inst), c(legal), t_float, cs(state), xp),
        shape, state, xp)
    return sigma, cum_regret, cum_policy, state


def _check_rules(rules: Mapping[str, Callable]) -> None:
    missing = [n for n in RULE_NAMES if not callable(rules.get(n))]
    if missing:
        raise InvalidCandidate(f"the candidate does not define {', '.join(missing)}")


# ---------------------------------------------------------------------------------------
# Engines


@dataclasses.dataclass(frozen=True)
class CfrState:
    """Where a run stands.

    Attributes:
      iteration: iterations done.
      sigma: per player [I_p, A], the policy the next iteration plays.
      edge_prob: [N] the probability of the edge into each node under ``sigma``.
      cum_regret, cum_policy: per player [I_p, A].
      state: per player, the candidate's state dict.
    (Arrays are the engine's backend arrays.)
    """

    iteration: int
    sigma: tuple
    edge_prob: Any
    cum_regret: tuple
    cum_policy: tuple
    state: tuple


def _initial(rules, arrays: GameArrays, xp=np) -> CfrState:
    """The state before iteration 1, as NumPy arrays (uniform policies, zero sums).

    ``init_state`` is called with ``xp``; the JAX engine passes NumPy first, since each
    eager ``jax.numpy`` call compiles a small program of its own.
    """
    legal = [np.asarray(m) for m in arrays.legal]
    sigma = [m / m.sum(axis=1, keepdims=True) for m in legal]
    ep = br.edge_probs(np, {"edge_index": arrays.edge_index,
                            "chance_prob": arrays.chance_prob}, sigma)
    states = tuple(_initial_state(rules, m.shape[0], arrays.num_actions, xp) for m in legal)
    return CfrState(0, tuple(sigma), ep, tuple(np.zeros(m.shape) for m in legal),
                    tuple(np.zeros(m.shape) for m in legal), states)


def _update_player(xp, arrays: GameArrays, rules, t, s: CfrState, player: int, t_float):
    """Traversal and the candidate's updates for one player; returns the new state and
    the violation kind (0 if none)."""
    legal = t["legal"][player]
    inst, reach = traverse(xp, arrays, t, s.edge_prob, player)
    sigma, cum_r, cum_p, state = _player_update(
        xp, rules, t_float, inst, reach, s.sigma[player], s.cum_regret[player],
        s.cum_policy[player], s.state[player], legal)
    kind = violation(xp, sigma, cum_p, legal)

    def put(seq, x):
        return tuple(x if q == player else y for q, y in enumerate(seq))

    return CfrState(s.iteration, put(s.sigma, sigma), edge_update(xp, t, s.edge_prob, sigma, player),
                    put(s.cum_regret, cum_r), put(s.cum_policy, cum_p), put(s.state, state)), kind


def _raise_violation(kind: int, iteration: int, player: int):
    raise InvalidCandidate(f"{_VIOLATIONS[kind]} at iteration {iteration} (player {player})")


class CfrEngine:
    """A candidate prepared (NumPy) or compiled (JAX) for one game; ``run_cfr`` drives it.

    Use: ``s = engine.start()``, then ``s = engine.advance(s, stop)`` (raises
    ``InvalidCandidate``), then ``engine.average_policy(s)`` or ``engine.exploitability(s)``.

    Attributes:
      backend: "jax" or "numpy".
      arrays: the game.
      compile_time: seconds spent tracing and compiling (0 for NumPy).
    """

    backend: str
    arrays: GameArrays
    compile_time: float = 0.0

    def start(self) -> CfrState:
        """The state before iteration 1 (uniform policies, zero accumulators)."""
        raise NotImplementedError

    def advance(self, s: CfrState, stop: int) -> CfrState:
        """Runs iterations ``s.iteration + 1 .. stop``."""
        raise NotImplementedError

    def average_policy(self, s: CfrState) -> list[np.ndarray]:
        """Per player [I_p, A]: the normalised cumulative policy."""
        return [normalise(np, np.asarray(c, dtype=np.float64), legal)
                for c, legal in zip(s.cum_policy, self.arrays.legal)]

    def current_policy(self, s: CfrState) -> list[np.ndarray]:
        """Per player [I_p, A]: the policy the next iteration plays."""
        return [np.asarray(x, dtype=np.float64) for x in s.sigma]

    def exploitability(self, s: CfrState) -> float:
        """Exploitability (NashConv / players) of the average policy (see
        ``checkpoint_exploitability``)."""
        return checkpoint_exploitability(self.arrays, self.average_policy(s))


# Seconds spent in NumPy best responses, per game, in this process.
_NUMPY_BR_SECONDS: dict[str, float] = {}
# Roughly what compiling the jitted best response of a game costs on a CPU (1-3.5 s).
JIT_BEST_RESPONSE_AFTER = 2.0


def checkpoint_exploitability(arrays: GameArrays, policies: Sequence[np.ndarray]) -> float:
    """Exploitability of ``policies``, by the NumPy or the jitted best response.

    The jitted best response is 2-10x faster per call on a CPU but costs seconds to
    compile per game and process, more than a whole run's NumPy checkpoints usually do.
    So (as in ski rental) NumPy is used until it has cost ``JIT_BEST_RESPONSE_AFTER``
    seconds on this game in this process; from then on, or from the start on an
    accelerator, the jitted one (compiled once per game and process, shared by all
    candidates). Both agree with OpenSpiel to 1e-12.
    """
    key = arrays.game_string
    if _accelerator() or _NUMPY_BR_SECONDS.get(key, 0.0) >= JIT_BEST_RESPONSE_AFTER:
        import jax

        with jax.enable_x64(True):
            return float(br.jax_nash_conv(arrays)(policies)) / arrays.num_players
    begin = time.perf_counter()
    value = br.exploitability(arrays, policies)
    _NUMPY_BR_SECONDS[key] = _NUMPY_BR_SECONDS.get(key, 0.0) + time.perf_counter() - begin
    return value


def _accelerator() -> bool:
    """Whether JAX is loaded and its default device is not the CPU."""
    import sys

    if "jax" not in sys.modules:
        return False
    import jax

    return jax.default_backend() != "cpu"


class NumpyEngine(CfrEngine):
    """The CFR loop in NumPy, one Python step per iteration and player."""

    backend = "numpy"

    def __init__(self, rules: Mapping[str, Callable], arrays: GameArrays):
        _check_rules(rules)
        self.rules, self.arrays = rules, arrays
        self.tables = cfr_tables(arrays)

    def start(self) -> CfrState:
        return _initial(self.rules, self.arrays)

    def advance(self, s: CfrState, stop: int) -> CfrState:
        for it in range(s.iteration + 1, stop + 1):
            for p in range(self.arrays.num_players):
                s, kind = _update_player(np, self.arrays, self.rules, self.tables, s, p, float(it))
                if kind:
                    _raise_violation(int(kind), it, p)
            s = dataclasses.replace(s, iteration=it)
        return s


class JaxEngine(CfrEngine):
    """The CFR loop compiled with JAX (float64).

    One segment function, ``lax.while_loop`` from the carried iteration count to a
    ``stop`` argument, is traced and compiled once, and advances a run between any two
    checkpoints. Violations are recorded as flags in the carry (first iteration, kind,
    player) and the loop stops there; ``advance`` raises after the segment.
    """

    backend = "jax"

    def __init__(self, rules: Mapping[str, Callable], arrays: GameArrays):
        import jax
        import jax.numpy as jnp

        _check_rules(rules)
        self.rules, self.arrays = rules, arrays
        begin = time.perf_counter()
        with jax.enable_x64(True):
            # Built in NumPy and transferred: eager jax.numpy calls would each compile.
            self.tables = _device_tables(arrays)
            try:
                start = _initial(rules, arrays, np)
            except InvalidCandidate:
                raise
            except Exception:  # noqa: BLE001 - init_state may need jax.numpy itself
                start = _initial(rules, arrays, jnp)
            self._start = CfrState(0, *jax.device_put(
                (start.sigma, start.edge_prob, start.cum_regret, start.cum_policy, start.state)))
            self._segment = jax.jit(self._segment_fn).lower(
                self.tables, self._carry(self._start), np.int64(1)).compile(COMPILER_OPTIONS)
        self.compile_time = time.perf_counter() - begin

    @staticmethod
    def _carry(s: CfrState) -> dict:
        return {"t": np.int64(s.iteration), "sigma": s.sigma, "edge_prob": s.edge_prob,
                "cum_regret": s.cum_regret, "cum_policy": s.cum_policy, "state": s.state,
                "error": np.zeros(3, dtype=np.int64)}

    def _segment_fn(self, tables, carry, stop):
        import jax.numpy as jnp
        from jax import lax

        def iteration(c):
            t = c["t"] + 1
            s = CfrState(0, c["sigma"], c["edge_prob"], c["cum_regret"], c["cum_policy"],
                         c["state"])
            error = c["error"]
            for p in range(self.arrays.num_players):
                s, kind = _update_player(jnp, self.arrays, self.rules, tables, s, p,
                                         t.astype(jnp.float64))
                found = jnp.stack([t, kind.astype(jnp.int64), jnp.asarray(p, jnp.int64)])
                error = jnp.where((error[0] == 0) & (kind > 0), found, error)
            return {"t": t, "sigma": s.sigma, "edge_prob": s.edge_prob,
                    "cum_regret": s.cum_regret, "cum_policy": s.cum_policy,
                    "state": s.state, "error": error}

        return lax.while_loop(lambda c: (c["t"] < stop) & (c["error"][0] == 0),
                              iteration, carry)

    def start(self) -> CfrState:
        return self._start

    def advance(self, s: CfrState, stop: int) -> CfrState:
        import jax

        if stop <= s.iteration:
            return s
        with jax.enable_x64(True):
            c = self._segment(self.tables, self._carry(s), np.int64(stop))
            error = np.asarray(c["error"])
        if error[0]:
            _raise_violation(int(error[1]), int(error[0]), int(error[2]))
        return CfrState(stop, tuple(c["sigma"]), c["edge_prob"], tuple(c["cum_regret"]),
                        tuple(c["cum_policy"]), tuple(c["state"]))


@lru_cache(maxsize=8)
def _device_tables(arrays: GameArrays):
    """``cfr_tables`` on JAX's default device, once per game and process (call with
    float64 enabled)."""
    import jax

    return jax.device_put(cfr_tables(arrays))


# Where compiling pays. Measured on a 2-core CPU (benchmarks/cfr_backend_choice.py): NumPy
# costs ≈ 4.5e-8 s per node-iteration; JAX ≈ 2e-8 s plus 0.7–1.5 s of compilation per
# candidate and game. They break even near 6e7 node-iterations: 1000 iterations of every
# train game run faster in NumPy, 6-sided Liar's Dice twice as fast in JAX.
JAX_BREAK_EVEN_NODE_ITERATIONS = 6e7


def _accelerator_present() -> bool:
    try:
        import jax
        return jax.default_backend() != "cpu"
    except Exception:  # noqa: BLE001 - no usable JAX means: no accelerator
        return False


def preferred_backend(arrays: GameArrays, iterations: int | None) -> str:
    """"jax" on a GPU/TPU, or on the CPU where the run is long enough for compiling to
    pay (see ``JAX_BREAK_EVEN_NODE_ITERATIONS``); "numpy" otherwise."""
    if _accelerator_present():
        return "jax"
    if iterations is None:
        return "jax"
    return "jax" if arrays.num_nodes * iterations >= JAX_BREAK_EVEN_NODE_ITERATIONS else "numpy"


def compile_cfr(rules: Mapping[str, Callable], game: str | GameArrays,
                backend: str = "auto", iterations: int | None = None) -> CfrEngine:
    """An engine running ``rules`` on ``game``.

    Args:
      rules: the candidate's four functions by name (``RULE_NAMES``).
      game: a game string or its arrays.
      backend: "jax", "numpy", or "auto": the faster of the two for ``iterations``
        (``preferred_backend``), and NumPy whenever JAX cannot trace or compile the
        candidate. Without ``iterations`` "auto" prefers JAX.
      iterations: how many iterations the engine will run, for "auto"'s choice.

    Raises:
      InvalidCandidate: a structural violation (missing function, wrong shape) found
        while preparing the candidate.
    """
    if backend not in ("auto", "jax", "numpy"):
        raise ValueError(f"backend must be 'auto', 'jax' or 'numpy', got {backend!r}.")
    arrays = load_game_arrays(game) if isinstance(game, str) else game
    if backend == "numpy":
        return NumpyEngine(rules, arrays)
    if backend == "jax":
        return JaxEngine(rules, arrays)
    if preferred_backend(arrays, iterations) == "numpy":
        return NumpyEngine(rules, arrays)
    try:
        return JaxEngine(rules, arrays)
    except InvalidCandidate:
        raise
    except Exception:  # noqa: BLE001 - any tracing failure means: run it in NumPy
        return NumpyEngine(rules, arrays)


def run_cfr(rules: Mapping[str, Callable], game: str | GameArrays, iterations: int,
            checkpoints: Sequence[int] | None = None, backend: str = "auto") -> CfrRun:
    """Runs the candidate ``rules`` for ``iterations`` CFR iterations on ``game``.

    Args:
      rules: the candidate's four functions by name (as found in its module namespace).
      game: a game string or its arrays.
      iterations: number of iterations (>= 1).
      checkpoints: iterations at which to measure the average policy's exploitability
        (default ``log_checkpoints(iterations)``); ``iterations`` is always added.
      backend: "auto", "jax" or "numpy" (see ``compile_cfr``).

    Raises:
      InvalidCandidate: the candidate broke the contract (the message says how and when).
      Any exception the candidate itself raises propagates unchanged.
    """
    begin = time.perf_counter()
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    iterations = int(iterations)
    points = log_checkpoints(iterations) if checkpoints is None else list(checkpoints)
    if any(int(c) != c or not 1 <= c <= iterations for c in points):
        raise ValueError(f"checkpoints must be integers in 1..{iterations}, got {points}.")
    points = sorted(set(int(c) for c in points) | {iterations})

    engine = compile_cfr(rules, game, backend, iterations=iterations)
    s = engine.start()
    curve = []
    for stop in points:
        s = engine.advance(s, stop)
        curve.append((stop, engine.exploitability(s)))
    return CfrRun(game=engine.arrays.game_string, iterations=iterations, curve=curve,
                  backend=engine.backend, average_policy=engine.average_policy(s),
                  wall_time=time.perf_counter() - begin)
