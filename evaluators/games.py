"""OpenSpiel games as flat NumPy arrays, so that tree passes become gathers.

An OpenSpiel game is walked once, breadth first, into a node list ordered by depth; every
quantity a tabular solver needs (acting player, information set, chance probabilities,
legal actions, terminal utilities, child indices) becomes an array. CFR passes
(``evaluators.cfr``) and best responses (``evaluators.best_response``) are then fixed
sequences of gathers and reductions over these arrays, with no Python per node.

Conventions (``N`` nodes, ``P`` players, ``A`` = ``game.num_distinct_actions()``):

1. Nodes are numbered in breadth-first order, so depth ``d`` is the contiguous block
   ``depth_offsets[d]:depth_offsets[d+1]`` and the children of a node are contiguous, in
   the order of its legal actions (chance outcomes). Node 0 is the root.
2. ``player[n]`` is the acting player, ``CHANCE`` (-1) or ``TERMINAL`` (-4), as in pyspiel.
3. Information sets are numbered per player, ``0..I_p-1``, in order of first visit.
   ``infoset_keys[p][i]`` is the string OpenSpiel's ``policy.TabularPolicy`` uses for it
   (``information_state_string`` where the game provides one, else
   ``observation_string``), so policies convert exactly (``to_tabular_policy``,
   ``from_tabular_policy``). OpenSpiel's C++ CFR solvers key by the same string.
4. Every non-root node ``n`` is the head of exactly one edge, the one from ``parent[n]``;
   edge quantities (the action, the chance probability, the policy entry that weights the
   edge) are stored at the child.
5. A slot of a dummy index (``N`` for global node indices, the block length for local
   ones) points at an appended neutral element (0 for values, 1 for probabilities).

Simultaneous-move games are made sequential with ``turn_based_simultaneous_game``.
Arrays are cached on disk (``$DISCOVER_CACHE/games`` or ``runs/cache/games``), keyed by the
canonical game string, the OpenSpiel version and this module's format version, and in
memory per process.

Why one file: one data structure, the game arrays, with the walk that builds them and their
cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pyspiel

CHANCE = int(pyspiel.PlayerId.CHANCE)      # -1
TERMINAL = int(pyspiel.PlayerId.TERMINAL)  # -4

# Bump when the arrays or their meaning change: old cache files are then ignored.
FORMAT_VERSION = 2


@dataclasses.dataclass(frozen=True, eq=False)
class LevelSchedule:
    """A bottom-up processing order in which every information set is decided at once.

    A best response must choose one action for all nodes of an information set together,
    and those nodes can sit at different depths. Levels fix this: terminals are level 0,
    and a decision or chance node's level is one more than the highest level among its
    children, maximised over all nodes of its information set (so they share a level).
    Every child then lies at a strictly lower level than its parent, and processing levels
    0, 1, 2, ... sees every information set with all of its children's values ready.

    Positions below are indices into ``order`` (position ``N`` is a dummy).

    Attributes:
      order: [N] node ids sorted by level.
      offsets: [L+1] level ``l`` is positions ``offsets[l]:offsets[l+1]``.
      children: per level, [n_l, W_l] child positions (dummy ``N``); decision rows are
        indexed by action id, chance rows by outcome order.
      rows: per level, per player, [J, K] local rows (within the level) of the members of
        each of the player's information sets at that level (dummy ``n_l``).
      infosets: per level, per player, [J] the ids of those information sets.
      slot: per level, per player, [n_l] for each of the player's nodes at that level the
        index of its information set in ``infosets`` (dummy ``J`` elsewhere).
    """

    order: np.ndarray
    offsets: np.ndarray
    children: tuple[np.ndarray, ...]
    rows: tuple[tuple[np.ndarray, ...], ...]
    infosets: tuple[tuple[np.ndarray, ...], ...]
    slot: tuple[tuple[np.ndarray, ...], ...]

    @property
    def num_levels(self) -> int:
        return len(self.offsets) - 1


@dataclasses.dataclass(frozen=True, eq=False)
class GameArrays:
    """One game tree as arrays (see the module docstring for conventions).

    Attributes:
      game_string: the canonical game string (``canonical_game_string``); ``load_game``
        or ``pyspiel.load_game`` loads the sequential game from it.
      num_players: P.
      num_actions: A, the width of every policy array.
      depth_offsets: [D+1] depth ``d`` is nodes ``depth_offsets[d]:depth_offsets[d+1]``.
      parent: [N] parent node (-1 at the root).
      action: [N] action (or chance outcome) on the edge from the parent (-1 at the root).
      player: [N] acting player, ``CHANCE`` or ``TERMINAL``.
      infoset: [N] the acting player's information set index (-1 if not a decision node).
      chance_prob: [N] probability of the chance edge into the node (1 where the parent is
        not a chance node, and at the root).
      utility: [N, P] returns at terminals, 0 elsewhere.
      children: per depth ``d``, [n_d, W_d] local indices (into depth ``d+1``) of each
        node's children; decision rows by action id, chance rows by outcome order; dummy
        ``n_{d+1}``.
      edge_owner: [N] player who chose the edge into the node (``CHANCE`` for chance edges
        and the root).
      edge_index: [N] where the edge's probability sits in the flat vector
        ``concat([pi_0.ravel(), ..., pi_{P-1}.ravel(), chance_prob])`` (see
        ``best_response.edge_probs``).
      infoset_keys: per player, the OpenSpiel key of each information set.
      legal: per player, [I_p, A] float 0/1 legal-action mask.
      player_nodes: per player, [M_p] the player's decision nodes (ascending).
      infoset_members: per player, [I_p, K_p] rows of ``player_nodes`` in each
        information set (dummy ``M_p``).
      infoset_paths: per player, [I_p, L_p] the nodes on the path from the root to the
        first node of each information set (depth 1 first, the node itself last; dummy
        ``N``): the product of their edge probabilities is the node's reach, and the
        product over the player's own edges is the player's reach of the information
        set (the same at all its nodes, by perfect recall).
      schedule: the level schedule for best responses.
    """

    game_string: str
    num_players: int
    num_actions: int
    depth_offsets: np.ndarray
    parent: np.ndarray
    action: np.ndarray
    player: np.ndarray
    infoset: np.ndarray
    chance_prob: np.ndarray
    utility: np.ndarray
    children: tuple[np.ndarray, ...]
    edge_owner: np.ndarray
    edge_index: np.ndarray
    infoset_keys: tuple[tuple[str, ...], ...]
    legal: tuple[np.ndarray, ...]
    player_nodes: tuple[np.ndarray, ...]
    infoset_members: tuple[np.ndarray, ...]
    infoset_paths: tuple[np.ndarray, ...]
    schedule: LevelSchedule

    @property
    def num_nodes(self) -> int:
        return int(self.parent.shape[0])

    @property
    def num_depths(self) -> int:
        return len(self.depth_offsets) - 1

    @property
    def num_infosets(self) -> tuple[int, ...]:
        return tuple(m.shape[0] for m in self.legal)

    def __repr__(self) -> str:
        return (f"GameArrays({self.game_string!r}, nodes={self.num_nodes}, "
                f"infosets={self.num_infosets}, actions={self.num_actions})")


# ---------------------------------------------------------------------------------------
# Loading OpenSpiel games


def load_game(game_string: str) -> pyspiel.Game:
    """The sequential OpenSpiel game for ``game_string``: simultaneous-move games are
    wrapped with ``turn_based_simultaneous_game``."""
    if not isinstance(game_string, str) or not game_string.strip():
        raise ValueError(f"A game string is required, got {game_string!r}.")
    game = pyspiel.load_game(game_string)
    if game.get_type().dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
        game = pyspiel.load_game_as_turn_based(game_string)
    if game.get_type().dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise ValueError(f"Game {game_string!r} is neither sequential nor simultaneous.")
    return game


def _spelled_out(game: pyspiel.Game) -> str:
    params = dict(game.get_parameters())
    params["name"] = game.get_type().short_name
    return pyspiel.game_parameters_to_string(params)


def canonical_game_string(game_string: str) -> str:
    """The sequential game's string with every parameter spelled out (defaults included,
    sorted), so equal games share one cache entry: ``"liars_dice"`` and
    ``"liars_dice(numdice=1,dice_sides=6)"`` both give
    ``"liars_dice(bidding_rule=reset-face,dice_sides=6,numdice=1,players=2)"``."""
    game = load_game(game_string)
    canonical = _spelled_out(game)
    try:
        pyspiel.load_game(canonical)
    except Exception:  # noqa: BLE001 - a game whose defaults cannot be passed back in
        return str(game)
    return canonical


def infoset_key_kind(game: pyspiel.Game) -> str:
    """The state string OpenSpiel's ``policy.TabularPolicy`` keys this game by."""
    game_type = game.get_type()
    if game_type.provides_information_state_string:
        return "information_state"
    if game_type.provides_observation_string:
        return "observation"
    raise ValueError(f"Game {str(game)!r} provides neither information-state nor "
                     "observation strings, so policies cannot be keyed.")


