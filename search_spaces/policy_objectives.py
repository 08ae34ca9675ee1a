"""The family of policy-objective spaces: candidates are hooks in ``evaluators.ppo``.

A candidate module supplies either a drift ``D`` (the ``ppo_objectives`` and
``temporal_objectives`` spaces) or an advantage rule (``advantage_rules``); the space turns
it into an ``evaluators.ppo.Objective`` and trains PPO with it. Evaluating one candidate on
one task:

1. compile the source under the name ``<candidate>`` and fetch the required function;
2. check the contract on fixed probe inputs before any training (drifts: D ≥ 0,
   D(1, A) = 0, ∂D/∂r(1, A) = 0, elementwise shapes, finite values; advantage rules:
   shapes and finite values); a violation is an ``invalid`` result that names the check
   and the point where it failed;
3. train ``num_seeds`` seeds in one ``jit(vmap(train))`` call and evaluate each final
   policy on ``eval_episodes`` episodes (sampled actions, run to termination or the time
   limit, see ``evaluators.ppo.evaluate_policy``);
4. score = (R − R_random) / (R_PPO − R_random), where R is the mean evaluation return over
   seeds and episodes, R_PPO the same for PPO (clip 0.2, GAE) trained with the same
   settings on reference seeds, and R_random that of the uniform random policy. A score of
   1 matches PPO and 0 is chance; the affine form keeps the score meaningful on
   negative-return tasks such as Acrobot. The two reference returns are cached on disk.

Probes (behavioural fingerprints for the ε-net) evaluate the candidate on a fixed grid, in
float32 under ``jax.enable_x64(False)`` like training.

Why one file: the harness of one space family (checks, probes, references, scores), which
its three leaves fill.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from discover.space import INVALID, OK, Space, TaskResult, jax_device
# Imported with the space, not at its first evaluation: an executor worker imports the space
# before it snapshots its process state, and importing gymnax sets an environment variable
# (PYGAME_HIDE_SUPPORT_PROMPT), which during a job would make the worker replace itself.
from evaluators import ppo

# Environment steps per seed for each task on a CPU: the purejaxrl budget for the classic
# tasks; MinAtar's 1e7 is cut to what one evaluation can afford here.
DEFAULT_TIMESTEPS: Mapping[str, int] = {
    "CartPole-v1": 500_000,
    "Acrobot-v1": 500_000,
    "Breakout-MinAtar": 1_000_000,
    "SpaceInvaders-MinAtar": 1_000_000,
    "Asterix-MinAtar": 1_000_000,
    "Freeway-MinAtar": 1_000_000,
}
DEFAULT_NUM_SEEDS = 4
TRAIN_TASKS = ("CartPole-v1", "Acrobot-v1", "Breakout-MinAtar")
HELD_OUT_TASKS = ("SpaceInvaders-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar")
OPTIONS = ("total_timesteps", "num_seeds", "eval_episodes")

# Seeds of the PPO reference runs: fixed, so a task's score is one affine map of its return.
REFERENCE_SEED = 0
# Bump when the trainer or the evaluation protocol changes what a cached reference means.
REFERENCE_VERSION = 2
# The score's denominator is at least one unit of return (every task here rewards ±1 per
# event), so a reference that barely beats chance (tiny budgets, a sparse game such as
# Freeway early in training) cannot blow scores up.
MIN_SCORE_SPAN = 1.0

# The probe grid: ratios on both sides of the usual trust region, signed advantages,
# training progress from start to end.
PROBE_RATIOS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0, 1.01, 1.05, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0)
PROBE_ADVANTAGES = (-3.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 3.0)
PROBE_PROGRESS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
PROBE_HORIZON = 1000.0  # N in probes: about CartPole's 976 updates
DRIFT_TOLERANCE = 1e-5  # float32 slack, scaled by max(1, |A|)


class CandidateError(ValueError):
    """The candidate breaks the space's contract; the message says where."""


# ----------------------------------------------------------------------------- loading
def load_namespace(source: str) -> dict[str, Any]:
    """Executes a candidate's source under the file name ``<candidate>`` (the sandbox
    polices code compiled under such names) and returns its namespace."""
    namespace: dict[str, Any] = {"__name__": "candidate"}
    exec(compile(source, "<candidate>", "exec"), namespace)
    return namespace


