"""Game arrays against OpenSpiel's own view of the same games."""

from __future__ import annotations

import time

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import expected_game_score

from evaluators import games

GOOFSPIEL4 = "goofspiel(imp_info=True,num_cards=4,points_order=descending)"
SMALL_GAMES = ["kuhn_poker", "kuhn_poker(players=3)", "leduc_poker", GOOFSPIEL4]


def _count_nodes(game) -> dict[str, int]:
    """Decision / chance / terminal histories, by an independent depth-first walk."""
    counts = {"decision": 0, "chance": 0, "terminal": 0}
    stack = [game.new_initial_state()]
    while stack:
        state = stack.pop()
        if state.is_terminal():
            counts["terminal"] += 1
            continue
        if state.is_chance_node():
            counts["chance"] += 1
            stack.extend(state.child(a) for a, _ in state.chance_outcomes())
        else:
            counts["decision"] += 1
            stack.extend(state.child(a) for a in state.legal_actions())
    return counts


@pytest.mark.parametrize("game_string", SMALL_GAMES)
def test_node_counts_match_openspiel(game_string):
    arrays = games.load_game_arrays(game_string, cache=False)
    counts = _count_nodes(games.load_game(game_string))
    assert arrays.num_nodes == sum(counts.values())
    assert int((arrays.player >= 0).sum()) == counts["decision"]
    assert int((arrays.player == games.CHANCE).sum()) == counts["chance"]
    assert int((arrays.player == games.TERMINAL).sum()) == counts["terminal"]


def test_leduc_sizes_match_published_counts():
    # OpenSpiel's Leduc: 9,457 histories (3,780 decision / 157 chance / 5,520 terminal),
    # 936 information sets.
    arrays = games.load_game_arrays("leduc_poker", cache=False)
    assert arrays.num_nodes == 9457
    assert int((arrays.player >= 0).sum()) == 3780
    assert int((arrays.player == games.CHANCE).sum()) == 157
    assert sum(arrays.num_infosets) == 936


@pytest.mark.parametrize("game_string", SMALL_GAMES)
def test_infosets_and_legal_masks_match_tabular_policy(game_string):
    arrays = games.load_game_arrays(game_string, cache=False)
    game = games.load_game(game_string)
    tabular = policy_lib.TabularPolicy(game)
    for p in range(game.num_players()):
        assert sorted(arrays.infoset_keys[p]) == sorted(tabular.states_per_player[p])
        rows = [tabular.state_lookup[k] for k in arrays.infoset_keys[p]]
        np.testing.assert_array_equal(arrays.legal[p], tabular.legal_actions_mask[rows])


