"""The adapters of exported PSRO meta-solvers and policy objectives (`discover export`,
`discover.algorithms`), checked against independent references.

- PSRO: the Nash seed is exported from a real store (re-evaluated on every train and
  held-out game with 4 PSRO iterations); its ``MetaSolver`` must return the known
  equilibria of rock-paper-scissors and matching pennies, agree with OpenSpiel's
  equilibrium computations on a two-player Kuhn poker PSRO table (OpenSpiel's NashConv of
  the matrix game, and its ``lp_solver`` where ``cvxpy`` is installed), and drive
  OpenSpiel's own ``psro_v2.PSROSolver`` on Kuhn poker as its meta-strategy method.
- Policy objectives: evaluating a PPO program on the six MinAtar/classic tasks takes minutes,
  so the default tests render the packages of the seeds without re-evaluation
  (``render_package``) and check them against formulas: PPO's clipped surrogate (Schulman et
  al. 2017), the vanilla policy gradient at r = 1, a Python-loop GAE (Schulman et al. 2016).
  The slow test exports the ``ppo_clip`` seed from a real store, installs the package into a
  fresh virtual environment and runs the package's own tests there.

Why one file: the exported adapters of the non-CFR spaces, each checked against its
reference in the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from discover.algorithms import Algorithm
from search_spaces.psro_meta_solvers.adapter import MetaSolver, as_payoff_tensor, joint_strategy
from discover.export import GENERIC, adapter_for, export_program, render_package
from discover.store import Store
from tests.test_views import cli_main  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
PSRO_OPTIONS = {"iterations": 4}
# MinAtar rollouts are 64 environments × 128 steps: one update needs 8192 steps.
PPO_OPTIONS = {"total_timesteps": 8192, "num_seeds": 1, "eval_episodes": 2}
FUNCTIONS = {"psro_meta_solvers": ["train_meta_solver", "eval_meta_solver"], "ppo_objectives": ["drift"],
             "temporal_objectives": ["drift"], "advantage_rules": ["advantages"]}

ROCK_PAPER_SCISSORS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
MATCHING_PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])


def seed_source(space: str, name: str) -> str:
    return (SEEDS / space / f"{name}.py").read_text()


@contextlib.contextmanager
def imported(directory: Path, module: str):
    """The package ``module`` in ``directory``, imported (and forgotten afterwards)."""
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            sys.modules.pop(name)


def package_tests(directory: Path, module: str):
    """The package's own test module (tests/test_algorithm.py), imported; the package must
    be importable (``imported``)."""
    spec = importlib.util.spec_from_file_location(f"{module}_package_tests", directory / "tests" / "test_algorithm.py")
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    return tests


def run_adapter_tests(directory: Path, module: str) -> list[str]:
    """Runs the package tests that need no installation (all but the entry-point lookup);
    returns their names."""
    tests = package_tests(directory, module)
    names = [n for n in dir(tests) if n.startswith("test_") and n != "test_the_entry_point_finds_this_algorithm"]
    for n in names:
        getattr(tests, n)()
    return names


def synthetic_metadata(space: str, source: str, name: str) -> dict:
    """The metadata ``render_package`` needs, for a package rendered without re-evaluation."""
    from discover.program import code_hash

    return {"name": name, "distribution": "discover-algo-" + name.replace("_", "-"),
            "module": "discover_algo_" + name, "version": "0.1.0", "space": space,
            "required_functions": FUNCTIONS[space], "program_id": 1, "code_hash": code_hash(source),
            "generation": 0, "edit": "seed", "mutator": "seed", "model": None,
            "run": {"id": 1, "name": "unevaluated", "seed": 0, "mutator": "seed", "model": None, "config": {}},
            "scores": {"train": {"score": None, "stored_score": None, "tasks": {}},
                       "held_out": {"score": None, "tasks": {}}},
            "evaluation": {"seed": 0, "options": {}, "executor": "none"},
            "lineage": [{"id": 1, "generation": 0, "parents": [], "score": None, "edit": "seed", "mutator": "seed"}],
            "versions": {"export": {}, "run": {}}, "exported_at": "2026-01-01T00:00:00+00:00"}


def write_package(tmp_path: Path, space: str, seed: str, name: str) -> tuple[Path, str]:
    meta = synthetic_metadata(space, seed_source(space, seed), name)
    out = tmp_path / name
    for rel, text in render_package(meta, seed_source(space, seed)).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return out, meta["module"]


def store_with_seed(url: str, space: str, seed: str, options: dict) -> int:
    """A run of ``space`` with one seed program, as ``discover run`` records it; its id."""
    store = Store.open(url)
    run = store.create_run("adapters", space, config={"eval_options": options}, seed=0, budget=1, mutator="offline",
                           versions={})
    program = store.add_program(run.id, seed_source(space, seed), 0, f"seed: {seed}", [], mutator="seed")
    store.close()
    return program.id


# ----------------------------------------------------------------------------- the adapters spaces declare
def test_each_space_declares_its_adapter_files():
    from discover.spaces import space_catalogue
    declared = {e.name: e.space.export_adapter for e in space_catalogue()
                if e.space is not None and e.space.export_adapter is not None}
    assert set(declared) == {"cfr_variants", "psro_meta_solvers", "ppo_objectives", "temporal_objectives",
                             "advantage_rules"}
    for space, adapter in declared.items():
        for path in (adapter.code, adapter.tests, adapter.doc_usage, adapter.readme_usage):
            assert path is not None and path.is_file(), (space, path)
        assert adapter.methods and adapter_for(space) is adapter
    assert adapter_for("cfr_variants").code.name == "cfr_adapter.py.tmpl"
    assert adapter_for("tests.toy_space:SPACE") is GENERIC and GENERIC.tests is None


def test_adapters_refuse_algorithms_of_other_spaces():
    ppo = Algorithm("clip", "ppo_objectives", seed_source("ppo_objectives", "ppo_clip"))
    nash = Algorithm("nash", "psro_meta_solvers", seed_source("psro_meta_solvers", "nash"))
    with pytest.raises(AttributeError, match="space 'ppo_objectives', whose programs offer no meta_solver"):
        ppo.meta_solver()
    with pytest.raises(AttributeError, match="offer no policy_loss\\(\\); they offer: meta_solver"):
        nash.policy_loss()
    with pytest.raises(AttributeError, match="offer no advantage_fn\\(\\); they offer: drift, policy_loss"):
        ppo.advantage_fn()
    with pytest.raises(ValueError, match="kind must be 'train' or 'eval'"):
        nash.meta_solver("both")


# ----------------------------------------------------------------------------- PSRO: the exported Nash seed
@pytest.fixture(scope="module")
def nash_export(tmp_path_factory):
    """The Nash seed exported from a real store (fresh re-evaluation on the space's seven
    games, 4 PSRO iterations each): ``(ExportResult, store url, program id)``."""
    tmp = tmp_path_factory.mktemp("psro")
    url = f"sqlite:///{tmp / 'run.db'}"
    pid = store_with_seed(url, "psro_meta_solvers", "nash", PSRO_OPTIONS)
    result = export_program(Store.open(url), pid, tmp / "nash_pkg", name="nash_meta", workers=2)
    return result, url, pid


@pytest.fixture
def nash_package(nash_export):
    result = nash_export[0]
    with imported(result.directory, result.module) as package:
        yield package


def test_the_psro_export_is_re_evaluated_and_offers_a_meta_solver(nash_export):
    from search_spaces.psro_meta_solvers import HELD_OUT_TASKS, TRAIN_TASKS

    result, url, pid = nash_export
    meta = result.metadata
    assert meta["space"] == "psro_meta_solvers" and meta["evaluation"]["options"] == PSRO_OPTIONS
    assert set(meta["scores"]["train"]["tasks"]) == set(TRAIN_TASKS)
    assert set(meta["scores"]["held_out"]["tasks"]) == set(HELD_OUT_TASKS)
    for split in ("train", "held_out"):
        for task, r in meta["scores"][split]["tasks"].items():
            assert r["status"] == "ok" and [p[0] for p in r["curve"]][-1] == 4, task
    assert Store.open(url).program(pid).held_out_score == pytest.approx(meta["scores"]["held_out"]["score"])
    init = (result.directory / result.module / "__init__.py").read_text()
    assert "class MetaSolver(_MetaSolver)" in init and "openspiel_meta_strategy" in init
    readme = (result.directory / "README.md").read_text()
    assert "meta_strategy_method=MetaSolver(\"train\").openspiel_meta_strategy" in readme
    assert f"from {result.module} import MetaSolver" in readme and "fictitious play" in readme


def test_the_exported_nash_solver_finds_the_known_equilibria(nash_package):
    # Rock-paper-scissors: the unique equilibrium is uniform; matching pennies: (1/2, 1/2).
    for game, value in ((ROCK_PAPER_SCISSORS, 1 / 3), (MATCHING_PENNIES, 1 / 2)):
        n = game.shape[0]
        forms = [game,                                   # OpenSpiel's zero-sum single matrix
                 [game, -game],                          # a pair of matrices / per-player tables
                 np.stack([game, -game], axis=-1)]       # the space's tensor [n, n, 2]
        for kind in ("train", "eval"):
            for form in forms:
                mixtures = nash_package.MetaSolver(kind)(form)
                assert len(mixtures) == 2
                for x in mixtures:
                    np.testing.assert_allclose(x, np.full(n, value), atol=1e-9)
    # The package's ALGORITHM gives the same solver.
    np.testing.assert_allclose(nash_package.ALGORITHM.meta_solver("eval")(MATCHING_PENNIES)[0], [0.5, 0.5], atol=1e-9)


def kuhn_psro_table(iterations: int = 8) -> np.ndarray:
    """The exact payoff table [n, n, 2] of PSRO with uniform meta-strategies (fictitious
    play) on two-player Kuhn poker after ``iterations`` iterations (n = iterations + 1)."""
    from evaluators.psro import run_psro

    uniform = lambda payoffs, t, state: ([np.full(n, 1 / n) for n in payoffs.shape[:-1]], state)
    return run_psro(uniform, uniform, "kuhn_poker", iterations).payoffs


def openspiel_matrix_nash_conv(row: np.ndarray, column: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """OpenSpiel's NashConv of the mixtures (x, y) in the matrix game (row, column), played
    as its turn-based extensive form."""
    import pyspiel
    from open_spiel.python import policy
    from open_spiel.python.algorithms import exploitability

    game = pyspiel.convert_to_turn_based(pyspiel.create_matrix_game(row.tolist(), column.tolist()))
    profile = policy.TabularPolicy(game)
    for player, mixture in ((0, x), (1, y)):
        [key] = [k for k, i in profile.state_lookup.items() if k.startswith(f"Current player: {player}\n")]
        profile.action_probability_array[profile.state_lookup[key]] = mixture
    return exploitability.nash_conv(game, profile)


def test_the_exported_nash_solver_agrees_with_openspiel_on_a_kuhn_psro_table(nash_package):
    payoffs = kuhn_psro_table()
    row, column = payoffs[..., 0], payoffs[..., 1]
    x, y = nash_package.MetaSolver("eval")(payoffs)
    # An equilibrium by OpenSpiel's own best responses: NashConv 0.
    assert openspiel_matrix_nash_conv(row, column, x, y) < 1e-9
    # Against OpenSpiel's linear program (needs cvxpy, which open-spiel does not install).
    # The table repeats policies, so equilibria need not be unique: compare the game value
    # and check that each of our mixtures guarantees it.
    pytest.importorskip("cvxpy")
    import pyspiel
    from open_spiel.python.algorithms import lp_solver

    p0, p1, v0, v1 = lp_solver.solve_zero_sum_matrix_game(pyspiel.create_matrix_game(row.tolist(), column.tolist()))
    p0, p1 = np.asarray(p0, float).ravel(), np.asarray(p1, float).ravel()
    assert x @ row @ y == pytest.approx(v0, abs=1e-7)
    assert (x @ row).min() >= v0 - 1e-7 and (row @ y).max() <= v0 + 1e-7
    assert openspiel_matrix_nash_conv(row, column, np.maximum(p0, 0), np.maximum(p1, 0)) < 1e-6


def test_the_exported_meta_solver_runs_openspiel_psro_on_kuhn_poker(nash_package):
    """Three iterations of OpenSpiel's own PSRO (sampled payoffs, exact best responses) with
    the exported solver as its meta-strategy method: at every iteration our mixtures are
    OpenSpiel's Nash (``meta_strategies.nash_strategy``, its LP) of the same meta-game, and
    the exploitability of PSRO's output falls below the uniform policy's 11/24."""
    pytest.importorskip("cvxpy")  # psro_v2 imports lp_solver, which imports cvxpy
    import pyspiel
    from open_spiel.python import policy
    from open_spiel.python.algorithms import exploitability, policy_aggregator
    from open_spiel.python.algorithms.psro_v2 import best_response_oracle, meta_strategies, psro_v2, strategy_selectors

    np.random.seed(0)  # OpenSpiel samples payoff entries and training policies with NumPy's global generator
    game = pyspiel.load_game("kuhn_poker")
    start = policy.TabularPolicy(game)
    meta = nash_package.MetaSolver("train")
    with contextlib.redirect_stdout(None):  # PSROSolver prints its settings
        psro = psro_v2.PSROSolver(game, best_response_oracle.BestResponseOracle(game=game, policy=start),
                                  initial_policies=[start.__copy__() for _ in range(2)],
                                  meta_strategy_method=meta.openspiel_meta_strategy,
                                  training_strategy_selector=strategy_selectors.probabilistic,
                                  sims_per_entry=200, sample_from_marginals=True)
    assert meta.iteration == 1  # called once when built, on one policy per player
    uniform = exploitability.exploitability(game, policy.UniformRandomPolicy(game))
    for it in range(1, 4):
        psro.iteration()
        n = it + 1
        assert meta.iteration == n  # the counter is the population size, as train_meta_solver's t
        ours = psro.get_meta_strategies()
        theirs = meta_strategies.nash_strategy(psro)
        assert [len(x) for x in ours] == [n, n]
        table = psro.get_meta_game()
        value = ours[0] @ table[0] @ ours[1]
        assert value == pytest.approx(theirs[0] @ table[0] @ theirs[1], abs=1e-6)
        assert (ours[0] @ table[0]).min() >= value - 1e-7 and (table[0] @ ours[1]).max() <= value + 1e-7
        # PSROSolver also asked for the joint distribution: OpenSpiel's product of marginals.
        np.testing.assert_allclose(psro.get_and_update_non_marginalized_meta_strategies(update=False),
                                   meta_strategies.get_joint_strategy_from_marginals(ours), atol=1e-15)
    mixed = policy_aggregator.PolicyAggregator(game).aggregate(range(2), psro.get_policies(), ours)
    assert exploitability.exploitability(game, mixed) < uniform


def test_the_exported_psro_package_passes_its_own_tests(nash_export):
    result = nash_export[0]
    with imported(result.directory, result.module):
        names = run_adapter_tests(result.directory, result.module)
    assert "test_psro_with_these_solvers_ends_below_the_uniform_policy_on_kuhn_poker" in names


# ----------------------------------------------------------------------------- PSRO: MetaSolver itself
STATEFUL = '''
import numpy as np

def train_meta_solver(payoffs, iteration, state):
    state = dict(state, calls=state.get("calls", 0) + 1, seen=state.get("seen", ()) + (iteration,))
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state

def eval_meta_solver(payoffs, iteration, state):
    n = payoffs.shape[0]
    if n == 3:
        return [np.full(n, 0.5)] * 2, state        # sums to 1.5: invalid
    if n == 4:
        return [np.ones(n) / n], state             # one mixture for two players
    return [np.eye(n)[0]] * 2, {"last": iteration}
'''


def test_the_meta_solver_owns_its_state_and_iteration():
    meta = MetaSolver(STATEFUL, kind="train")
    for n in (1, 2, 3):
        meta(np.zeros((n, n, 2)))
    assert meta.iteration == 3 and meta.state == {"calls": 3, "seen": (1, 2, 3)}
    meta(np.zeros((2, 2, 2)), iteration=10)
    assert meta.iteration == 10 and meta.state["seen"] == (1, 2, 3, 10)
    meta.reset()
    assert meta.iteration == 0 and meta.state == {}
    meta(np.zeros((1, 1, 2)))
    assert meta.state == {"calls": 1, "seen": (1,)}
    # Three players, OpenSpiel's list form: one table [n_1, n_2, n_3] per player.
    three = meta([np.zeros((2, 3, 4))] * 3)
    assert [x.shape for x in three] == [(2,), (3,), (4,)]


def test_invalid_output_and_input_are_one_clear_error():
    meta = MetaSolver(STATEFUL, kind="eval", name="broken")
    assert [list(x) for x in meta(MATCHING_PENNIES)] == [[1.0, 0.0], [1.0, 0.0]]
    assert meta.state == {"last": 1}
    with pytest.raises(ValueError, match=r"meta-solver 'broken': eval_meta_solver returned a mixture for player 0 "
                                         r"that sums to 1.5, not 1"):
        meta(ROCK_PAPER_SCISSORS)
    with pytest.raises(ValueError, match="returned 1 mixtures for 2 players"):
        meta(np.zeros((4, 4, 2)))
    assert meta.state == {"last": 1} and meta.iteration == 1  # kept from the last valid call
    for bad, message in ((np.zeros((2, 2, 3)), "shape \\[n_1, ..., n_P, P\\]"),
                         (np.zeros(3), "shape \\[n_1, ..., n_P, P\\]"),
                         ([np.zeros((2, 2)), np.zeros((2, 3))], "one payoff table"),
                         ([np.zeros(2), np.zeros(2)], "one payoff table"),
                         (np.full((2, 2), np.nan), "NaN or infinite"),
                         (np.zeros((0, 2, 2)), "at least one policy")):
        with pytest.raises(ValueError, match=message):
            meta(bad)
    with pytest.raises(ValueError, match="does not define eval_meta_solver"):
        MetaSolver("def train_meta_solver(p, t, s):\n    return [], s\n", kind="eval")


def test_payoff_forms_and_the_joint_distribution():
    tensor = np.random.default_rng(0).normal(size=(2, 3, 2))
    np.testing.assert_array_equal(as_payoff_tensor([tensor[..., 0], tensor[..., 1]]), tensor)
    np.testing.assert_array_equal(as_payoff_tensor(tensor[..., 0])[..., 1], -tensor[..., 0])
    x, y, z = np.array([0.25, 0.75]), np.array([0.5, 0.2, 0.3]), np.array([0.1, 0.9])
    joint = joint_strategy([x, y, z])
    np.testing.assert_allclose(joint, np.einsum("i,j,k->ijk", x, y, z).ravel(), atol=1e-15)


# ----------------------------------------------------------------------------- policy objectives
def random_batch(seed: int, size: int = 256):
    rng = np.random.default_rng(seed)
    old = np.log(rng.uniform(0.05, 0.95, size)).astype(np.float32)
    new = (old + rng.normal(0.0, 0.4, size)).astype(np.float32)  # ratios mostly in [0.5, 2], both sides of the clip
    return new, old, rng.normal(0.5, 2.0, size).astype(np.float32)


def clipped_surrogate(new, old, adv, epsilon, normalize=True) -> float:
    """PPO's policy loss (Schulman et al. 2017, eq. 7), in float64 NumPy."""
    r = np.exp(new.astype(np.float64) - old.astype(np.float64))
    a = adv.astype(np.float64)
    if normalize:
        a = (a - a.mean()) / (a.std() + 1e-8)
    return float(-np.mean(np.minimum(r * a, np.clip(r, 1 - epsilon, 1 + epsilon) * a)))