def function(namespace: Mapping[str, Any], name: str) -> Callable:
    fn = namespace.get(name)
    if not callable(fn):
        raise CandidateError(f"the candidate does not define {name!r} (a function at top level)")
    return fn


# ----------------------------------------------------------------------------- drift checks
def probe_grid() -> tuple[np.ndarray, np.ndarray]:
    """Flattened ``(ratio, advantage)`` grid, float32, ``len(PROBE_RATIOS)·len(PROBE_ADVANTAGES)``."""
    r, a = np.meshgrid(np.asarray(PROBE_RATIOS, np.float32), np.asarray(PROBE_ADVANTAGES, np.float32),
                       indexing="ij")
    return r.ravel(), a.ravel()


def _call_drift(drift4: ppo.DriftFn, ratio, advantage, progress: float, horizon: float) -> np.ndarray:
    # Under jit, as in training: the candidate is only traced, and compilation (with its
    # compilation-cache writes) happens in harness code, not while candidate code runs.
    out = jax.jit(drift4)(jnp.asarray(ratio, jnp.float32), jnp.asarray(advantage, jnp.float32),
                          jnp.float32(progress), jnp.float32(horizon))
    try:
        out = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CandidateError(f"drift returned something that is not a numeric array ({e})") from None
    if out.shape != np.shape(ratio):
        raise CandidateError(f"drift must return one value per sample: got shape {out.shape} "
                             f"for inputs of shape {np.shape(ratio)}")
    return out


def check_drift(drift4: ppo.DriftFn, progresses=(0.0,), horizon: float = PROBE_HORIZON) -> None:
    """Raises ``CandidateError`` naming the first failed drift check and where it failed.

    Checks on the probe grid, for each progress value: finite values of the right shape;
    D ≥ 0; D(1, A) = 0; ∂D/∂r(1, A) = 0 (``jax.grad`` of the summed drift with respect to
    the ratios). Tolerance ``DRIFT_TOLERANCE·max(1, |A|)`` absorbs float32 rounding.
    (Kuba et al. 2022, mirror learning: these make r·A − D a valid drift objective.)
    """
    ratio, adv = probe_grid()
    tol = DRIFT_TOLERANCE * np.maximum(1.0, np.abs(adv))
    ones = np.ones_like(np.asarray(PROBE_ADVANTAGES, np.float32))
    at_one = np.asarray(PROBE_ADVANTAGES, np.float32)
    tol_one = DRIFT_TOLERANCE * np.maximum(1.0, np.abs(at_one))
    slope = jax.jit(jax.grad(lambda r, a, p, n: jnp.sum(drift4(r, a, p, n))))
    with jax.enable_x64(False):
        for p in progresses:
            where = f", progress {p:g}" if len(progresses) > 1 else ""
            d = _call_drift(drift4, ratio, adv, p, horizon)
            bad = ~np.isfinite(d)
            if bad.any():
                i = int(np.argmax(bad))
                raise CandidateError(f"drift check failed: D is not finite at r = {ratio[i]:g}, A = {adv[i]:g}{where}")
            neg = d < -tol
            if neg.any():
                i = int(np.argmin(d + tol))
                raise CandidateError(f"drift check failed: D ≥ 0 violated, D = {d[i]:.4g} at r = {ratio[i]:g}, "
                                     f"A = {adv[i]:g}{where}")
            d1 = _call_drift(drift4, ones, at_one, p, horizon)
            off = np.abs(d1) > tol_one
            if off.any():
                i = int(np.argmax(np.abs(d1) - tol_one))
                raise CandidateError(f"drift check failed: D(1, A) = 0 violated, D = {d1[i]:.4g} at A = {at_one[i]:g}{where}")
            grad = slope(jnp.asarray(ones), jnp.asarray(at_one), jnp.float32(p), jnp.float32(horizon))
            grad = np.asarray(grad, np.float64)
            if not np.all(np.isfinite(grad)):
                i = int(np.argmax(~np.isfinite(grad)))
                raise CandidateError(f"drift check failed: ∂D/∂r at r = 1 is not finite at A = {at_one[i]:g}{where}")
            steep = np.abs(grad) > tol_one
            if steep.any():
                i = int(np.argmax(np.abs(grad) - tol_one))
                raise CandidateError(f"drift check failed: ∂D/∂r(1, A) = 0 violated, ∂D/∂r = {grad[i]:.4g} "
                                     f"at A = {at_one[i]:g}{where}")


