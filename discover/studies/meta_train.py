"""Meta-training an LPO-style drift network with an evolution strategy, stored as a lineage.

Learned Policy Optimisation (Lu, Kuba, Letcher, Metz, Schroeder de Witt, Foerster,
"Discovered Policy Optimisation", NeurIPS 2022) meta-learns PPO's drift with an evolution
strategy over a small network; here the network is ``evaluators.lpo`` (every parameter
vector a valid drift, zero output layer = PPO) and the strategy is OpenAI-ES (Salimans,
Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", 2017) from evosax 0.3 (``evosax.algorithms.Open_ES``).

One generation g, starting from the ES mean m_g:
1. the ES samples ``popsize`` antithetic perturbations m_g ± σ·z (``ask``);
2. the population and the mean itself (popsize + 1 drifts) are trained on every task in
   ONE compiled ``jit(vmap(vmap(train)))`` call over members × seeds. All members share
   the generation's seed keys ``split(PRNGKey(generation_seed(seed, g)), num_seeds)``
   (common random numbers: the members differ only by their drift), and every generation
   has new keys;
3. inside that call, a member's fitness is the space's score averaged over tasks: per
   task (R − R_random) / max(R_PPO − R_random, 1), R the mean return of the trainer's final
   evaluation over seeds and episodes, R_PPO and R_random the space's cached references
   (``search_spaces.policy_objectives.reference_returns``); a member whose training produced a
   non-finite loss or return gets the worst fitness;
4. the mean m_g is rendered as a program of the space (``evaluators.lpo.render_program``)
   and stored with parent m_{g−1}, one train evaluation per task and its score. The
   ``TaskResult`` has the metrics and curve the space's own ``evaluate`` records, computed
   the same way from the same keys as ``SPACE.evaluate(program, task,
   seed=generation_seed(seed, g), total_timesteps=..., num_seeds=...)``; training inside
   the population's batch only changes float rounding (batched matrix products), which a
   long RL run can amplify: PPO on CartPole, 1e5 steps, 2 seeds returned 240.25 inside a
   9-member batch and 260.02 alone (docs/meta_train.md);
5. the ES moves its mean with the centred-rank-shaped fitness (``tell``; evosax
   minimises, so it is told −fitness) by plain SGD at ``learning_rate``.
A run of G generations makes G ES updates and evaluates G + 1 generations: the last one,
g = G, trains and stores the final mean m_G in a batch like the others (its population is
trained and reported but updates nothing), so every stored mean is evaluated by the same
compiled call and a run extended later recomputes it bit for bit. G + 1 programs are
stored, PPO first.

Resuming: OpenES with plain SGD and a constant σ has no state beyond its mean (the optimiser
state is empty, σ does not change, the best-so-far record does not steer it), and every key
is a function of (seed, generation). So a run continued under the same name restarts from
the last stored mean — read back bit for bit from its program — at that mean's
generation, and computes exactly what the uninterrupted run would have. Nothing else is
stored. A generation interrupted after its mean was stored is recomputed in full.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from discover.engine import evaluation
from discover.engine.evaluation import TRAIN
from discover.space import INVALID, OK, TaskResult, jax_device

# A space meta-train can learn for declares ``learned_drift = True`` (its candidate is a
# drift the LPO network can express) and ``temporal`` (the drift sees training progress).


def is_drift_space(space) -> bool:
    """Whether meta-train can learn an LPO drift network for ``space``."""
    return bool(getattr(space, "learned_drift", False))


def _drift_space(name: str):
    from discover.spaces import UnknownSpace, default_space_name, get_space
    try:
        space = get_space(name) if name else get_space(default_space_name(is_drift_space))
    except UnknownSpace as e:
        raise ValueError(str(e)) from None
    if not is_drift_space(space):
        raise ValueError(f"meta-train learns drift networks; space {space.name!r} has no drift candidate "
                         "(a space declares learned_drift = True for that)")
    return space
METHODS = ("openes",)
MAX_SEED = 200_000
MAX_GENERATIONS = 9_999


def generation_seed(seed: int, generation: int) -> int:
    """The integer seed of generation ``generation``'s training keys: ``seed·10⁴ + g``.

    It is an evaluation seed of the space: ``SPACE.evaluate(program, task, seed=...)`` with
    it trains on the same keys. Kept below 2³¹ because ``jax.random.PRNGKey`` silently
    keeps only the low 32 bits of larger seeds when 64-bit JAX is off.
    """
    return int(seed) * 10_000 + int(generation)


# ----------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """The settings of one meta-train run (stored as the run's config).

    Attributes:
      space: a drift space (``is_drift_space``), e.g. ``ppo_objectives`` or
        ``temporal_objectives``; empty for the first one installed.
      method: the evolution strategy; ``openes``.
      generations: ES updates; G + 1 means are stored (m_0 = PPO … m_G).
      popsize: perturbations per generation (even: antithetic pairs).
      sigma: standard deviation of the perturbations (constant).
      learning_rate: SGD step on the mean.
      tasks: gymnax environments (``evaluators.ppo.ENVS``); fitness is the mean score.
      total_timesteps: environment steps per seed of every training run.
      num_seeds: training seeds per member and task.
      seed: seeds the network's hidden layer, the ES noise and the training keys.
    """

    space: str = ""
    method: str = "openes"
    generations: int = 5
    popsize: int = 8
    sigma: float = 0.5
    learning_rate: float = 0.1
    tasks: tuple[str, ...] = ("CartPole-v1",)
    total_timesteps: int = 100_000
    num_seeds: int = 2
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "space", _drift_space(self.space).name)
        if self.method not in METHODS:
            raise ValueError(f"unknown meta-train method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name, low, high in (("generations", 1, MAX_GENERATIONS), ("popsize", 2, None),
                                ("num_seeds", 1, None), ("total_timesteps", 1, None), ("seed", 0, MAX_SEED - 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
                bound = f"between {low} and {high}" if high is not None else f"an integer >= {low}"
                raise ValueError(f"{name} must be {bound}, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.popsize % 2:
            raise ValueError(f"popsize must be even (OpenES samples antithetic pairs), got {self.popsize}")
        for name in ("sigma", "learning_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
            object.__setattr__(self, name, float(v))
        tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        if not tasks:
            raise ValueError("meta-train needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks are listed twice: {', '.join(tasks)}")
        object.__setattr__(self, "tasks", tasks)
        self.ppo_configs()  # unknown tasks and too-small budgets fail here

    @property
    def temporal(self) -> bool:
        from discover.spaces import get_space
        return bool(getattr(get_space(self.space), "temporal", False))

    def ppo_configs(self):
        from evaluators import ppo
        return tuple(ppo.PPOConfig.for_env(t, total_timesteps=self.total_timesteps) for t in self.tasks)

    def to_json(self) -> dict[str, Any]:
        """The run's stored config: these fields, the fixed ES and network choices, and
        ``eval_options`` (read by ``discover export`` to re-evaluate at the same budget)."""
        from evaluators import lpo
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        d.update(kind="meta-train", optimizer="sgd", fitness_shaping="centered_rank", antithetic=True,
                 network={"features": list(lpo.TEMPORAL_FEATURES if self.temporal else lpo.FEATURES),
                          "hidden": lpo.HIDDEN, "outputs": ["log_scale_of_clip_term", "quadratic_penalty"],
                          "epsilon": lpo.EPSILON, "num_params": lpo.num_params(self.temporal)},
                 eval_options={"total_timesteps": self.total_timesteps, "num_seeds": self.num_seeds})
        return d


@dataclasses.dataclass(frozen=True)
class GenerationReport:
    """What one generation did (handed to ``progress`` as it finishes).

    Attributes:
      generation: g; the final mean has g = G and ``final=True``.
      program_id: the stored program of the mean m_g.
      mean_score: m_g's score (the space's score, mean over tasks); None if it failed.
      population_mean / population_best: mean and best fitness of the perturbed members
        that trained without failing (NaN if none did).
      invalid_members: members whose training gave a non-finite loss or return.
      seconds: wall time of the generation (training, ES step and storing).
      final: True for generation G, whose population updates nothing.
    """

    generation: int
    program_id: int
    mean_score: float | None
    population_mean: float
    population_best: float
    invalid_members: int
    seconds: float
    final: bool = False


@dataclasses.dataclass(frozen=True)
class MetaTrainResult:
    """The outcome of ``meta_train``.

    Attributes:
      run: the store's run record (status "finished").
      program_ids: the stored means, generation 0 (PPO) first.
      best_program_id: the stored mean with the highest score.
      final_params: the final mean, flat float32 ``[num_params]``.
      reports: the generations this call computed (fewer after a resume).
      resumed_from: the generation a resumed run restarted at; None for a new run.
    """

    run: Any
    program_ids: tuple[int, ...]
    best_program_id: int | None
    final_params: np.ndarray
    reports: tuple[GenerationReport, ...]
    resumed_from: int | None


# ----------------------------------------------------------------------------- evaluation
@dataclasses.dataclass(frozen=True)
class _Batch:
    """One compiled evaluation of M members (NumPy): ``fitness [M]``, ``valid [M]``, and per
    task the last member's ``eval_returns [S, K]``, ``mean_return``/``env_steps [S, N]``
    and validity."""

    fitness: np.ndarray
    valid: np.ndarray
    last_returns: tuple[np.ndarray, ...]
    last_curves: tuple[dict[str, np.ndarray], ...]
    last_valid: tuple[bool, ...]


@functools.lru_cache(maxsize=8)
def _population_evaluator(configs: tuple, temporal: bool) -> Callable:
    """``evaluate(thetas [M, P], keys [S, 2], random [T], span [T]) -> dict`` compiled with
    the trainer's XLA options. Cached, so later calls (and a resumed run in the same
    process) reuse the compiled code; shapes M and S are part of JAX's own jit cache."""
    import jax
    import jax.numpy as jnp
    from evaluators import lpo, ppo

    def member(theta, keys):
        objective = ppo.Objective(drift=lpo.drift_from_params(theta, temporal), advantages=ppo.gae)
        outs = []
        for config in configs:
            out = jax.vmap(ppo.make_train(config, objective))(keys)
            finite = jnp.all(jnp.isfinite(out.metrics["policy_loss"])) & jnp.all(jnp.isfinite(out.eval_returns))
            outs.append(dict(eval_returns=out.eval_returns, mean_return=out.metrics["mean_return"],
                             env_steps=out.metrics["env_steps"], finite=finite))
        return outs

    def evaluate(thetas, keys, random, span):
        outs = jax.vmap(member, in_axes=(0, None))(thetas, keys)
        scores, valid = [], jnp.ones(thetas.shape[0], bool)
        for t, out in enumerate(outs):
            mean_return = jnp.mean(out["eval_returns"], axis=(1, 2))
            scores.append((mean_return - random[t]) / span[t])
            valid = valid & out["finite"] & jnp.isfinite(scores[-1])
        fitness = jnp.mean(jnp.stack(scores), axis=0)
        last = [{k: v[-1] for k, v in out.items()} for out in outs]
        return dict(fitness=jnp.where(valid, fitness, jnp.nan), valid=valid, last=last)

    return jax.jit(evaluate, compiler_options=dict(ppo.COMPILER_OPTIONS))