def test_the_ppo_clip_package_loss_is_ppo_s_clipped_surrogate(tmp_path):
    import jax

    out, module = write_package(tmp_path, "ppo_objectives", "ppo_clip", "clip_objective")
    with imported(out, module) as package:
        new, old, adv = random_batch(0)
        ratios = np.exp(new - old)
        assert (ratios < 0.8).any() and (ratios > 1.2).any()  # the clip is active on both sides
        for normalize in (True, False):
            expected = clipped_surrogate(new, old, adv, 0.2, normalize)
            assert float(package.loss(new, old, adv, normalize=normalize)) == pytest.approx(expected, abs=1e-5)
            jitted = jax.jit(lambda a, b, c: package.loss(a, b, c, normalize=normalize))
            assert float(jitted(new, old, adv)) == pytest.approx(expected, abs=1e-5)
        # Its drift is PPO's, ReLU((r − clip(r, 0.8, 1.2))·A).
        expected_drift = np.maximum((ratios - np.clip(ratios, 0.8, 1.2)) * adv, 0.0)
        np.testing.assert_allclose(np.asarray(package.drift(ratios, adv)), expected_drift, atol=1e-5)
        readme = (out / "README.md").read_text()
        assert f"from {module} import loss" in readme and "_loss_fn" in readme
        run_adapter_tests(out, module)