def drift_fingerprint(drift4: ppo.DriftFn, progresses=(0.0,)) -> np.ndarray:
    """D on the probe grid for each progress value, flattened (float64)."""
    ratio, adv = probe_grid()
    with jax.enable_x64(False):
        parts = [_call_drift(drift4, ratio, adv, p, PROBE_HORIZON) for p in progresses]
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- advantage checks
def advantage_probe_inputs(settings=((0.99, 0.95), (0.9, 0.5))):
    """Fixed synthetic rollouts for advantage rules: ``T = 16`` steps × ``E = 3`` envs with
    episode ends, sparse and dense rewards; one tuple
    ``(rewards, values, dones, last_value, gamma, lam)`` per ``(γ, λ)`` setting."""
    rng = np.random.default_rng(20240611)
    T, E = 16, 3
    rewards = np.stack([np.ones(T), (rng.random(T) < 0.2).astype(float), rng.normal(size=T)], 1)
    values = rng.normal(size=(T, E)) * 2.0
    dones = np.zeros((T, E))
    dones[[4, 11], 0] = 1.0
    dones[9, 1] = 1.0
    dones[T - 1, 2] = 1.0
    last_value = rng.normal(size=E)
    f32 = lambda x: np.asarray(x, np.float32)
    return [(f32(rewards), f32(values), f32(dones), f32(last_value), g, l) for g, l in settings]


def run_advantage_rule(rule: Callable, rewards, values, dones, last_value, gamma, lam) -> tuple[np.ndarray, np.ndarray]:
    """Calls an advantage rule in float32 and checks its outputs: a pair of finite
    ``[T, E]`` arrays. Raises ``CandidateError`` otherwise."""
    with jax.enable_x64(False):
        # Under jit, as in training (see _call_drift); γ and λ are constants, as there.
        out = jax.jit(rule, static_argnums=(4, 5))(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones),
                                                   jnp.asarray(last_value), gamma, lam)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise CandidateError(f"advantages must return a pair (advantages, targets), got {type(out).__name__}")
        arrays = []
        for name, x in zip(("advantages", "targets"), out):
            try:
                x = np.asarray(x, np.float64)
            except (TypeError, ValueError) as e:
                raise CandidateError(f"{name} is not a numeric array ({e})") from None
            if x.shape != np.shape(rewards):
                raise CandidateError(f"{name} has shape {x.shape}, expected [T, E] = {np.shape(rewards)}")
            if not np.all(np.isfinite(x)):
                raise CandidateError(f"{name} has NaN or infinite values on the probe rollout")
            arrays.append(x)
    return arrays[0], arrays[1]


# ----------------------------------------------------------------------------- reference cache
def cache_root() -> Path:
    return Path(os.environ.get("DISCOVER_CACHE", "runs/cache"))


COMPILATION_CACHE_BYTES = 2 * 1024 ** 3


def _prune(directory: Path, max_bytes: int) -> None:
    """Deletes the least recently modified files of ``directory`` until it holds at most
    ``max_bytes``."""
    files = []
    for f in directory.iterdir():
        try:
            st = f.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, f))
    total = sum(size for _, size, _ in files)
    for _, size, f in sorted(files, key=lambda x: x[0]):
        if total <= max_bytes:
            break
        try:
            f.unlink()
            total -= size
        except OSError:
            pass


