"""The policy-objective spaces: seeds, contract checks, probes and tiny evaluations."""

import math
import os
import time

import numpy as np
import pytest

from discover.checks import static_check
from discover.space import Space, TaskResult
from evaluators import ppo
from search_spaces.policy_objectives import (CandidateError, check_drift, learning_curve, load_namespace,
                                 normalized_score)
from search_spaces.advantage_rules import SPACE as ADVANTAGE_RULES
from search_spaces.ppo_objectives import SPACE as PPO_OBJECTIVES
from search_spaces.temporal_objectives import SPACE as TEMPORAL_OBJECTIVES

SPACES = {s.name: s for s in (PPO_OBJECTIVES, TEMPORAL_OBJECTIVES, ADVANTAGE_RULES)}
EXPECTED_SEEDS = {
    "ppo_objectives": {"ppo_clip", "dpo", "mdpo_kl"},
    "temporal_objectives": {"ppo_clip", "annealed_clip"},
    "advantage_rules": {"gae", "monte_carlo"},
}
# The seeds that compute exactly what the PPO reference computes (clip 0.2 with GAE).
PPO_EQUIVALENT = {("ppo_objectives", "ppo_clip"), ("temporal_objectives", "ppo_clip"), ("advantage_rules", "gae")}
TINY = dict(total_timesteps=512, num_seeds=1, eval_episodes=2)
CARTPOLE = ppo.PPOConfig.for_env("CartPole-v1")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """One on-disk reference cache for the module, away from the user's runs/."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DISCOVER_CACHE", str(tmp_path_factory.mktemp("discover_cache")))
    yield
    mp.undo()


def _drift_source(body: str, temporal: bool = False) -> str:
    args = "ratio, advantage, progress, horizon" if temporal else "ratio, advantage"
    return f"import jax\nimport jax.numpy as jnp\n\n\ndef drift({args}):\n    return {body}\n"


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", sorted(SPACES))
def test_space_declares_its_contract(name):
    space = SPACES[name]
    assert isinstance(space, Space) and space.name == name
    assert space.stochastic
    assert set(space.train_tasks) == {"CartPole-v1", "Acrobot-v1", "Breakout-MinAtar"}
    assert set(space.held_out_tasks) == {"SpaceInvaders-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar"}
    assert not set(space.train_tasks) & set(space.held_out_tasks)
    for fn in space.required_functions:
        assert f"def {fn}(" in space.doc
    assert set(space.seeds()) == EXPECTED_SEEDS[name]


@pytest.mark.parametrize("name", sorted(SPACES))
def test_mechanisms_pass_the_static_checks(name):
    space = SPACES[name]     # the seeds' checks: tests/test_space_contract.py
    for mech, source in space.mechanisms.items():
        assert static_check(source, space), mech
        space.check(load_namespace(source), CARTPOLE)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_seeds_pass_the_contract_and_have_distinct_fingerprints(name):
    space = SPACES[name]
    prints = {}
    for seed, source in space.seeds().items():
        namespace = load_namespace(source)
        space.check(namespace, CARTPOLE)
        fp = space.probe(namespace)
        assert fp.ndim == 1 and np.all(np.isfinite(fp)), seed
        np.testing.assert_array_equal(fp, space.probe(load_namespace(source)))
        prints[seed] = fp
    sizes = {fp.size for fp in prints.values()}
    assert len(sizes) == 1
    names = sorted(prints)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.array_equal(prints[a], prints[b]), (a, b)


def test_fingerprint_ignores_names_and_formatting():
    a = _drift_source("jax.nn.relu((ratio - jnp.clip(ratio, 0.8, 1.2)) * advantage)")
    b = ("import jax.numpy as np_\nimport jax\n\nEPS = 0.2\n\n\ndef drift(r, adv):\n"
         "    lo, hi = 1.0 - EPS, 1.0 + EPS\n    return jax.nn.relu((r - np_.clip(r, lo, hi)) * adv)\n")
    np.testing.assert_array_equal(PPO_OBJECTIVES.probe(load_namespace(a)), PPO_OBJECTIVES.probe(load_namespace(b)))


# ----------------------------------------------------------------------------- drift checks
def test_dpo_drift_passes_the_drift_checks():
    dpo = load_namespace(PPO_OBJECTIVES.seeds()["dpo"])["drift"]
    check_drift(lambda r, a, p, n: dpo(r, a))
    # DPO's published form: at r = 1.5, A = 1, D = relu(0.5 − 2·tanh(0.25)).
    fp = PPO_OBJECTIVES.probe(load_namespace(PPO_OBJECTIVES.seeds()["dpo"]))
    ratios, advs = np.meshgrid([0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0, 1.01, 1.05, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0],
                               [-3.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 3.0], indexing="ij")
    i = np.flatnonzero((ratios.ravel() == 1.5) & (advs.ravel() == 1.0))[0]
    assert fp[i] == pytest.approx(max(0.0, 0.5 - 2.0 * math.tanh(0.25)), abs=1e-6)
    # A < 0 branch: r = 0.5, A = −1: log(r)·A = log 2; D = relu(log 2 − 0.6·tanh(log 2 / 0.6)).
    j = np.flatnonzero((ratios.ravel() == 0.5) & (advs.ravel() == -1.0))[0]
    assert fp[j] == pytest.approx(math.log(2) - 0.6 * math.tanh(math.log(2) / 0.6), abs=1e-6)


@pytest.mark.parametrize("body, message", [
    ("0.1 * jnp.abs(advantage) + jax.nn.relu((ratio - jnp.clip(ratio, 0.8, 1.2)) * advantage)", "D(1, A) = 0"),
    ("(ratio - 1.0) ** 2 * advantage", "D ≥ 0"),
    ("jnp.abs(ratio - 1.0) * 0.5 + 0.5 * (ratio - 1.0)", "∂D/∂r(1, A) = 0"),
    ("jnp.sum((ratio - 1.0) ** 2)", "one value per sample"),
    ("jnp.log(ratio - 0.5) ** 2 * 0.0 + (ratio - 1.0) ** 2", "not finite"),
])
def test_invalid_drifts_are_rejected_before_training(body, message):
    # 1e9 steps would take hours: a quick answer proves no training ran.
    start = time.perf_counter()
    result = PPO_OBJECTIVES.evaluate(_drift_source(body), "CartPole-v1", total_timesteps=10**9)
    assert result.status == "invalid"
    assert message in result.error
    assert time.perf_counter() - start < 10.0


def test_temporal_drift_is_checked_at_every_progress():
    body = "jax.nn.relu((ratio - jnp.clip(ratio, 0.8, 1.2)) * advantage) + jnp.where(progress > 0.6, 0.1, 0.0)"
    result = TEMPORAL_OBJECTIVES.evaluate(_drift_source(body, temporal=True), "CartPole-v1", total_timesteps=10**9)
    assert result.status == "invalid"
    assert "D(1, A) = 0" in result.error and "progress 0.75" in result.error


def test_missing_function_and_bad_advantage_rules_are_invalid():
    missing = PPO_OBJECTIVES.evaluate("def objective(ratio, advantage):\n    return ratio\n", "CartPole-v1")
    assert missing.status == "invalid" and "does not define 'drift'" in missing.error
    scalar = ("import jax.numpy as jnp\n\ndef advantages(rewards, values, dones, last_value, gamma, lam):\n"
              "    return rewards.mean(), values\n")
    result = ADVANTAGE_RULES.evaluate(scalar, "CartPole-v1", total_timesteps=10**9)
    assert result.status == "invalid" and "advantages has shape ()" in result.error
    nan = ("import jax.numpy as jnp\n\ndef advantages(rewards, values, dones, last_value, gamma, lam):\n"
           "    return rewards / 0.0 * 0.0, values\n")
    assert "NaN" in ADVANTAGE_RULES.evaluate(nan, "CartPole-v1").error
    with pytest.raises(CandidateError):
        ADVANTAGE_RULES.probe(load_namespace(scalar))


def test_unknown_task_and_option_are_clear_errors():
    src = PPO_OBJECTIVES.seeds()["ppo_clip"]
    with pytest.raises(ValueError, match="unknown task 'Pong'"):
        PPO_OBJECTIVES.evaluate(src, "Pong")
    with pytest.raises(ValueError, match="unknown option"):
        PPO_OBJECTIVES.evaluate(src, "CartPole-v1", iterations=3)


# ----------------------------------------------------------------------------- scoring helpers
def test_normalized_score_is_affine_between_random_and_ppo():
    ref = {"ppo": 480.0, "random": 20.0}
    assert normalized_score(480.0, ref) == 1.0
    assert normalized_score(20.0, ref) == 0.0
    assert normalized_score(250.0, ref) == pytest.approx(0.5)
    # Acrobot: negative returns, PPO about −80, random −500.
    acro = {"ppo": -80.0, "random": -500.0}
    assert normalized_score(-80.0, acro) == pytest.approx(1.0)
    assert normalized_score(-290.0, acro) == pytest.approx(0.5)
    # A reference no better than chance cannot blow the score up: the span is at least 1.
    assert normalized_score(25.0, {"ppo": 20.0, "random": 20.0}) == 5.0
    assert normalized_score(3.0, {"ppo": 0.2, "random": 0.0}) == 3.0


def test_learning_curve_skips_updates_without_episodes_and_thins():
    metrics = {"mean_return": np.array([[np.nan, 10.0, np.nan, 30.0], [np.nan, 20.0, 5.0, np.nan]]),
               "env_steps": np.array([[512, 1024, 1536, 2048]] * 2)}
    assert learning_curve(metrics) == [[1024.0, 15.0], [1536.0, 5.0], [2048.0, 30.0]]
    long = {"mean_return": np.arange(1000.0)[None], "env_steps": np.arange(1, 1001)[None] * 512}
    curve = learning_curve(long, max_points=50)
    assert len(curve) == 50 and curve[0] == [512.0, 0.0] and curve[-1] == [512000.0, 999.0]


# ----------------------------------------------------------------------------- tiny evaluations
@pytest.mark.parametrize("name, seed", sorted((n, s) for n, seeds in EXPECTED_SEEDS.items() for s in seeds))
def test_every_seed_evaluates_ok_at_tiny_size(name, seed):
    space = SPACES[name]
    result = space.evaluate(space.seeds()[seed], "CartPole-v1", seed=0, **TINY)
    assert result.ok, result.error
    m = result.metrics
    assert math.isfinite(m["score"]) and 8.0 <= m["mean_return"] <= 500.0
    assert m["total_timesteps"] == 512 and m["num_seeds"] == 1
    assert all(len(p) == 2 and p[0] == 512 for p in result.curve)
    if (name, seed) in PPO_EQUIVALENT:
        # Same computation and the same keys as the cached PPO reference (the score is 1
        # wherever PPO beats chance by more than the floor of the score's span).
        assert m["mean_return"] == m["ppo_return"]
        ref = {"ppo": m["ppo_return"], "random": m["random_return"]}
        assert m["score"] == normalized_score(m["ppo_return"], ref)


# ----------------------------------------------------------------------------- in the executor
class _WorkerPid(Space):
    """Reports the worker's process id (as its error text)."""

    name = "worker_pid"

    def evaluate(self, source, task, seed=0, **options):
        return TaskResult(status="error", error=str(os.getpid()))