@pytest.mark.parametrize("space, seed", [("ppo_objectives", "ppo_clip"), ("ppo_objectives", "dpo"),
                                         ("ppo_objectives", "mdpo_kl"), ("temporal_objectives", "annealed_clip")])
def test_at_ratio_one_the_loss_gradient_is_the_vanilla_policy_gradient(space, seed):
    """D(1, A) = 0 and ∂D/∂r(1, A) = 0, so at r = 1 the gradient of the loss with respect to
    the policy's parameters is the REINFORCE gradient −mean(Â ∇log π) (Williams 1992)."""
    import jax
    import jax.numpy as jnp

    loss = Algorithm(seed, space, seed_source(space, seed)).policy_loss()
    extra = {"progress": 0.3, "horizon": 50.0} if space == "temporal_objectives" else {}
    rng = np.random.default_rng(3)
    features = jnp.asarray(rng.normal(size=(64, 6)), jnp.float32)
    actions = jnp.asarray(rng.integers(0, 4, 64))
    adv = jnp.asarray(rng.normal(1.0, 3.0, 64), jnp.float32)
    theta = jnp.asarray(rng.normal(0.0, 0.5, (6, 4)), jnp.float32)

    def log_pi(th):
        return jnp.take_along_axis(jax.nn.log_softmax(features @ th), actions[:, None], axis=1)[:, 0]

    ours = jax.grad(lambda th: loss(log_pi(th), jax.lax.stop_gradient(log_pi(th)), adv, **extra))(theta)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    vanilla = jax.grad(lambda th: -jnp.mean(a * log_pi(th)))(theta)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(vanilla), rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(vanilla).max()) > 1e-2  # a real gradient, not two zeros