# ---------------------------------------------------------------------------------------
# The walk


def _walk(game: pyspiel.Game) -> dict:
    """Breadth-first walk; returns per-node lists and per-player infoset data."""
    num_players = game.num_players()
    num_actions = game.num_distinct_actions()
    by_observation = infoset_key_kind(game) == "observation"

    parent: list[int] = []
    action: list[int] = []
    player: list[int] = []
    infoset: list[int] = []
    chance_prob: list[float] = []
    terminal_nodes: list[int] = []
    terminal_returns: list[list[float]] = []
    num_children: list[int] = []
    depth_offsets = [0]
    key_index: list[dict[str, int]] = [{} for _ in range(num_players)]
    legal_rows: list[list[list[int]]] = [[] for _ in range(num_players)]

    # Each entry: (state, parent id, action, chance probability of the edge).
    level = [(game.new_initial_state(), -1, -1, 1.0)]
    while level:
        next_level = []
        for state, par, act, prob in level:
            node = len(parent)
            parent.append(par)
            action.append(act)
            chance_prob.append(prob)
            current = state.current_player()
            if current == TERMINAL:
                player.append(TERMINAL)
                infoset.append(-1)
                num_children.append(0)
                terminal_nodes.append(node)
                terminal_returns.append(state.returns())
            elif current == CHANCE:
                player.append(CHANCE)
                infoset.append(-1)
                outcomes = state.chance_outcomes()
                num_children.append(len(outcomes))
                for a, p in outcomes:
                    next_level.append((state.child(a), node, a, p))
            elif current >= 0:
                player.append(current)
                key = (state.observation_string(current) if by_observation
                       else state.information_state_string(current))
                legal = state.legal_actions(current)
                index = key_index[current].setdefault(key, len(key_index[current]))
                if index == len(legal_rows[current]):
                    legal_rows[current].append(legal)
                elif legal_rows[current][index] != legal:
                    raise ValueError(f"Information set {key!r} of {str(game)!r} has nodes "
                                     "with different legal actions.")
                infoset.append(index)
                num_children.append(len(legal))
                for a in legal:
                    next_level.append((state.child(a), node, a, 1.0))
            else:
                raise ValueError(f"Game {str(game)!r} has a node of player {current}; "
                                 "only sequential games are supported.")
        depth_offsets.append(len(parent))
        level = next_level

    n = len(parent)
    utility = np.zeros((n, num_players))
    if terminal_nodes:
        utility[np.asarray(terminal_nodes)] = np.asarray(terminal_returns, dtype=np.float64)
    legal = []
    for p in range(num_players):
        mask = np.zeros((len(legal_rows[p]), num_actions))
        for i, row in enumerate(legal_rows[p]):
            mask[i, row] = 1.0
        legal.append(mask)
    keys = tuple(tuple(k for k in key_index[p]) for p in range(num_players))  # dicts keep order
    return dict(
        num_players=num_players, num_actions=num_actions,
        depth_offsets=np.asarray(depth_offsets, dtype=np.int64),
        parent=np.asarray(parent, dtype=np.int64), action=np.asarray(action, dtype=np.int64),
        player=np.asarray(player, dtype=np.int64), infoset=np.asarray(infoset, dtype=np.int64),
        chance_prob=np.asarray(chance_prob, dtype=np.float64), utility=utility,
        num_children=np.asarray(num_children, dtype=np.int64),
        infoset_keys=keys, legal=tuple(legal))


