"""The psro_meta_solvers space: contract text, seeds, evaluation and score, probe, mechanisms.

Seeds are checked against independent references where one exists (OpenSpiel's regret
matching and projected replicator dynamics; the equilibrium condition for the linear
program); the score against the formula computed here from two independent ``run_psro``
curves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_spaces.game_space import GameSpace
from tests.reference_cache import private_reference_cache  # noqa: F401  (autouse fixture)
from open_spiel.python.algorithms import projected_replicator_dynamics, regret_matching

from discover.checks import static_check
from discover.space import TaskResult
from discover.mutators.base import MutationContext, Parent
from discover.mutators.offline import OfflineMutator
from evaluators.psro import log_checkpoints, run_psro
from search_spaces.psro_meta_solvers import (
    HELD_OUT_TASKS, MECHANISMS, SPACE, TASK_ITERATIONS, TRAIN_TASKS, PsroMetaSolversSpace,
    iterations_for, load_solvers)
from search_spaces.psro_meta_solvers.probe import probe_payoffs

SOLVERS = ("train_meta_solver", "eval_meta_solver")
SEED_NAMES = {"uniform", "nash", "regret_matching", "prd", "shor_psro", "alpha_rank"}
UNIFORM = '''
import numpy as np

# EVOLVE-BLOCK-START
def train_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state


def eval_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state
# EVOLVE-BLOCK-END
'''




def _namespace(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<candidate>", "exec"), namespace)
    return namespace


def _seed(name: str) -> dict:
    return _namespace(SPACE.seeds()[name])


# ---- the space's declaration ------------------------------------------------------------

def test_space_declares_contract_tasks_and_seeds():
    assert isinstance(SPACE, PsroMetaSolversSpace)
    assert SPACE.name == "psro_meta_solvers"
    assert SPACE.required_functions == SOLVERS
    assert set(SPACE.seeds()) == SEED_NAMES
    assert SPACE.train_tasks == TRAIN_TASKS and len(TRAIN_TASKS) == 4
    assert "kuhn_poker(players=3)" in TRAIN_TASKS and "leduc_poker" in TRAIN_TASKS
    assert any("num_cards=4" in t and "imp_info=True" in t for t in TRAIN_TASKS)
    assert "liars_dice(numdice=1,dice_sides=5)" in TRAIN_TASKS
    assert "kuhn_poker(players=4)" in HELD_OUT_TASKS
    assert any("num_cards=5" in t for t in HELD_OUT_TASKS)
    assert "liars_dice(numdice=1,dice_sides=6)" in HELD_OUT_TASKS
    assert iterations_for("leduc_poker") == 100
    assert TASK_ITERATIONS == {"kuhn_poker(players=3)": 30, "kuhn_poker(players=4)": 12}
    assert "scipy" in SPACE.allowed_modules and "numpy" in SPACE.allowed_modules
    assert SPACE.stochastic is False
    assert SPACE.task_label(TRAIN_TASKS[0]) == "kuhn-3p"


def test_doc_states_signatures_order_score_and_invalidity():
    doc = SPACE.doc
    for phrase in ("def train_meta_solver(payoffs, iteration, state)",
                   "def eval_meta_solver(payoffs, iteration, state)", "[n_1, ..., n_P, P]",
                   "n = t + 1", "log10", "1e-15", "6, 10, 18, 32, 56, 100", "uniform", "invalid",
                   "linprog", "state"):
        assert phrase in doc




# ---- evaluation and score ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SEED_NAMES))
def test_each_seed_evaluates_at_small_sizes(name):
    for task, iterations in (("kuhn_poker", 6), ("kuhn_poker(players=3)", 3)):
        result = SPACE.evaluate(SPACE.seeds()[name], task, iterations=iterations)
        assert result.ok, result.error
        assert math.isfinite(result.metrics["score"])
        assert [t for t, _ in result.curve] == log_checkpoints(iterations)
        assert result.metrics["iterations"] == iterations


def test_uniform_seed_scores_zero():
    for task in TRAIN_TASKS[:3]:
        result = SPACE.evaluate(SPACE.seeds()["uniform"], task, iterations=6)
        assert result.ok and result.metrics["score"] == 0.0
        assert result.metrics["final_exploitability"] == result.metrics["uniform_final_exploitability"]


def test_score_matches_formula_from_two_independent_runs():
    iterations = 20
    checkpoints = log_checkpoints(iterations)
    nash = _seed("nash")
    ours = run_psro(nash["train_meta_solver"], nash["eval_meta_solver"], "kuhn_poker", iterations,
                    checkpoints).curve
    ref = dict(run_psro(_namespace(UNIFORM)["train_meta_solver"],
                        _namespace(UNIFORM)["eval_meta_solver"], "kuhn_poker", iterations,
                        checkpoints).curve)
    counted = [c for c in checkpoints if c >= 5]
    assert counted == [6, 10, 18, 20]
    expected = np.mean([math.log10(max(ref[c], 1e-15) / max(dict(ours)[c], 1e-15)) for c in counted])
    result = SPACE.evaluate(SPACE.seeds()["nash"], "kuhn_poker", iterations=iterations)
    assert result.metrics["score"] == pytest.approx(expected, rel=1e-12)
    assert result.metrics["score"] > 10  # Nash solves Kuhn poker exactly by iteration 6


def test_program_fitness_caps_exact_solves_and_counts_the_weakest_game():
    # Nash solves Kuhn poker exactly (per-game score > 10 through the 1e-15 floor) but is
    # worse than uniform early on 3-player Kuhn at 3 iterations; the fitness caps the
    # exact solve at one decade and adds the weakest game, by the published formula
    # mean_g min(s_g, 1) + min_g s_g.
    results = [SPACE.evaluate(SPACE.seeds()["nash"], "kuhn_poker", iterations=20),
               SPACE.evaluate(SPACE.seeds()["prd"], "kuhn_poker(players=3)", iterations=6)]
    s = [r.metrics["score"] for r in results]
    assert s[0] > 10
    assert SPACE.score(results) == pytest.approx((1.0 + min(s[1], 1.0)) / 2 + min(s))
    failed = results[:1] + [TaskResult.failure("invalid", "bad mixture")]
    assert SPACE.score(failed) == -math.inf


def test_reference_curve_is_cached_on_disk(private_reference_cache, monkeypatch):
    SPACE.evaluate(UNIFORM, "kuhn_poker", iterations=4)
    files = list(private_reference_cache.glob("*.json"))
    assert len(files) == 1
    GameSpace._curves.clear()
    monkeypatch.setattr(type(SPACE), "run", lambda *a, **k: pytest.fail("the reference was recomputed"))
    curve = SPACE.reference_curve("kuhn_poker", 4, log_checkpoints(4))    # read from disk
    assert [t for t, _ in curve] == [1, 2, 3, 4]




def test_nan_mixture_is_invalid_with_reason():
    source = UNIFORM.replace("np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state\n\n\ndef eval",
                             "np.full(n, np.nan) for n in payoffs.shape[:-1]], state\n\n\ndef eval")
    result = SPACE.evaluate(source, "kuhn_poker", iterations=3)
    assert result.status == "invalid"
    assert "train_meta_solver" in result.error and "NaN" in result.error


def test_candidate_exceptions_propagate():
    source = UNIFORM.replace("    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state\n\n\ndef eval",
                             "    raise ZeroDivisionError('boom')\n\n\ndef eval")
    with pytest.raises(ZeroDivisionError):
        SPACE.evaluate(source, "kuhn_poker", iterations=3)


# ---- seeds against independent references ---------------------------------------------

@pytest.mark.parametrize("num_players,size", [(2, 7), (3, 4)])
def test_regret_matching_and_prd_seeds_equal_openspiel(num_players, size):
    payoffs = probe_payoffs(num_players, size)
    tables = [payoffs[..., p] for p in range(num_players)]
    references = {
        "regret_matching": regret_matching.regret_matching(tables, iterations=1000, gamma=1e-6),
        "prd": projected_replicator_dynamics.projected_replicator_dynamics(
            tables, prd_iterations=1000, prd_dt=0.01, prd_gamma=1e-6),
    }
    for name, expected in references.items():
        for solver in SOLVERS:
            mixtures, _ = _seed(name)[solver](payoffs.copy(), 3, {})
            for ours, theirs in zip(mixtures, expected):
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_nash_seed_returns_an_equilibrium_of_a_zero_sum_matrix_game():
    payoffs = probe_payoffs(2, 9)
    x, y = _seed("nash")["eval_meta_solver"](payoffs.copy(), 1, {})[0]
    matrix = payoffs[..., 0]
    value = x @ matrix @ y
    # Neither player gains by a pure deviation (the minimax theorem's certificate).
    assert np.max(matrix @ y) <= value + 1e-8
    assert np.min(x @ matrix) >= value - 1e-8
    assert np.all(x >= 0) and x.sum() == pytest.approx(1.0)


def test_shor_training_solver_anneals_towards_its_final_blend():
    # With a single policy per opponent the softmax part is a pure function of the
    # payoffs; late iterations weigh it less (blend 0.3 -> 0.05) and sharpen it.
    shor = _seed("shor_psro")
    payoffs = probe_payoffs(2, 4)
    early = shor["train_meta_solver"](payoffs.copy(), 1, {})[0]
    late = shor["train_meta_solver"](payoffs.copy(), 75, {})[0]
    later = shor["train_meta_solver"](payoffs.copy(), 200, {})[0]
    assert not np.allclose(early[0], late[0])
    np.testing.assert_array_equal(late[0], later[0])  # annealing ends at iteration 75


# ---- probe -----------------------------------------------------------------------------

def test_probe_is_deterministic_and_separates_all_seeds():
    prints = {name: SPACE.probe(_seed(name)) for name in sorted(SEED_NAMES)}
    for name, fp in prints.items():
        assert fp.shape == (164,) and np.all(np.isfinite(fp))
    names = sorted(prints)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(prints[a] - prints[b]).max() > 1e-3, (a, b)
    np.testing.assert_array_equal(prints["nash"], SPACE.probe(_seed("nash")))




@pytest.mark.parametrize("body,match", [
    ("return [np.full(n, np.nan) for n in payoffs.shape[:-1]], state", "NaN"),
    ("return [np.ones(n + 1) / (n + 1) for n in payoffs.shape[:-1]], state", "shape"),
    ("return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], None", "dict"),
])
def test_probe_rejects_broken_solvers(body, match):
    source = UNIFORM.replace(
        "def eval_meta_solver(payoffs, iteration, state):\n    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state",
        f"def eval_meta_solver(payoffs, iteration, state):\n    {body}")
    with pytest.raises(ValueError, match=match):
        SPACE.probe(_namespace(source))
    with pytest.raises(ValueError, match="train_meta_solver"):
        SPACE.probe({"eval_meta_solver": _namespace(UNIFORM)["eval_meta_solver"]})


# ---- mechanisms and the offline mutator ------------------------------------------------

@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_each_mechanism_is_a_valid_solver(name):
    namespace = _namespace(MECHANISMS[name])
    defined = [s for s in SOLVERS if callable(namespace.get(s))]
    assert defined == [name.rsplit("_", 1)[1] + "_meta_solver"]
    candidate = dict(_namespace(UNIFORM))
    candidate.update({s: namespace[s] for s in defined})
    fp = SPACE.probe(candidate)
    assert np.all(np.isfinite(fp))


def test_offline_mutator_children_are_valid():
    seeds = SPACE.seeds()
    mutator = OfflineMutator(seed=0)
    for i, name in enumerate(("uniform", "nash", "regret_matching")):
        inspirations = [Parent(100 + j, seeds[other]) for j, other in enumerate(("prd", "nash"))]
        context = MutationContext(SPACE, Parent(i + 1, seeds[name]), inspirations=inspirations,
                                  rng_seed=7)
        children = mutator.propose(context, 4)
        assert children, name
        for child in children:
            assert static_check(child.source, SPACE).ok
            solvers, missing = load_solvers(child.source)
            assert solvers is not None, missing
            SPACE.probe(_namespace(child.source))
