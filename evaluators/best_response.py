"""Exact best responses and NashConv over game arrays, for any number of players.

NashConv (Lanctot et al., "A Unified Game-Theoretic Approach to Multiagent Reinforcement
Learning", NeurIPS 2017) is ``sum_p (max_{b} u_p(b, pi_{-p}) - u_p(pi))``; exploitability
is NashConv divided by the number of players. Computing best responses level by level
rather than state by state follows the spirit of Johanson et al., "Accelerating Best
Response Calculation in Large Extensive Games" (IJCAI 2011). This module computes it as OpenSpiel's
``open_spiel.python.algorithms.exploitability.nash_conv`` does, but as array passes:

1. Edge probabilities under the policies; one top-down pass gives, for every node, the
   reach probability contributed by each player and by chance.
2. On-policy values of all players: one bottom-up pass (expectation at every node).
3. Best response of player p: one bottom-up pass over the game's level schedule
   (``games.LevelSchedule``). At p's information sets the action value is the
   counterfactual sum ``Q(I, a) = sum_{h in I} pi_{-p}(h) v(ha)``; the best action
   (the first maximiser) is played at every node of I. Other nodes take expectations.

The passes are written once against an array module ``xp`` (NumPy, or ``jax.numpy`` under
``jit``); ``nash_conv`` and friends run them in NumPy, ``jax_nash_conv`` returns a jitted
version compiled once per game and process.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from evaluators.games import GameArrays, check_policies, load_game_arrays

# ---------------------------------------------------------------------------------------
# Array-module helpers shared with evaluators.cfr


def is_numpy(xp) -> bool:
    return xp is np


def take(xp, x, index):
    """``x[index]`` along axis 0; indices are always in bounds (dummies are appended)."""
    if is_numpy(xp):
        return x[index]
    return x.at[index].get(mode="promise_in_bounds")


def append(xp, x, value: float):
    """``x`` with one trailing row of ``value`` (the dummy slot)."""
    pad = xp.full((1,) + tuple(x.shape[1:]), value, dtype=x.dtype)
    return xp.concatenate([x, pad], axis=0)


def set_block(xp, x, start: int, value):
    """``x`` with rows ``start:start+len(value)`` replaced (in place for NumPy)."""
    if is_numpy(xp):
        x[start:start + value.shape[0]] = value
        return x
    return x.at[start:start + value.shape[0]].set(value)


# ---------------------------------------------------------------------------------------
# Tables: the arrays the passes read, as one pytree (so jit takes them as arguments)


def parent_local(arrays: GameArrays) -> tuple[np.ndarray, ...]:
    """Per depth d = 1, 2, ..., the parent of each node as an index into depth d-1
    (non-decreasing, since a node's children are contiguous)."""
    off = arrays.depth_offsets
    return tuple(arrays.parent[off[d]:off[d + 1]] - off[d - 1]
                 for d in range(1, arrays.num_depths))


def tables(arrays: GameArrays) -> dict[str, Any]:
    """The arrays the best-response passes read, as a pytree of NumPy arrays."""
    s = arrays.schedule
    return {
        "edge_index": arrays.edge_index,
        "chance_prob": arrays.chance_prob,
        "edge_owner": arrays.edge_owner,
        "parent_local": parent_local(arrays),
        "order": s.order,
        "utility": arrays.utility[s.order],
        "children": s.children,
        "rows": s.rows,
        "infosets": s.infosets,
        "slot": s.slot,
        "legal": arrays.legal,
    }


def edge_probs(xp, t, policies):
    """[N] probability of the edge into each node under ``policies``."""
    flat = xp.concatenate([xp.reshape(pi, (-1,)) for pi in policies] + [t["chance_prob"]])
    return take(xp, flat, t["edge_index"])


def reach_factors(xp, arrays: GameArrays, t, ep):
    """[N, P+1] reach probability of every node contributed by each player (column p) and
    by chance (column P): one top-down pass over depths."""
    num_players = arrays.num_players
    owner = xp.where(t["edge_owner"] >= 0, t["edge_owner"], num_players)
    columns = xp.arange(num_players + 1)
    factor = xp.where(owner[:, None] == columns[None, :], ep[:, None], 1.0)
    off = [int(o) for o in arrays.depth_offsets]
    blocks = [factor[0:1]]
    for d in range(1, arrays.num_depths):
        blocks.append(take(xp, blocks[-1], t["parent_local"][d - 1]) * factor[off[d]:off[d + 1]])
    return xp.concatenate(blocks, axis=0)


def _others(xp, reach, player: int):
    """[N] reach of every node by all but ``player`` (chance included)."""
    cols = [q for q in range(reach.shape[1]) if q != player]
    out = reach[:, cols[0]]
    for q in cols[1:]:
        out = out * reach[:, q]
    return out


def _level_slices(arrays: GameArrays):
    off = [int(o) for o in arrays.schedule.offsets]
    return [(lv, off[lv], off[lv + 1]) for lv in range(len(off) - 1)]


def on_policy_pass(xp, arrays: GameArrays, t, ep):
    """[P] expected utility of every player under the policies behind ``ep``."""
    n = arrays.num_nodes
    w = append(xp, take(xp, ep, t["order"]), 0.0)
    vals = xp.zeros((n + 1, arrays.num_players))
    for lv, a, b in _level_slices(arrays):
        c = t["children"][lv]
        v = xp.sum(take(xp, w, c)[:, :, None] * take(xp, vals, c), axis=1) + t["utility"][a:b]
        vals = set_block(xp, vals, a, v)
    return vals[n - 1]  # the root is alone on the top level


def best_response_pass(xp, arrays: GameArrays, t, ep, reach, player: int, tie_tol=None):
    """Best response of ``player`` against the others' policies behind ``ep``.

    Returns ``(value, choice)``: the player's best-response value and, per level, the
    chosen action of each of its information sets there (or, if ``tie_tol`` is given, a
    [J, A] uniform distribution over the actions within ``tie_tol`` of the best).
    """
    n, num_actions = arrays.num_nodes, arrays.num_actions
    order = t["order"]
    w = append(xp, take(xp, ep, order), 0.0)
    cf = take(xp, _others(xp, reach, player), order)
    vals = xp.zeros(n + 1)
    choices = []
    for lv, a, b in _level_slices(arrays):
        c = t["children"][lv]
        cv = take(xp, vals, c)                                   # [n_l, W]
        v = xp.sum(take(xp, w, c) * cv, axis=1) + t["utility"][a:b, player]
        rows = t["rows"][lv][player]
        if rows.shape[0]:
            q_nodes = append(xp, cf[a:b, None] * cv[:, :num_actions], 0.0)
            q = xp.sum(take(xp, q_nodes, rows), axis=1)         # [J, A]
            legal = take(xp, t["legal"][player], t["infosets"][lv][player]) > 0
            q = xp.where(legal, q, -xp.inf)
            best = xp.argmax(q, axis=1)
            slot = t["slot"][lv][player]
            node_best = take(xp, append(xp, best, 0), slot)
            chosen = xp.take_along_axis(cv, node_best[:, None], axis=1)[:, 0]
            v = xp.where(slot < rows.shape[0], chosen, v)
            if tie_tol is None:
                choices.append(best)
            else:
                top = xp.max(q, axis=1, keepdims=True)
                tied = (q >= top - tie_tol * (1.0 + xp.abs(top))) & legal
                choices.append(tied / xp.sum(tied, axis=1, keepdims=True))
        else:
            choices.append(None)
        vals = set_block(xp, vals, a, v)
    return vals[n - 1], choices


# ---------------------------------------------------------------------------------------
# Public API (NumPy)


@dataclasses.dataclass(frozen=True)
class NashConvResult:
    """NashConv and its parts.

    Attributes:
      nash_conv: sum over players of (best-response value - on-policy value).
      exploitability: nash_conv / num_players.
      best_response_values: [P] each player's best-response value against the others.
      on_policy_values: [P] each player's expected utility under the policies.
    """

    nash_conv: float
    exploitability: float
    best_response_values: np.ndarray
    on_policy_values: np.ndarray


def _as_arrays(game: GameArrays | str) -> GameArrays:
    return load_game_arrays(game) if isinstance(game, str) else game


@lru_cache(maxsize=16)
def _numpy_tables(arrays: GameArrays):
    return tables(arrays)


def evaluate(game: GameArrays | str, policies: Sequence[np.ndarray]) -> NashConvResult:
    """NashConv, exploitability, best-response and on-policy values of ``policies``.

    Args:
      game: game arrays or a game string.
      policies: per player [I_p, A] action probabilities (rows over legal actions).
    """
    arrays = _as_arrays(game)
    policies = check_policies(arrays, policies)
    t = _numpy_tables(arrays)
    ep = edge_probs(np, t, policies)
    reach = reach_factors(np, arrays, t, ep)
    br = np.array([best_response_pass(np, arrays, t, ep, reach, p)[0]
                   for p in range(arrays.num_players)])
    on = np.asarray(on_policy_pass(np, arrays, t, ep))
    nc = float(np.sum(br - on))
    return NashConvResult(nash_conv=nc, exploitability=nc / arrays.num_players,
                          best_response_values=br, on_policy_values=on)


def nash_conv(game: GameArrays | str, policies: Sequence[np.ndarray]) -> float:
    """Sum over players of how much each gains by best-responding to the others."""
    return evaluate(game, policies).nash_conv


def exploitability(game: GameArrays | str, policies: Sequence[np.ndarray]) -> float:
    """NashConv divided by the number of players."""
    return evaluate(game, policies).exploitability


def best_response_values(game: GameArrays | str, policies: Sequence[np.ndarray]) -> np.ndarray:
    """[P] each player's best-response value against the others' ``policies``."""
    return evaluate(game, policies).best_response_values


def on_policy_values(game: GameArrays | str, policies: Sequence[np.ndarray]) -> np.ndarray:
    """[P] each player's expected utility when everyone plays ``policies``."""
    arrays = _as_arrays(game)
    policies = check_policies(arrays, policies)
    t = _numpy_tables(arrays)
    return np.asarray(on_policy_pass(np, arrays, t, edge_probs(np, t, policies)))


def best_response_policy(game: GameArrays | str, policies: Sequence[np.ndarray],
                         player: int, tie_tol: float = 1e-12) -> np.ndarray:
    """A best response of ``player`` to the others' ``policies``, as [I_p, A].

    At each information set it is uniform over the actions whose counterfactual value is
    within ``tie_tol * (1 + |best|)`` of the best (so exact ties, including information
    sets the others never reach, are split evenly). Its value equals the best-response
    value. ``policies[player]`` is ignored.
    """
    arrays = _as_arrays(game)
    if not 0 <= player < arrays.num_players:
        raise ValueError(f"Player {player} is not in 0..{arrays.num_players - 1}.")
    policies = check_policies(arrays, policies)
    t = _numpy_tables(arrays)
    ep = edge_probs(np, t, policies)
    reach = reach_factors(np, arrays, t, ep)
    _, choices = best_response_pass(np, arrays, t, ep, reach, player, tie_tol=tie_tol)
    out = np.zeros_like(arrays.legal[player])
    for lv, rows in enumerate(choices):
        if rows is not None:
            out[arrays.schedule.infosets[lv][player]] = rows
    return out


# ---------------------------------------------------------------------------------------
# JAX (used by the CFR engine at checkpoints)


@lru_cache(maxsize=16)
def jax_nash_conv(arrays: GameArrays):
    """``f(policies) -> nash_conv`` (a float64 JAX scalar) jitted for this game: traced
    and compiled on the first call, once per game and process. ``policies`` are
    per-player [I_p, A] arrays."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        t = jax.device_put(tables(arrays))

        @jax.jit
        def run(t, policies):
            ep = edge_probs(jnp, t, policies)
            reach = reach_factors(jnp, arrays, t, ep)
            br = jnp.stack([best_response_pass(jnp, arrays, t, ep, reach, p)[0]
                            for p in range(arrays.num_players)])
            return jnp.sum(br - on_policy_pass(jnp, arrays, t, ep))

    def f(policies):
        with jax.enable_x64(True):
            return run(t, [jnp.asarray(p, dtype=jnp.float64) for p in policies])

    return f