# ---------------------------------------------------------------------------------------
# Derived tables


def _group_table(groups: np.ndarray, num_groups: int | None = None):
    """Members of each group as a padded table.

    Args:
      groups: [m] group id of each item.
      num_groups: if given, the table has exactly this many rows (ids 0..num_groups-1);
        otherwise one row per distinct id, in ascending order.

    Returns:
      (ids [J], table [J, K] item indices in ascending order with dummy ``m``,
       row [m] the table row of each item).
    """
    m = groups.shape[0]
    if num_groups is None:
        ids, row = np.unique(groups, return_inverse=True)
    else:
        ids, row = np.arange(num_groups), groups
    num = ids.shape[0]
    counts = np.bincount(row, minlength=num) if m else np.zeros(num, dtype=np.int64)
    width = max(1, int(counts.max()) if num else 1)
    order = np.argsort(row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if num else np.zeros(0, np.int64)
    rank = np.arange(m) - starts[row[order]]
    table = np.full((num, width), m, dtype=np.int64)
    table[row[order], rank] = order
    return ids, table, row.astype(np.int64)


def _global_children(parent, action, player, width) -> np.ndarray:
    """[N, width] global child ids (dummy N): decision rows by action id, chance rows by
    outcome order."""
    n = parent.shape[0]
    table = np.full((n, width), n, dtype=np.int64)
    child = np.arange(1, n)
    par = parent[1:]
    # Children of a node are contiguous in BFS order, so a chance outcome's slot is its
    # offset from the first child.
    first = np.full(n, n, dtype=np.int64)
    np.minimum.at(first, par, child)
    slot = np.where(player[par] >= 0, action[child], child - first[par])
    table[par, slot] = child
    return table


def _levels(depth_offsets, player, infoset, child_table, num_players) -> np.ndarray:
    """The level of every node (see ``LevelSchedule``), by fixpoint iteration."""
    n = player.shape[0]
    level = np.zeros(n + 1, dtype=np.int64)
    level[n] = -1  # dummy child: a node without children gets level 0
    decision = [np.flatnonzero(player == p) for p in range(num_players)]
    num_depths = len(depth_offsets) - 1
    for _ in range(2 * num_depths + 8):
        before = level.copy()
        for d in reversed(range(num_depths)):
            a, b = depth_offsets[d], depth_offsets[d + 1]
            level[a:b] = np.maximum(level[a:b], level[child_table[a:b]].max(axis=1) + 1)
        for p in range(num_players):
            nodes = decision[p]
            if nodes.size:
                top = np.zeros(int(infoset[nodes].max()) + 1, dtype=np.int64)
                np.maximum.at(top, infoset[nodes], level[nodes])
                level[nodes] = top[infoset[nodes]]
        if np.array_equal(before, level):
            return level[:n]
    raise ValueError("Information sets do not admit a bottom-up order (imperfect recall?).")


def _schedule(depth_offsets, player, infoset, child_table, num_players,
              num_actions) -> LevelSchedule:
    n = player.shape[0]
    level = _levels(depth_offsets, player, infoset, child_table, num_players)
    order = np.argsort(level, kind="stable")
    position = np.empty(n + 1, dtype=np.int64)
    position[order] = np.arange(n)
    position[n] = n
    num_levels = int(level.max()) + 1
    offsets = np.searchsorted(level[order], np.arange(num_levels + 1)).astype(np.int64)
    children, rows, infosets, slot = [], [], [], []
    for lv in range(num_levels):
        nodes = order[offsets[lv]:offsets[lv + 1]]
        table = child_table[nodes]
        used = np.flatnonzero((table < n).any(axis=0))
        width = int(used.max()) + 1 if used.size else 1
        if (player[nodes] >= 0).any():
            width = max(width, num_actions)
        children.append(position[table[:, :width]])
        rows_l, inf_l, slot_l = [], [], []
        for p in range(num_players):
            local = np.flatnonzero(player[nodes] == p)
            ids, tab, row = _group_table(infoset[nodes[local]])
            members = np.where(tab < local.size, local[np.minimum(tab, max(local.size - 1, 0))],
                               nodes.size) if local.size else np.zeros((0, 1), np.int64)
            node_slot = np.full(nodes.size, ids.size, dtype=np.int64)
            node_slot[local] = row
            rows_l.append(members.astype(np.int64))
            inf_l.append(ids.astype(np.int64))
            slot_l.append(node_slot)
        rows.append(tuple(rows_l))
        infosets.append(tuple(inf_l))
        slot.append(tuple(slot_l))
    return LevelSchedule(order=order.astype(np.int64), offsets=offsets,
                         children=tuple(children), rows=tuple(rows),
                         infosets=tuple(infosets), slot=tuple(slot))


def _compact(x: np.ndarray) -> np.ndarray:
    """Index arrays as int32 (games here have far fewer than 2**31 nodes)."""
    return x.astype(np.int32) if x.dtype == np.int64 else x


def _build(game: pyspiel.Game, game_string: str) -> GameArrays:
    raw = _walk(game)
    parent, player, infoset = raw["parent"], raw["player"], raw["infoset"]
    num_players, num_actions = raw["num_players"], raw["num_actions"]
    depth_offsets = raw["depth_offsets"]
    n = parent.shape[0]
    width = max(num_actions, int(raw["num_children"].max()))
    child_table = _global_children(parent, raw["action"], player, width)

    # Per-depth local child tables, trimmed to the slots used at that depth.
    children = []
    for d in range(len(depth_offsets) - 1):
        a, b = depth_offsets[d], depth_offsets[d + 1]
        table = child_table[a:b]
        used = np.flatnonzero((table < n).any(axis=0))
        w = int(used.max()) + 1 if used.size else 1
        c = int(depth_offsets[d + 2]) if d + 2 < len(depth_offsets) else b
        local = np.where(table[:, :w] < n, table[:, :w] - b, c - b)
        children.append(local.astype(np.int64))

    # Edge bookkeeping: who chose the edge into each node, and where its probability sits.
    edge_owner = np.full(n, CHANCE, dtype=np.int64)
    edge_owner[1:] = np.where(player[parent[1:]] >= 0, player[parent[1:]], CHANCE)
    sizes = [m.shape[0] * num_actions for m in raw["legal"]]
    sigma_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    edge_index = sigma_offset[-1] + np.arange(n, dtype=np.int64)
    decided = np.flatnonzero(edge_owner >= 0)
    edge_index[decided] = (sigma_offset[edge_owner[decided]]
                           + infoset[parent[decided]] * num_actions + raw["action"][decided])

    depth = np.repeat(np.arange(len(depth_offsets) - 1), np.diff(depth_offsets))
    player_nodes, members, paths = [], [], []
    for p in range(num_players):
        nodes = np.flatnonzero(player == p).astype(np.int64)
        player_nodes.append(nodes)
        _, table, _ = _group_table(infoset[nodes], raw["legal"][p].shape[0])
        members.append(table)
        # The root path of each information set's first node.
        first = nodes[table[:, 0]]
        length = max(1, int(depth[first].max()) if first.size else 1)
        path = np.full((first.size, length), n, dtype=np.int64)
        current = first.copy()
        for k in range(length):
            # Column depth-1 holds the node itself; walking up fills columns leftwards.
            col = depth[first] - 1 - k
            ok = col >= 0
            path[np.flatnonzero(ok), col[ok]] = current[ok]
            current = np.where(ok, parent[current], current)
        paths.append(path)

    schedule = _schedule(depth_offsets, player, infoset, child_table, num_players,
                         num_actions)
    c = _compact
    schedule = dataclasses.replace(
        schedule, order=c(schedule.order), children=tuple(map(c, schedule.children)),
        rows=tuple(tuple(map(c, r)) for r in schedule.rows),
        infosets=tuple(tuple(map(c, r)) for r in schedule.infosets),
        slot=tuple(tuple(map(c, r)) for r in schedule.slot))
    return GameArrays(
        game_string=game_string, num_players=num_players, num_actions=num_actions,
        depth_offsets=depth_offsets, parent=c(parent), action=c(raw["action"]),
        player=c(player), infoset=c(infoset), chance_prob=raw["chance_prob"],
        utility=raw["utility"], children=tuple(map(c, children)), edge_owner=c(edge_owner),
        edge_index=c(edge_index), infoset_keys=raw["infoset_keys"], legal=raw["legal"],
        player_nodes=tuple(map(c, player_nodes)), infoset_members=tuple(map(c, members)),
        infoset_paths=tuple(map(c, paths)),
        schedule=schedule)


# ---------------------------------------------------------------------------------------
# Disk cache


def cache_dir() -> Path:
    """``$DISCOVER_CACHE/games`` if set, else ``runs/cache/games`` (relative to the working
    directory)."""
    root = os.environ.get("DISCOVER_CACHE")
    return (Path(root) if root else Path("runs") / "cache") / "games"


def _cache_path(canonical: str) -> Path:
    tag = f"{FORMAT_VERSION}|{pyspiel.__version__}|{canonical}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9]+", "_", canonical)[:60].strip("_")
    return cache_dir() / f"{stem}-{digest}.npz"