@pytest.mark.parametrize("game_string", SMALL_GAMES)
def test_uniform_value_matches_openspiel(game_string):
    """Chance probabilities, utilities and tree shape, through the root value."""
    arrays = games.load_game_arrays(game_string, cache=False)
    game = games.load_game(game_string)
    uniform = policy_lib.UniformRandomPolicy(game)
    expected = expected_game_score.policy_value(game.new_initial_state(),
                                                [uniform] * game.num_players())
    # Root value by an explicit sum over terminals of their reach times utility.
    sigma = games.uniform_policies(arrays)
    reach = np.ones(arrays.num_nodes)
    for n in range(1, arrays.num_nodes):  # parents precede children
        par = arrays.parent[n]
        who = arrays.player[par]
        edge = (arrays.chance_prob[n] if who == games.CHANCE
                else sigma[who][arrays.infoset[par], arrays.action[n]])
        reach[n] = reach[par] * edge
    np.testing.assert_allclose(reach @ arrays.utility, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("game_string", SMALL_GAMES)
def test_structure_is_consistent(game_string):
    a = games.load_game_arrays(game_string, cache=False)
    n = a.num_nodes
    depth = np.repeat(np.arange(a.num_depths), np.diff(a.depth_offsets))
    assert depth[0] == 0 and np.all(depth[1:] == depth[a.parent[1:]] + 1)
    # Child tables invert the parent array.
    rebuilt = np.full(n, -1)
    for d, table in enumerate(a.children):
        lo, nxt = a.depth_offsets[d], a.depth_offsets[d + 1]
        size_next = a.depth_offsets[d + 2] - nxt if d + 2 < len(a.depth_offsets) else 0
        rows, slots = np.nonzero(table < size_next)
        assert np.all(rebuilt[nxt + table[rows, slots]] == -1)
        rebuilt[nxt + table[rows, slots]] = lo + rows
    np.testing.assert_array_equal(rebuilt, a.parent)
    # Decision children sit in their action's slot; chance children in outcome order.
    for d, table in enumerate(a.children):
        lo, nxt = a.depth_offsets[d], a.depth_offsets[d + 1]
        size_next = a.depth_offsets[d + 2] - nxt if d + 2 < len(a.depth_offsets) else 0
        rows, slots = np.nonzero(table < size_next)
        deciding = a.player[lo + rows] >= 0
        np.testing.assert_array_equal(a.action[nxt + table[rows, slots]][deciding], slots[deciding])
    # Information sets' members and root paths.
    for p in range(a.num_players):
        nodes = a.player_nodes[p]
        np.testing.assert_array_equal(nodes, np.flatnonzero(a.player == p))
        members = a.infoset_members[p]
        for i, row in enumerate(members):
            np.testing.assert_array_equal(nodes[row[row < nodes.size]],
                                          nodes[a.infoset[nodes] == i])
        for i, path in enumerate(a.infoset_paths[p]):
            on_path = [int(x) for x in path if x < n]
            node = int(nodes[members[i, 0]])
            walk = []
            while node > 0:
                walk.append(node)
                node = int(a.parent[node])
            assert on_path == walk[::-1]
    # The level schedule puts children strictly below parents and an infoset on one level.
    s = a.schedule
    level = np.empty(n, dtype=np.int64)
    for lv in range(s.num_levels):
        level[s.order[s.offsets[lv]:s.offsets[lv + 1]]] = lv
    assert np.all(level[1:] < level[a.parent[1:]])
    for p in range(a.num_players):
        nodes = a.player_nodes[p]
        for i in range(a.num_infosets[p]):
            assert len(set(level[nodes[a.infoset[nodes] == i]])) == 1


def test_goofspiel_is_made_turn_based():
    arrays = games.load_game_arrays(GOOFSPIEL4, cache=False)
    assert arrays.game_string.startswith("turn_based_simultaneous_game(")
    game = pyspiel.load_game(arrays.game_string)
    assert game.get_type().dynamics == pyspiel.GameType.Dynamics.SEQUENTIAL
    assert sum(arrays.num_infosets) == 162
    assert arrays.game_string == games.canonical_game_string(arrays.game_string)


def test_canonical_game_string_spells_out_defaults():
    assert games.canonical_game_string("liars_dice") == games.canonical_game_string(
        "liars_dice(numdice=1,dice_sides=6)")


def test_rejects_empty_game_string():
    with pytest.raises(ValueError):
        games.load_game_arrays("")


def test_tabular_policy_round_trip():
    arrays = games.load_game_arrays("kuhn_poker(players=3)", cache=False)
    rng = np.random.default_rng(1)
    policies = [m * rng.random(m.shape) for m in arrays.legal]
    policies = [x / x.sum(axis=1, keepdims=True) for x in policies]
    tabular = games.to_tabular_policy(arrays, policies)
    back = games.from_tabular_policy(arrays, tabular)
    for x, y in zip(policies, back):
        np.testing.assert_array_equal(x, y)
    # The keys really are OpenSpiel's: the tabular policy answers for live states.
    game = games.load_game(arrays.game_string)
    state = game.new_initial_state()
    while state.is_chance_node():
        state.apply_action(state.legal_actions()[0])
    probs = tabular.action_probabilities(state)
    key = state.information_state_string()
    row = policies[state.current_player()][arrays.infoset_keys[state.current_player()].index(key)]
    assert probs == {a: row[a] for a in state.legal_actions()}


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVER_CACHE", str(tmp_path))
    games._load_canonical.cache_clear()
    built = games.load_game_arrays("leduc_poker")
    assert list(tmp_path.glob("games/*.npz"))
    games._load_canonical.cache_clear()
    begin = time.perf_counter()
    loaded = games.load_game_arrays("leduc_poker")
    assert time.perf_counter() - begin < 1.0
    assert loaded is not built
    assert loaded.game_string == built.game_string
    assert loaded.infoset_keys == built.infoset_keys
    for name in ("parent", "action", "player", "infoset", "chance_prob", "utility",
                 "edge_index", "edge_owner"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
    for x, y in zip(loaded.schedule.children, built.schedule.children):
        np.testing.assert_array_equal(x, y)
    games._load_canonical.cache_clear()
