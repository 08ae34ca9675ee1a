"""The published seeds of the cfr_variants space.

References, all independent of our engine's own output:
- OpenSpiel's Python ``LCFRSolver`` / ``DCFRSolver`` and C++ ``CFRSolver`` / ``CFRPlusSolver``,
  run inside the tests, for exact agreement at small iteration counts;
- published / measured exploitabilities at 1000 iterations (docs/spaces/cfr_variants.md):
  Leduc CFR 1.18e-2, CFR+ 2.57e-4 (OpenSpiel C++), DCFR(1.5, 0, 2) 1.44e-4 (Brown &
  Sandholm 2019), PCFR+ 7.1e-4 (Farina et al. 2021), PDCFR+ 9.0e-4 (Xu et al. 2024),
  VAD-CFR 1.9e-5 (Li et al. 2026); 3-player Kuhn CFR+ 1.07e-5, PCFR+ 2.8e-6; 4-card
  Goofspiel CFR+ 2.68e-4, PCFR+ 1.0e-7;
- VAD-CFR's published rules (arXiv:2602.16928, Listing 5) written out as a plain loop over
  information sets, against the vectorised seed.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import pyspiel
import pytest

from evaluators.cfr import run_cfr
from evaluators.games import load_game_arrays, to_tabular_policy
from search_spaces.cfr_variants import SPACE, TRAIN_TASKS, load_rules

RULES = ("init_state", "update_regret", "derive_policy", "update_average")
SEEDS = ("cfr", "cfr_plus", "linear_cfr", "dcfr", "pcfr_plus", "pdcfr_plus", "vad_cfr")
NEW_SEEDS = ("linear_cfr", "dcfr", "pcfr_plus", "pdcfr_plus", "vad_cfr")
GOOFSPIEL_4 = TRAIN_TASKS[2]


def _rules(name: str) -> dict:
    rules, missing = load_rules(SPACE.seeds()[name])
    assert not missing, missing
    return rules


# ---- structure --------------------------------------------------------------------------

@pytest.mark.parametrize("name", NEW_SEEDS)
def test_seed_is_an_evolvable_file_with_a_cited_docstring(name):
    source = SPACE.seeds()[name]
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and re.search(r"\b20\d\d\b", docstring), "cite the paper and year"
    assert re.search(r"^1\. ", docstring, re.M) and re.search(r"^2\. ", docstring, re.M)
    lines = source.splitlines()
    assert lines.count("# EVOLVE-BLOCK-START") == 1 and lines.count("# EVOLVE-BLOCK-END") == 1
    start, end = lines.index("# EVOLVE-BLOCK-START"), lines.index("# EVOLVE-BLOCK-END")
    block = ast.parse("\n".join(lines[start + 1:end]))
    defined = [f.name for f in block.body if isinstance(f, ast.FunctionDef)]
    assert set(RULES) <= set(defined)


# ---- traceable, and NumPy and JAX agree -------------------------------------------------

@pytest.mark.parametrize("name", SEEDS)
def test_seed_compiles_with_jax_and_matches_numpy(name):
    # VAD-CFR's average policy is uniform until iteration 500: compare past it.
    iterations = 520 if name == "vad_cfr" else 100
    rules = _rules(name)
    jax_run = run_cfr(rules, "kuhn_poker", iterations, [iterations], backend="jax")
    numpy_run = run_cfr(rules, "kuhn_poker", iterations, [iterations], backend="numpy")
    assert jax_run.backend == "jax" and numpy_run.backend == "numpy"
    assert jax_run.curve[-1][1] == pytest.approx(numpy_run.curve[-1][1], rel=1e-9)
    for a, b in zip(jax_run.average_policy, numpy_run.average_policy):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


# ---- exact agreement with OpenSpiel's solvers -------------------------------------------

def _openspiel_matches(name: str, solver, game_string: str, iterations: int, tol: float):
    from open_spiel.python.algorithms import exploitability

    game = pyspiel.load_game(game_string)
    for _ in range(iterations):
        solver.evaluate_and_update_policy()
    reference = solver.average_policy()
    run = run_cfr(_rules(name), game_string, iterations, [iterations], backend="numpy")
    ours = to_tabular_policy(load_game_arrays(game_string), run.average_policy, game)
    np.testing.assert_allclose(ours.action_probability_array, reference.action_probability_array,
                               rtol=0, atol=tol)
    expected = exploitability.nash_conv(game, reference) / game.num_players()
    assert run.curve[-1][1] == pytest.approx(expected, rel=1e-8)


def test_linear_cfr_matches_openspiel_lcfr_on_kuhn():
    from open_spiel.python.algorithms import discounted_cfr

    _openspiel_matches("linear_cfr", discounted_cfr.LCFRSolver(pyspiel.load_game("kuhn_poker")),
                       "kuhn_poker", 100, 1e-10)


def test_dcfr_matches_openspiel_dcfr_on_kuhn():
    from open_spiel.python.algorithms import discounted_cfr

    _openspiel_matches("dcfr", discounted_cfr.DCFRSolver(pyspiel.load_game("kuhn_poker")),
                       "kuhn_poker", 100, 1e-9)


def test_cfr_plus_matches_openspiel_cpp_on_kuhn():
    game = pyspiel.load_game("kuhn_poker")
    solver = pyspiel.CFRPlusSolver(game)
    for _ in range(100):
        solver.evaluate_and_update_policy()
    expected = pyspiel.exploitability(game, solver.average_policy())
    run = run_cfr(_rules("cfr_plus"), "kuhn_poker", 100, [100], backend="numpy")
    assert run.curve[-1][1] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(1.194404e-3, rel=1e-6)  # FACTS: OpenSpiel C++ CFR+ @100


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear_cfr", "dcfr"])
def test_discounted_seeds_match_openspiel_on_leduc(name):
    from open_spiel.python.algorithms import discounted_cfr

    solver = {"linear_cfr": discounted_cfr.LCFRSolver, "dcfr": discounted_cfr.DCFRSolver}[name]
    _openspiel_matches(name, solver(pyspiel.load_game("leduc_poker")), "leduc_poker", 30, 1e-9)


# ---- VAD-CFR: the published rules, the warm start ---------------------------------------

def _listing5(cum_regret, cum_policy, ewma, inst, policy, reach, legal, iteration_number, first):
    """One player update with the published classes' arithmetic, one information set at a
    time in index order, the EWMA a scalar carried across information sets (Listing 5)."""
    cum_regret, cum_policy = cum_regret.copy(), cum_policy.copy()
    new_policy = np.zeros_like(policy)
    t_plus_one = float(iteration_number + 1)
    for i in range(inst.shape[0]):
        actions = np.flatnonzero(legal[i])
        regrets = {a: inst[i, a] for a in actions}
        magnitude = max(abs(r) for r in regrets.values())
        ewma = magnitude if first else 0.1 * magnitude + 0.9 * ewma
        volatility = min(1.0, ewma / 2.0)
        alpha = max(0.1, 1.5 - 0.5 * volatility)
        beta = min(alpha, -0.1 - 0.5 * volatility)
        d_pos = t_plus_one ** alpha / (t_plus_one ** alpha + 1.0)
        d_neg = t_plus_one ** beta / (t_plus_one ** beta + 1.0)
        for a in actions:  # RegretAccumulator
            r = regrets[a] * 1.1 if regrets[a] > 0 else regrets[a]
            old = cum_regret[i, a]
            cum_regret[i, a] = max(-20.0, (d_pos if old >= 0 else d_neg) * old + r)
        if iteration_number >= 500:  # PolicyAccumulator
            v = min(1.0, magnitude / 2.0)
            gamma = min(4.0, 2.0 + 1.5 * v)
            weight = (float(iteration_number) + 1.0) ** gamma / (1.0 + magnitude ** 1.5) \
                * max(0.1, (1.0 + magnitude / 2.0) ** 0.5)
            for a in actions:
                cum_policy[i, a] += weight * reach[i] * policy[i, a]
        optimism = 1.0 / (1.0 + iteration_number / 100.0) * max(0.0, 1.0 - 0.5 * volatility)
        scaled = {}
        for a in actions:  # PolicyFromRegretAccumulator
            r = regrets[a] * 1.1 if regrets[a] > 0 else regrets[a]
            old = cum_regret[i, a]
            projected = (d_pos if old >= 0 else d_neg) * old + optimism * r
            scaled[a] = max(0.0, projected) ** 1.5
        total = sum(scaled.values())
        for a in actions:
            new_policy[i, a] = scaled[a] / total if total > 0 else 1.0 / len(actions)
    return cum_regret, cum_policy, ewma, new_policy


def test_vad_cfr_seed_computes_the_published_rules():
    rules = _rules("vad_cfr")
    rng = np.random.default_rng(7)
    num_infosets, num_actions = 40, 3
    legal = (rng.random((num_infosets, num_actions)) < 0.8).astype(float)
    legal[:, 0] = 1.0
    reach = rng.random(num_infosets)
    state = rules["init_state"](num_infosets, num_actions, np)
    ours = [np.zeros(legal.shape), np.zeros(legal.shape), legal / legal.sum(1, keepdims=True)]
    theirs = [np.zeros(legal.shape), np.zeros(legal.shape), 0.0, ours[2].copy()]
    for t in (1, 2, 3, 50, 499, 500, 501, 502, 900):
        inst = rng.standard_normal(legal.shape) * rng.choice([0.05, 1.0, 4.0]) * legal
        cum_regret, state = rules["update_regret"](ours[0], inst, float(t), state, np)
        cum_policy, state = rules["update_average"](ours[1], ours[2], reach, float(t), state, np)
        policy, state = rules["derive_policy"](cum_regret, inst, legal, float(t), state, np)
        ours = [cum_regret, cum_policy, policy]
        theirs = list(_listing5(theirs[0], theirs[1], theirs[2], inst, theirs[3], reach, legal,
                                t - 1, first=(t == 1)))
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, atol=0)
        np.testing.assert_allclose(ours[2], theirs[3], rtol=1e-10, atol=1e-14)


def test_vad_cfr_average_stays_uniform_through_iteration_500():
    run = run_cfr(_rules("vad_cfr"), "kuhn_poker(players=3)", 501, [500, 501], backend="numpy")
    uniform = 0.6875  # 3-player Kuhn, uniform policy (the engine's curve before any average)
    assert run.curve[0][1] == pytest.approx(uniform, rel=1e-12)
    assert run.curve[1][1] < 0.5 * uniform


# ---- 1000 iterations against published / measured figures ------------------------------

LEDUC_1000 = {  # exploitability of the average policy after 1000 iterations
    "cfr": 1.181781e-2,
    "cfr_plus": 2.571516e-4,
    "dcfr": 1.44e-4,
    "pcfr_plus": 7.1e-4,
    "pdcfr_plus": 9.0e-4,
    "vad_cfr": 1.9e-5,
}
# Two correct implementations drift apart by several percent at 1000 iterations (rounding is
# amplified chaotically; VAD-CFR's figure also depends on the order its EWMA visits
# information sets), hence a band of a factor 1.5 either way.
BAND = 1.5


@pytest.fixture(scope="module")
def leduc_1000():
    return {name: run_cfr(_rules(name), "leduc_poker", 1000, [1000]).curve[-1][1]
            for name in list(LEDUC_1000) + ["linear_cfr"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LEDUC_1000))
def test_leduc_1000_near_published(name, leduc_1000):
    expected = LEDUC_1000[name]
    assert expected / BAND <= leduc_1000[name] <= expected * BAND, (name, leduc_1000[name])


@pytest.mark.slow
def test_vad_cfr_reaches_3e_5_on_leduc(leduc_1000):
    assert leduc_1000["vad_cfr"] <= 3e-5


@pytest.mark.slow
def test_leduc_1000_ordering(leduc_1000):
    # Brown & Sandholm 2019: LCFR improves on CFR; DCFR on CFR+. Li et al. 2026: VAD-CFR best.
    assert leduc_1000["linear_cfr"] < leduc_1000["cfr"]
    assert leduc_1000["dcfr"] < leduc_1000["cfr_plus"]
    assert leduc_1000["vad_cfr"] == min(leduc_1000.values())


@pytest.mark.slow
@pytest.mark.parametrize("game, name, expected", [
    ("kuhn_poker(players=3)", "cfr_plus", 1.07e-5),
    ("kuhn_poker(players=3)", "pcfr_plus", 2.8e-6),
    (GOOFSPIEL_4, "cfr_plus", 2.68e-4),
    (GOOFSPIEL_4, "pcfr_plus", 1.0e-7),
])
def test_train_games_1000_near_measured(game, name, expected):
    value = run_cfr(_rules(name), game, 1000, [1000]).curve[-1][1]
    assert expected / BAND <= value <= expected * BAND, value