def _to_npz(arrays: GameArrays) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    meta = {"game_string": arrays.game_string, "num_players": arrays.num_players,
            "num_actions": arrays.num_actions, "num_depths": arrays.num_depths,
            "num_levels": arrays.schedule.num_levels, "format": FORMAT_VERSION}
    out["meta"] = np.asarray(json.dumps(meta))
    for f in dataclasses.fields(GameArrays):
        value = getattr(arrays, f.name)
        if isinstance(value, np.ndarray):
            out[f.name] = value
        elif f.name == "infoset_keys":
            for p, keys in enumerate(value):
                out[f"infoset_keys/{p}"] = np.asarray(keys, dtype=str)
        elif f.name in ("children", "legal", "player_nodes", "infoset_members",
                        "infoset_paths"):
            for i, v in enumerate(value):
                out[f"{f.name}/{i}"] = v
    s = arrays.schedule
    out["schedule/order"] = s.order
    out["schedule/offsets"] = s.offsets
    for lv in range(s.num_levels):
        out[f"schedule/children/{lv}"] = s.children[lv]
        for p in range(arrays.num_players):
            out[f"schedule/rows/{lv}/{p}"] = s.rows[lv][p]
            out[f"schedule/infosets/{lv}/{p}"] = s.infosets[lv][p]
            out[f"schedule/slot/{lv}/{p}"] = s.slot[lv][p]
    return out