def test_the_temporal_package_anneals_the_clip_with_progress(tmp_path):
    out, module = write_package(tmp_path, "temporal_objectives", "annealed_clip", "annealed")
    with imported(out, module) as package:
        new, old, adv = random_batch(1)
        for progress in (0.0, 0.5, 0.9):
            expected = clipped_surrogate(new, old, adv, 0.2 * (1 - progress))
            assert float(package.loss(new, old, adv, progress=progress, horizon=100)) == pytest.approx(expected, abs=1e-5)
        with pytest.raises(ValueError, match="pass progress"):
            package.loss(new, old, adv)
        with pytest.raises(ValueError, match="must have one shape"):
            package.loss(new, old[:10], adv, progress=0.5, horizon=100)
        assert "progress=n / N, horizon=N" in (out / "README.md").read_text()
        run_adapter_tests(out, module)


def python_loop_gae(rewards, values, dones, last_value, gamma, lam):
    """GAE (Schulman et al. 2016, eq. 16) as CleanRL writes it: a backward Python loop, float64."""
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    last = np.zeros(rewards.shape[1])
    for t in reversed(range(steps)):
        next_value = last_value if t == steps - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        adv[t] = last
    return adv, adv + values


def test_the_gae_package_equals_a_python_loop(tmp_path):
    out, module = write_package(tmp_path, "advantage_rules", "gae", "gae_rule")
    rng = np.random.default_rng(4)
    steps, envs = 20, 4
    rewards = rng.normal(size=(steps, envs)).astype(np.float32)
    values = rng.normal(size=(steps, envs)).astype(np.float32)
    dones = (rng.random((steps, envs)) < 0.15).astype(np.float32)
    dones[steps - 1, 0] = 1.0
    last_value = rng.normal(size=envs).astype(np.float32)
    with imported(out, module) as package:
        for gamma, lam in ((0.99, 0.95), (0.9, 0.0), (0.97, 1.0)):
            adv, targets = package.advantages(rewards, values, dones, last_value, gamma, lam)
            ref_adv, ref_targets = python_loop_gae(rewards.astype(np.float64), values.astype(np.float64), dones,
                                                   last_value.astype(np.float64), gamma, lam)
            np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(targets), ref_targets, rtol=1e-5, atol=1e-5)
        assert package.ALGORITHM.advantage_fn().__name__ == "advantages"
        run_adapter_tests(out, module)