def _evaluate(cfg: MetaTrainConfig, thetas: np.ndarray, generation: int,
              references: Sequence[Mapping[str, float]]) -> _Batch:
    import jax
    import jax.numpy as jnp
    from search_spaces import policy_objectives
    evaluate = _population_evaluator(cfg.ppo_configs(), cfg.temporal)
    random = np.asarray([r["random"] for r in references], np.float32)
    span = np.asarray([max(r["ppo"] - r["random"], policy_objectives.MIN_SCORE_SPAN) for r in references], np.float32)
    with jax.enable_x64(False):
        keys = jax.random.split(jax.random.PRNGKey(generation_seed(cfg.seed, generation)), cfg.num_seeds)
        out = jax.device_get(evaluate(jnp.asarray(thetas, jnp.float32), keys, random, span))
    last = out["last"]
    return _Batch(fitness=np.asarray(out["fitness"], np.float64), valid=np.asarray(out["valid"], bool),
                  last_returns=tuple(np.asarray(x["eval_returns"]) for x in last),
                  last_curves=tuple({"mean_return": np.asarray(x["mean_return"]),
                                     "env_steps": np.asarray(x["env_steps"])} for x in last),
                  last_valid=tuple(bool(x["finite"]) for x in last))


def _task_results(cfg: MetaTrainConfig, batch: _Batch, references, seconds: float) -> list[TaskResult]:
    """The mean's per-task results, with the metrics ``PolicyObjectiveSpace.evaluate``
    records (computed the same way from the same arrays)."""
    from search_spaces import policy_objectives
    results = []
    for config, returns, curve, ok, reference in zip(cfg.ppo_configs(), batch.last_returns, batch.last_curves,
                                                     batch.last_valid, references):
        if not ok:
            results.append(TaskResult.failure(INVALID, "training diverged: non-finite policy loss or returns",
                                              seconds))
            continue
        metrics = policy_objectives.return_metrics(returns, reference, config, seconds)
        results.append(TaskResult(status=OK, metrics=metrics, curve=policy_objectives.learning_curve(curve),
                                  wall_time=seconds, device=jax_device()))
    return results