def _from_npz(data) -> GameArrays:
    meta = json.loads(str(data["meta"]))
    num_players, num_levels = meta["num_players"], meta["num_levels"]

    def per_player(name):
        return tuple(data[f"{name}/{p}"] for p in range(num_players))

    keys = tuple(tuple(str(k) for k in data[f"infoset_keys/{p}"]) for p in range(num_players))
    schedule = LevelSchedule(
        order=data["schedule/order"], offsets=data["schedule/offsets"],
        children=tuple(data[f"schedule/children/{lv}"] for lv in range(num_levels)),
        rows=tuple(per_player(f"schedule/rows/{lv}") for lv in range(num_levels)),
        infosets=tuple(per_player(f"schedule/infosets/{lv}") for lv in range(num_levels)),
        slot=tuple(per_player(f"schedule/slot/{lv}") for lv in range(num_levels)))
    return GameArrays(
        game_string=meta["game_string"], num_players=num_players,
        num_actions=meta["num_actions"], depth_offsets=data["depth_offsets"],
        parent=data["parent"], action=data["action"], player=data["player"],
        infoset=data["infoset"], chance_prob=data["chance_prob"], utility=data["utility"],
        children=tuple(data[f"children/{d}"] for d in range(meta["num_depths"])),
        edge_owner=data["edge_owner"], edge_index=data["edge_index"], infoset_keys=keys,
        legal=per_player("legal"), player_nodes=per_player("player_nodes"),
        infoset_members=per_player("infoset_members"),
        infoset_paths=per_player("infoset_paths"), schedule=schedule)