WORKER_PID = _WorkerPid()


@pytest.mark.slow  # ~25 s: a worker imports JAX, gymnax and flax, then compiles three programs
def test_evaluations_run_in_the_sandboxed_executor_and_keep_their_worker(tmp_path):
    # The sandbox refuses writes made while candidate code runs and replaces a worker whose
    # process state changed during a job; neither may happen to a plain evaluation, even of a
    # candidate that computes with JAX when its module is loaded.
    from discover.isolation.executor import Job, LocalExecutor
    source = _drift_source("jax.nn.relu((ratio - jnp.clip(ratio, 1.0 - EPS, 1.0 + EPS)) * advantage)").replace(
        "\n\n\ndef", "\n\nEPS = jnp.float32(0.2) * jnp.ones(())\n\n\ndef")
    with LocalExecutor(workers=1, time_limit=600, memory_limit_mb=6144, cache_dirs=[str(tmp_path)]) as ex:
        pid = ex.submit(Job(space="test_rl_spaces:WORKER_PID", source="", task="-")).result().error
        results = [ex.submit(Job(space="ppo_objectives", source=source, task="CartPole-v1", seed=s,
                                 options=TINY)).result() for s in (0, 1)]
        probe = ex.submit(Job(space="ppo_objectives", source=source, task="", kind="probe")).result()
        pid_after = ex.submit(Job(space="test_rl_spaces:WORKER_PID", source="", task="-")).result().error
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    m = results[0].metrics
    assert m["mean_return"] == m["ppo_return"]  # the clip objective with seed 0 is the reference
    assert probe.ok and len(probe.curve[0]) == 176
    assert pid == pid_after
    assert any((tmp_path / "jax").iterdir()) and any((tmp_path / "ppo_reference").iterdir())