# ----------------------------------------------------------------------------- store
def _edit(cfg: MetaTrainConfig, generation: int) -> str:
    """The program's edit text, also written into its docstring. A function of the
    generation and settings only (not of whether the mean was the last one of a call), so
    a mean's source, hence its code hash, is the same in a resumed run."""
    settings = f"σ={cfg.sigma:g}, lr={cfg.learning_rate:g}, pop={cfg.popsize}"
    if generation == 0:
        return f"{cfg.method} initial mean: PPO clip (zero output layer) ({settings})"
    return f"{cfg.method} generation {generation} ({settings})"


def _store_mean(store, run, space, cfg: MetaTrainConfig, theta: np.ndarray, generation: int,
                parent_id: int | None, results: Sequence[TaskResult]):
    """Stores m_g as a program of ``space`` with its evaluations and score, as the
    discovery loop does (``Discovery._finish``); idempotent, so a resumed generation
    finds what it stored before."""
    from evaluators import lpo
    from search_spaces import policy_objectives
    edit = _edit(cfg, generation)
    source = lpo.render_program(theta, generation=generation, note=edit, temporal=cfg.temporal)
    fingerprint = space.probe(policy_objectives.load_namespace(source))
    program = store.add_program(run.id, source, generation=generation, edit=edit,
                                parents=[parent_id] if parent_id is not None else [], mutator=cfg.method,
                                fingerprint=np.asarray(fingerprint, np.float64).tolist())
    seed = generation_seed(cfg.seed, generation)
    evaluation.record(store, program.id, TRAIN, seed, dict(zip(cfg.tasks, results)))
    return evaluation.conclude(store, space, program.id, seed, tasks=cfg.tasks)