def _save(arrays: GameArrays, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so concurrent workers never read a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **_to_npz(arrays))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@lru_cache(maxsize=16)
def _load_canonical(canonical: str, use_disk: bool) -> GameArrays:
    path = _cache_path(canonical)
    if use_disk and path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                return _from_npz(data)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: rebuild below
    arrays = _build(load_game(canonical), canonical)
    if use_disk:
        try:
            _save(arrays, path)
        except OSError:
            pass  # a read-only cache only costs the walk next time
    return arrays


def load_game_arrays(game_string: str, cache: bool = True) -> GameArrays:
    """The arrays of ``game_string``, from the in-process or on-disk cache if present.

    Args:
      game_string: any OpenSpiel game string; simultaneous-move games are made
        turn-based.
      cache: read and write the on-disk cache (``cache_dir()``).
    """
    return _load_canonical(canonical_game_string(game_string), bool(cache))


# ---------------------------------------------------------------------------------------
# Policies


def uniform_policies(arrays: GameArrays) -> list[np.ndarray]:
    """The uniform policy over legal actions: per player [I_p, A]."""
    return [m / m.sum(axis=1, keepdims=True) for m in arrays.legal]


def check_policies(arrays: GameArrays, policies: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``policies`` as float arrays of the right shapes; ValueError otherwise."""
    if len(policies) != arrays.num_players:
        raise ValueError(f"Expected {arrays.num_players} policies, got {len(policies)}.")
    out = []
    for p, (pi, legal) in enumerate(zip(policies, arrays.legal)):
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != legal.shape:
            raise ValueError(f"Policy of player {p} has shape {pi.shape}, expected {legal.shape}.")
        out.append(pi)
    return out


def to_tabular_policy(arrays: GameArrays, policies: Sequence[np.ndarray], game=None):
    """Our per-player policies as an OpenSpiel ``policy.TabularPolicy`` (matched by key)."""
    from open_spiel.python import policy as policy_lib

    game = game if game is not None else load_game(arrays.game_string)
    tabular = policy_lib.TabularPolicy(game)
    for p, pi in enumerate(check_policies(arrays, policies)):
        for i, key in enumerate(arrays.infoset_keys[p]):
            tabular.action_probability_array[tabular.state_lookup[key]] = pi[i]
    return tabular


def from_tabular_policy(arrays: GameArrays, tabular) -> list[np.ndarray]:
    """An OpenSpiel ``policy.TabularPolicy`` as our per-player [I_p, A] arrays."""
    out = []
    for p in range(arrays.num_players):
        index = np.asarray([tabular.state_lookup[k] for k in arrays.infoset_keys[p]],
                           dtype=np.int64)
        out.append(np.asarray(tabular.action_probability_array, dtype=np.float64)[index]
                   if index.size else np.zeros((0, arrays.num_actions)))
    return out