# ----------------------------------------------------------------------------- end to end (slow)
INSTALLED_LOSS = """
import json, sys
import numpy as np
from discover.algorithms import load_algorithm

rng = np.random.default_rng(0)
old = np.log(rng.uniform(0.05, 0.95, 128)).astype(np.float32)
new = (old + rng.normal(0.0, 0.4, 128)).astype(np.float32)
adv = rng.normal(0.5, 2.0, 128).astype(np.float32)
loss = load_algorithm(sys.argv[1]).policy_loss()
print(json.dumps({"loss": float(loss(new, old, adv)), "new": new.tolist(), "old": old.tolist(), "adv": adv.tolist()}))
"""


@pytest.mark.slow
def test_export_install_and_use_a_ppo_objective(tmp_path, cli_main):
    """The ppo_clip seed exported from a real store (re-evaluated on the six tasks with one
    8192-step update each: minutes), installed into a fresh virtual environment, passes the
    package's own tests there, and its installed loss is PPO's clipped surrogate."""
    from search_spaces.ppo_objectives import SPACE
    from tests.test_export import _env, _venv

    url = f"sqlite:///{tmp_path / 'run.db'}"
    pid = store_with_seed(url, "ppo_objectives", "ppo_clip", PPO_OPTIONS)
    out = tmp_path / "clip"
    code, stdout, err = cli_main("export", str(pid), "--out", str(out), "--name", "clip-objective", "--db", url,
                                 "--json", "--workers", "2", "--time-limit", "900")
    assert code == 0, err
    meta = json.loads(stdout)["metadata"]
    assert set(meta["scores"]["train"]["tasks"]) == set(SPACE.train_tasks)
    assert set(meta["scores"]["held_out"]["tasks"]) == set(SPACE.held_out_tasks)
    assert all(r["metrics"]["total_timesteps"] == 8192 for r in meta["scores"]["train"]["tasks"].values())

    python = _venv(tmp_path / "venv")
    env = _env()
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(out)], check=True, env=env,
                   timeout=600)
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "tests")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "7 passed" in tests.stdout

    used = subprocess.run([str(python), "-c", INSTALLED_LOSS, "clip_objective"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert used.returncode == 0, used.stderr
    got = json.loads(used.stdout.strip().splitlines()[-1])
    new, old, adv = (np.asarray(got[k], np.float32) for k in ("new", "old", "adv"))
    assert got["loss"] == pytest.approx(clipped_surrogate(new, old, adv, 0.2), abs=1e-5)