def _versions() -> dict[str, str]:
    from importlib import metadata

    from discover.engine.runner import library_versions
    out = library_versions()
    for dist in ("evosax", "gymnax", "flax", "optax"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _open_run(store, cfg: MetaTrainConfig, run_name: str | None):
    """A new run, or the run named ``run_name`` if it exists (then its settings must match
    ``cfg``, except the number of generations, which may grow)."""
    run = store.get_run(run_name) if run_name else None
    if run is None:
        return store.create_run(run_name, cfg.space, config=cfg.to_json(), seed=cfg.seed,
                                budget=cfg.generations + 1, mutator=cfg.method, versions=_versions()), False
    stored = dict(run.config)
    if stored.get("kind") != "meta-train":
        raise ValueError(f"run {run.name!r} exists and is not a meta-train run; choose another run name")
    wanted = cfg.to_json()
    differ = sorted(k for k in wanted if k != "generations" and stored.get(k) != wanted[k])
    if differ:
        detail = ", ".join(f"{k} {stored.get(k)!r} (now {wanted[k]!r})" for k in differ)
        raise ValueError(f"run {run.name!r} was meta-trained with other settings: {detail}")
    store.set_run_budget(run.id, max(cfg.generations + 1, run.budget or 0))
    store.set_run_status(run.id, "running")
    return run, True


# ----------------------------------------------------------------------------- main
def _make_strategy(cfg: MetaTrainConfig, num_params: int):
    import jax.numpy as jnp
    import optax
    from evosax.algorithms import Open_ES
    es = Open_ES(population_size=cfg.popsize, solution=jnp.zeros(num_params, jnp.float32),
                 optimizer=optax.sgd(cfg.learning_rate), std_schedule=optax.constant_schedule(cfg.sigma))
    return es, es.default_params


def meta_train(store, *, space: str = "", method: str = "openes", generations: int = 5,
               popsize: int = 8, sigma: float = 0.5, learning_rate: float = 0.1,
               tasks: Sequence[str] = ("CartPole-v1",), total_timesteps: int = 100_000, num_seeds: int = 2,
               seed: int = 0, run_name: str | None = None,
               progress: Callable[[GenerationReport], None] | None = None) -> MetaTrainResult:
    """Meta-trains an LPO drift network with an evolution strategy; see the module docstring.

    Args:
      store: a ``discover.store.Store``; the run and its programs are written there.
      space, method, generations, popsize, sigma, learning_rate, tasks, total_timesteps,
        num_seeds, seed: see ``MetaTrainConfig``.
      run_name: the run's name (default: generated). If a meta-train run of that name
        exists, it is continued from its last stored mean (same settings required; more
        generations allowed).
      progress: called with a ``GenerationReport`` after each generation.

    Raises:
      ValueError: a space that is not a drift space (``is_drift_space``), an unknown
        method or task, bad numbers, or a run name taken by another kind of run or by a
        meta-train run with other settings.
    """
    import jax
    import jax.numpy as jnp
    from discover.spaces import get_space
    from evaluators import lpo
    from search_spaces import policy_objectives

    cfg = MetaTrainConfig(space=space, method=method, generations=generations, popsize=popsize, sigma=sigma,
                          learning_rate=learning_rate, tasks=tuple(tasks), total_timesteps=total_timesteps,
                          num_seeds=num_seeds, seed=seed)
    space_obj = get_space(cfg.space)
    progress = progress or (lambda report: None)
    run, resumed = _open_run(store, cfg, run_name)
    status = "failed"
    try:
        references = [policy_objectives.reference_returns(c, cfg.num_seeds) for c in cfg.ppo_configs()]
        stored = sorted(store.programs(run.id), key=lambda p: (p.generation, p.id))
        if stored:
            last = stored[-1]
            mean = lpo.params_from_program(last.source)
            start = last.generation
            parent_edges = [e.parent_id for e in store.parents(last.id) if e.role == "parent"]
            parent_id = parent_edges[0] if parent_edges else None
        else:
            mean = lpo.initial_params(cfg.seed, cfg.temporal)
            start, parent_id = 0, None
        es, es_params = _make_strategy(cfg, lpo.num_params(cfg.temporal))
        with jax.enable_x64(False):
            state = es.init(jax.random.PRNGKey(cfg.seed), jnp.asarray(mean), es_params)
            state = state.replace(generation_counter=state.generation_counter + start)
        reports = []
        # A resumed run whose last mean is the final one, evaluated, has nothing left to do.
        done = bool(stored) and (start > cfg.generations or
                                 (start == cfg.generations and stored[-1].status != "pending"))
        for g in ([] if done else range(start, cfg.generations + 1)):
            t0 = time.perf_counter()
            with jax.enable_x64(False):
                ask_key, tell_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), g))
                population, state = es.ask(ask_key, state, es_params)
            theta = np.asarray(state.mean, np.float32)
            batch = _evaluate(cfg, np.concatenate([np.asarray(population, np.float32), theta[None]]), g,
                              references)
            seconds = time.perf_counter() - t0
            program = _store_mean(store, run, space_obj, cfg, theta, g, parent_id,
                                  _task_results(cfg, batch, references, seconds))
            if g < cfg.generations:
                with jax.enable_x64(False):
                    # evosax minimises; a failed member (NaN) is ranked last by its shaping.
                    state, _ = es.tell(tell_key, population, jnp.asarray(-batch.fitness[:-1], jnp.float32),
                                       state, es_params)
            members = batch.fitness[:-1][batch.valid[:-1]]
            reports.append(GenerationReport(
                generation=g, program_id=program.id, mean_score=program.score,
                population_mean=float(np.mean(members)) if members.size else math.nan,
                population_best=float(np.max(members)) if members.size else math.nan,
                invalid_members=int(np.sum(~batch.valid[:-1])), seconds=time.perf_counter() - t0,
                final=g == cfg.generations))
            progress(reports[-1])
            parent_id = program.id
        status = "finished"
    except KeyboardInterrupt:
        status = "stopped"
        raise
    finally:
        store.set_run_status(run.id, status)
    programs = sorted(store.programs(run.id), key=lambda p: (p.generation, p.id))
    scored = [p for p in programs if p.score is not None]
    best = max(scored, key=lambda p: p.score).id if scored else None
    return MetaTrainResult(run=store.get_run(run.id), program_ids=tuple(p.id for p in programs),
                           best_program_id=best, final_params=lpo.params_from_program(programs[-1].source),
                           reports=tuple(reports), resumed_from=start if resumed else None)