def enable_compilation_cache() -> None:
    """Points JAX's persistent compilation cache at ``<cache root>/jax`` unless the process
    already uses one. Re-evaluating a program on new seeds, and every program that compiles
    to the reference's computation, then skips compilation (measured: a tiny CartPole run,
    6.9 s cold, 1.5 s warm).

    Written for the sandboxed executor, which refuses file writes made while candidate code
    is on the stack and replaces a worker whose ``jax.config`` changed during a job:
    - called when this module is imported, i.e. before a worker snapshots its state;
    - ``jax.config`` rather than ``JAX_COMPILATION_CACHE_DIR``, which child processes would
      inherit although a worker's writable cache directory may differ from its parent's;
    - the cache is opened here (one trivial compilation), in harness code, so its directory
      is not created on the first compilation, which may come from candidate code;
    - JAX's own size limit is left off: with it, every cache lookup (every compilation,
      candidate-triggered ones included) takes a lock file. Instead the directory is pruned
      here to ``COMPILATION_CACHE_BYTES``, oldest files first. Only compilations of at least
      a second are stored, and the evaluator's happen outside candidate code.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    directory = (cache_root() / "jax").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _prune(directory, COMPILATION_CACHE_BYTES)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.jit(jnp.negative)(1.0).block_until_ready()


def _reference_path(config: ppo.PPOConfig, num_seeds: int) -> Path:
    import gymnax  # already imported by evaluators.ppo
    ident = {"config": dataclasses.asdict(config), "num_seeds": num_seeds, "seed": REFERENCE_SEED,
             "version": REFERENCE_VERSION, "jax": jax.__version__,
             "gymnax": getattr(gymnax, "__version__", "1.0.1")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    name = f"{config.env_name}-{config.total_timesteps}-{num_seeds}seeds-{digest}.json"
    return cache_root() / "ppo_reference" / name


def reference_returns(config: ppo.PPOConfig, num_seeds: int) -> dict[str, float]:
    """``{"ppo": R_PPO, "random": R_random}`` for ``config``, from the disk cache or computed
    (PPO with ``evaluators.ppo.PPO`` on seeds ``split(PRNGKey(REFERENCE_SEED), num_seeds)``;
    the random policy on ``num_seeds·eval_episodes`` episodes) and cached atomically."""
    path = _reference_path(config, num_seeds)
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            return {"ppo": float(cached["ppo"]), "random": float(cached["random"])}
        except (ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    enable_compilation_cache()
    out = ppo.train_seeds(config, ppo.PPO, seed=REFERENCE_SEED, num_seeds=num_seeds)
    with jax.enable_x64(False):
        rand = jax.jit(ppo.random_policy_returns, static_argnums=(0, 2), compiler_options=dict(ppo.COMPILER_OPTIONS))(
            config.env_name, jax.random.PRNGKey(REFERENCE_SEED), num_seeds * config.eval_episodes)
    result = {"ppo": float(np.mean(out.eval_returns)), "random": float(np.mean(rand))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**result, "env": config.env_name, "total_timesteps": config.total_timesteps,
                               "num_seeds": num_seeds, "eval_episodes": config.eval_episodes}))
    tmp.replace(path)
    return result


def normalized_score(mean_return: float, reference: Mapping[str, float]) -> float:
    """(R − R_random) / (R_PPO − R_random), the denominator floored at ``MIN_SCORE_SPAN``
    (so a PPO that does not beat chance cannot blow the score up)."""
    span = reference["ppo"] - reference["random"]
    return (mean_return - reference["random"]) / max(span, MIN_SCORE_SPAN)


def return_metrics(eval_returns: np.ndarray, reference: Mapping[str, float], config: ppo.PPOConfig,
                   train_seconds: float) -> dict[str, float]:
    """The metrics of one evaluation from the final policies' episode returns
    ``[num_seeds, episodes]``: ``score`` (``normalized_score``), ``mean_return``,
    ``return_std_over_seeds``, ``min_seed_return``, the reference returns, the budget."""
    returns = np.asarray(eval_returns, dtype=np.float64)
    per_seed = returns.mean(axis=1)
    mean_return = float(np.mean(returns))
    return {
        "score": normalized_score(mean_return, reference),
        "mean_return": mean_return,
        "return_std_over_seeds": float(np.std(per_seed)),
        "min_seed_return": float(np.min(per_seed)),
        "ppo_return": reference["ppo"],
        "random_return": reference["random"],
        "total_timesteps": float(config.num_updates * config.batch_size),
        "num_seeds": float(returns.shape[0]),
        "train_seconds": train_seconds,
    }


def learning_curve(metrics: Mapping[str, np.ndarray], max_points: int = 200) -> list[list[float]]:
    """``[[env_steps, mean_return], ...]``: per update, the mean over seeds of the mean
    return of episodes that ended during that update (updates where none ended are left
    out), thinned to at most ``max_points`` evenly spaced updates."""
    returns = np.asarray(metrics["mean_return"], np.float64)        # [S, N]
    steps = np.asarray(metrics["env_steps"], np.float64)[0]         # [N]
    have = np.isfinite(returns)
    counts = have.sum(0)
    means = np.where(counts > 0, np.where(have, returns, 0.0).sum(0) / np.maximum(counts, 1), np.nan)
    keep = np.flatnonzero(counts > 0)
    if len(keep) > max_points:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, max_points).round().astype(int))]
    return [[float(steps[i]), float(means[i])] for i in keep]


# ----------------------------------------------------------------------------- the family
class PolicyObjectiveSpace(Space):
    """Base of the three policy-objective spaces; leaves say how a namespace becomes an
    ``Objective`` (``objective``), what to check before training (``check``) and how to
    fingerprint it (``probe``)."""

    harness_modules = ("discover.space", "search_spaces.policy_objectives", "evaluators.ppo")

    train_tasks = TRAIN_TASKS
    held_out_tasks = HELD_OUT_TASKS
    stochastic = True

    def objective(self, namespace: Mapping[str, Any]) -> ppo.Objective:
        raise NotImplementedError

    def check(self, namespace: Mapping[str, Any], config: ppo.PPOConfig) -> None:
        """Raises ``CandidateError`` if the candidate breaks the contract on the probes."""
        raise NotImplementedError

    def task_config(self, task: str, options: Mapping[str, Any]) -> tuple[ppo.PPOConfig, int]:
        """``(PPOConfig, num_seeds)`` of ``task`` with the evaluation options applied."""
        if task not in DEFAULT_TIMESTEPS:
            raise ValueError(f"unknown task {task!r} for space {self.name}; tasks are "
                             f"{', '.join(DEFAULT_TIMESTEPS)}")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for space {self.name}; "
                             f"options are {', '.join(OPTIONS)}")
        overrides = {"total_timesteps": int(options.get("total_timesteps", DEFAULT_TIMESTEPS[task]))}
        if "eval_episodes" in options:
            overrides["eval_episodes"] = int(options["eval_episodes"])
        num_seeds = int(options.get("num_seeds", DEFAULT_NUM_SEEDS))
        if num_seeds < 1:
            raise ValueError(f"num_seeds must be a positive integer, got {options.get('num_seeds')!r}")
        return ppo.PPOConfig.for_env(task, **overrides), num_seeds

    def evaluate(self, source: str, task: str, seed: int = 0, **options: Any) -> TaskResult:
        start = time.perf_counter()
        config, num_seeds = self.task_config(task, options)
        enable_compilation_cache()
        namespace = load_namespace(source)
        try:
            self.check(namespace, config)
            objective = self.objective(namespace)
        except CandidateError as e:
            return TaskResult.failure(INVALID, str(e), time.perf_counter() - start)
        out = ppo.train_seeds(config, objective, seed=seed, num_seeds=num_seeds)
        loss = np.asarray(out.metrics["policy_loss"])
        if not np.all(np.isfinite(loss)) or not np.all(np.isfinite(out.eval_returns)):
            bad = np.argwhere(~np.isfinite(loss))
            where = f" (first at update {int(bad[0][1])} of seed {int(bad[0][0])})" if len(bad) else ""
            return TaskResult.failure(INVALID, f"training diverged: non-finite policy loss or returns{where}",
                                      time.perf_counter() - start)
        train_time = time.perf_counter() - start
        metrics = return_metrics(out.eval_returns, reference_returns(config, num_seeds), config, train_time)
        return TaskResult(status=OK, metrics=metrics, curve=learning_curve(out.metrics),
                          wall_time=time.perf_counter() - start, device=jax_device())


class DriftSpace(PolicyObjectiveSpace):
    """Leaves whose candidate is a drift; ``drift4`` adapts it to the trainer's
    ``D(ratio, advantage, progress, horizon)``; ``progresses`` are the probe's n/N values."""

    required_functions = ("drift",)
    progresses: tuple[float, ...] = (0.0,)
    temporal = False      # True where the drift takes (ratio, advantage, progress, horizon)
    learned_drift = True  # discover meta-train can learn an LPO drift network for it

    def drift4(self, namespace: Mapping[str, Any]) -> ppo.DriftFn:
        raise NotImplementedError

    def objective(self, namespace):
        return ppo.Objective(drift=self.drift4(namespace), advantages=ppo.gae)

    def check(self, namespace, config):
        check_drift(self.drift4(namespace), self.progresses, float(config.num_updates))

    def probe(self, namespace):
        return drift_fingerprint(self.drift4(namespace), self.progresses)


# At import, so that an executor worker's snapshot of its process state already includes it.
enable_compilation_cache()
