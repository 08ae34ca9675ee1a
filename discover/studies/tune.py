"""Tune the numeric constants of a stored program with Optuna (``discover tune``).

Evolution changes what a program computes; the constants it computes with (DCFR's
exponents α = 1.5, β = 0, γ = 2, an ε, a temperature, a learning rate) are often left where a
paper or a mutation put them. This module exposes those constants, searches them with
Optuna's TPE sampler (Bergstra et al., "Algorithms for Hyper-Parameter Optimization",
NeurIPS 2011; Akiba et al., "Optuna", KDD 2019) on the space's train tasks, and stores the
best setting as a child of the program, as the loop stores a mutation.

1. ``tunable_constants(source)`` finds the tunable numeric literals of the evolve block with
   their exact positions (``discover.knobs``, whose rule the offline mutator shares).
2. ``search_range(constant)`` gives each a search range (log-uniform within a factor of ten
   for floats, halve-to-double for integers, [-1, 1] or [-2, 2] around zero).
3. ``substitute(source, values)`` writes new values in place of the old ones and nothing
   else (both in ``discover.knobs`` too).
4. ``tune_program(store, program_id, trials)`` runs the study: trial 0 is the original
   constants, every trial evaluates the substituted program on the space's train tasks in
   the isolated executor with the run's evaluation options and limits, and scores it with
   ``space.score``. The study lives in the store's own database (name
   ``discover-tune-<program id>``), so an interrupted tune resumes where it stopped.

Example::

    from discover.store import Store
    from discover.studies.tune import tune_program

    store = Store.open("sqlite:///runs/discover.db")
    result = tune_program(store, 42, trials=30, seed=0)
    result.child_id, result.original_score, result.best_score
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

from discover.knobs import INT, Constant, SearchRange, literal, search_range, substitute, tunable_constants
from discover.space import TaskResult

STUDY_PREFIX = "discover-tune-"
MUTATOR = "tune"

# ----------------------------------------------------------------------------- tuning
@dataclasses.dataclass(frozen=True)
class TrialReport:
    """What ``progress`` is told after each trial.

    Attributes:
      number: the trial's number in the study (0 is the original constants).
      finished: how many trials the study has finished with this one (complete or pruned;
        trials an interrupted tune left running are not counted).
      total: the number of finished trials the study will have when the tune ends.
      value: the trial's score; None when it failed (then ``reason`` says why).
      best_value, best_number: the best score so far and its trial (None before any success).
      values: the constants' values in this trial, in ``tunable_constants`` order.
    """

    number: int
    finished: int
    total: int
    value: float | None
    reason: str | None
    best_value: float | None
    best_number: int | None
    values: tuple[int | float, ...]


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """The outcome of ``tune_program``.

    Attributes:
      program_id: the tuned (original) program.
      study_name: the Optuna study, in the store's database.
      trials: finished trials in the study (complete or pruned).
      constants: the program's tunable constants.
      best_values: the best trial's value of each constant (the originals if nothing beat them).
      original_score: trial 0's score (the original constants, measured in this study); -inf
        if it failed.
      best_score: the best trial's score (≥ ``original_score``).
      best_trial: the best trial's number (0 when the original is best).
      child_id: the stored child program, or None when the original is the best (then
        nothing is stored).
      child_score: the child's train score as stored (None when there is no child or its
        stored evaluation failed).
      options: the evaluation options the trials used.
    """

    program_id: int
    study_name: str
    trials: int
    constants: tuple[Constant, ...]
    best_values: tuple[int | float, ...]
    original_score: float
    best_score: float
    best_trial: int
    child_id: int | None
    child_score: float | None
    options: Mapping[str, Any]

    @property
    def changed(self) -> list[tuple[Constant, int | float]]:
        """The constants whose best value differs from the original, with that value."""
        return [(c, v) for c, v in zip(self.constants, self.best_values) if v != c.value]

    @property
    def improved(self) -> bool:
        return self.child_id is not None


def study_storage(url: str):
    """An Optuna storage on the lineage database at ``url`` (SQLite or PostgreSQL).

    The store and Optuna both keep their schema revision in an ``alembic_version`` table, so
    the database holds the store's revision and Optuna's own check of its revision would
    refuse it; the check is skipped (Optuna's tables are created by ``create_all`` and
    need no revision). Read a tune's study with
    ``optuna.load_study(study_name=..., storage=study_storage(url))``: a plain URL string
    makes Optuna run that check and fail.
    """
    import optuna
    from sqlalchemy.engine import make_url

    kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        # The same wait for SQLite's write lock as the store's own connections.
        from discover.store._db import SQLITE_BUSY_TIMEOUT_S
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)


def _database_url(store) -> str:
    # ``Store.url`` hides the password (it is for messages); the study needs the real URL.
    return store.connection_url


def _eval_settings(run) -> tuple[dict[str, Any], float, int, int | None]:
    """(eval options, time limit, memory limit, workers) of a run, as ``RunConfig`` reads them."""
    from discover.config import RunConfig

    stored = dict(run.config or {})
    keys = ("eval_options", "time_limit", "memory_limit_mb")
    cfg = RunConfig.from_mapping({k: stored[k] for k in keys if k in stored}, source=f"run {run.name}")
    workers = stored.get("workers")
    return dict(cfg.eval_options), cfg.time_limit, cfg.memory_limit_mb, workers if isinstance(workers, int) else None


def _failure_reason(results: Mapping[str, TaskResult]) -> str:
    for task, r in results.items():
        if not r.ok:
            last = (r.error or "").strip().splitlines()[-1:] or [""]
            return f"{task}: {r.status}" + (f" ({last[0][:160]})" if last[0] else "")
    return "the score is not finite"


def _edit_text(changes: Sequence[tuple[Constant, str]], trials: int, before: float, after: float) -> str:
    parts = ", ".join(f"{c.name} {c.text} → {new}" for c, new in changes)
    return f"tune (Optuna TPE, {trials} trials): {parts}; score {before:.4f} → {after:.4f}"


def _sampler_seed(seed: int, finished: int) -> int:
    # A resumed study must not replay the first random proposals of the interrupted one.
    if finished == 0:
        return int(seed)
    digest = hashlib.sha256(repr((int(seed), finished)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _readable(value: int | float, original: int | float, kind: str) -> int | float:
    """A sampled float rounded to 4 significant digits, so the stored program reads
    ``ALPHA = 1.844``, not ``1.8444106660988564`` (a 0.005 % change the score cannot tell
    apart); the original value itself is kept exactly."""
    if kind == INT or value == original:
        return value
    return float(f"{value:.4g}")


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything a tune needs, checked before any trial runs."""

    program: Any
    run: Any
    space: Any
    constants: tuple[Constant, ...]
    ranges: tuple[SearchRange, ...]
    tasks: tuple[str, ...]
    run_options: Mapping[str, Any]
    trial_options: Mapping[str, Any]
    time_limit: float
    memory_limit_mb: int
    workers: int
    study_name: str

    @property
    def original(self) -> tuple[int | float, ...]:
        return tuple(c.value for c in self.constants)

    @property
    def original_params(self) -> dict[str, int | float]:
        return {c.param: r.sampled(c.value) for c, r in zip(self.constants, self.ranges)}

    def values(self, trial) -> tuple[int | float, ...]:
        """The constants' values a finished trial evaluated."""
        if "values" in trial.user_attrs:
            return tuple(trial.user_attrs["values"])
        return tuple(_readable(r.value(trial.params[c.param]), c.value, c.kind) if c.param in trial.params
                     else c.value for c, r in zip(self.constants, self.ranges))


def _plan(store, program_id, trials, workers, options, study_name) -> _Plan:
    from discover.ui import views
    from discover.spaces import UnknownSpace, get_space

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a whole number of at least 1, got {trials!r}")
    program = views.resolve_program(store, program_id)
    constants = tuple(tunable_constants(program.source))
    if not constants:
        raise ValueError(f"program {program.id} has no tunable constants: no named number and no float other "
                         "than 0 and ±1 in its evolve block")
    try:
        space = get_space(program.space)
    except UnknownSpace as e:
        raise ValueError(f"cannot tune program {program.id}: {e}") from None
    if not space.train_tasks:
        raise ValueError(f"cannot tune program {program.id}: its space {space.name!r} has no train tasks")
    run = store.get_run(program.run_id)
    run_options, time_limit, memory_limit_mb, run_workers = _eval_settings(run)
    cores = os.cpu_count() or 1
    n = workers if workers is not None else min(run_workers or cores, cores)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    return _Plan(program=program, run=run, space=space, constants=constants,
                 ranges=tuple(search_range(c) for c in constants), tasks=tuple(space.train_tasks),
                 run_options=run_options, trial_options={**run_options, **dict(options or {})},
                 time_limit=time_limit, memory_limit_mb=memory_limit_mb, workers=min(n, len(space.train_tasks)),
                 study_name=study_name or f"{STUDY_PREFIX}{program.id}")


def _open_study(plan: _Plan, storage, seed: int):
    """Creates or resumes the plan's study: stale running trials marked failed, the original
    constants enqueued unless a finished or waiting trial has them, a seeded TPE sampler."""
    import optuna

    states = optuna.trial.TrialState
    study = optuna.create_study(study_name=plan.study_name, storage=storage, direction="maximize",
                                load_if_exists=True)
    _check_study(study, {"program_id": plan.program.id, "code_hash": plan.program.code_hash,
                         "options": json.loads(json.dumps(plan.trial_options, sort_keys=True, default=str))})
    for t in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        study.tell(t.number, state=states.FAIL)    # left by an interrupted tune
    done = study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))
    if not any(t.params == plan.original_params
               for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.WAITING))):
        study.enqueue_trial(plan.original_params)
    study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(seed, len(done)))
    return study


def _suggest(trial, plan: _Plan) -> tuple[int | float, ...]:
    out = []
    for c, r in zip(plan.constants, plan.ranges):
        s = (trial.suggest_int(c.param, int(r.low), int(r.high), log=r.log) if r.kind == INT
             else trial.suggest_float(c.param, r.low, r.high, log=r.log))
        out.append(_readable(r.value(s), c.value, c.kind))
    return tuple(out)


def _finished(study):
    import optuna

    states = optuna.trial.TrialState
    return study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))


def _best(study, plan: _Plan):
    """The best complete trial with a finite score; ties go to the original constants, then
    to the earlier trial. None when no trial succeeded."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    if not complete:
        return None
    return max(complete, key=lambda t: (t.value, plan.values(t) == plan.original, -t.number))


def tune_program(store, program_id: int | str, trials: int, *, seed: int = 0, workers: int | None = None,
                 options: Mapping[str, Any] | None = None, study_name: str | None = None,
                 progress: Callable[[TrialReport], None] | None = None) -> TuneResult:
    """Tunes a stored program's constants and stores the best setting as its child.

    The objective of a trial: the program with the trial's constants (``substitute``; sampled
    floats rounded to 4 significant digits), evaluated on every train task of its space,
    seed 0, in the isolated executor (``LocalExecutor``, whose warm workers keep game arrays
    and reference curves between trials), with the run's evaluation options
    (``RunConfig.eval_options``, updated with ``options``) and its time and memory limits,
    scored by ``space.score``. A trial whose program fails a task or scores a non-finite
    number is pruned, the reason in its ``error`` user attribute; it never stops the study.
    Each trial's user attribute ``values`` holds the constants' values it evaluated.

    The study is ``study_name`` (default ``discover-tune-<program id>``) in the store's own
    database (``study_storage``), created or resumed (``load_if_exists``): its trial 0 is
    the original constants (enqueued, so the best is never worse than the original on the
    measured score); a resumed study runs only the trials missing to reach ``trials``, first
    marking trials that an interrupted tune left running as failed (so one program is tuned
    by one process at a time). The sampler is TPE seeded with ``seed``.

    At the end, unless the original is the best (ties go to the original: then nothing is
    stored and ``child_id`` is None), the best program is stored as a child of the original
    as the loop stores a mutation: same run, generation + 1, edit naming each changed
    constant old → new, a "parent" edge to the original, its behavioural fingerprint, one
    train evaluation per task (seed 0), and status "evaluated" with ``space.score`` (or
    "invalid" without a score). When ``options`` change the run's evaluation options, the
    child is evaluated once more with the run's own options for the store, so that its
    stored score compares with the run's other programs (it may then fall below the
    original's). If the run already holds the tuned source, that program is returned.

    Args:
      program_id: the program's id.
      trials: the number of finished trials the study should have (≥ 1), trial 0 included.
      seed: the TPE sampler's seed.
      workers: evaluation processes (default: the run's ``workers``, at most one per train
        task and per CPU core).
      options: evaluation options for the trials, over the run's (e.g. ``{"iterations": 100}``).
      study_name: the Optuna study's name.
      progress: called with a ``TrialReport`` after each trial.

    Raises:
      ValueError: no program has the id, it has no tunable constants, ``trials`` < 1, its
        space is unknown, optuna is not installed, or the study was made for another
        program or other options.
      discover.isolation.executor.WorkerStartError: no worker process could be started.
    """
    plan = _plan(store, program_id, trials, workers, options, study_name)
    if importlib.util.find_spec("optuna") is None:
        raise ValueError("tuning needs optuna: pip install optuna")
    storage = study_storage(_database_url(store))
    try:
        return _tune(store, plan, _open_study(plan, storage, seed), trials, progress)
    finally:
        storage.engine.dispose()


def _tune(store, plan: _Plan, study, trials: int, progress: Callable[[TrialReport], None] | None) -> TuneResult:
    """Runs the missing trials of ``study`` in a pool of isolated workers, then concludes."""
    import optuna

    from discover.engine import evaluation
    from discover.isolation.executor import LocalExecutor
    from discover.engine.limits import TimeLimits
    from discover.store import TRAIN

    cache: dict[str, dict[str, TaskResult]] = {}

    with LocalExecutor(workers=plan.workers, time_limit=TimeLimits(plan.time_limit or None),
                       memory_limit_mb=plan.memory_limit_mb) as executor:

        def evaluate(source: str, opts: Mapping[str, Any]) -> dict[str, TaskResult]:
            # One job per train task, seed 0, as the loop submits a program's train evaluations.
            key = hashlib.sha256(repr((source, sorted(opts.items()))).encode()).hexdigest()
            if key not in cache:
                futures = evaluation.submit(executor, plan.program.space, source, plan.tasks, 0, opts)
                cache[key] = evaluation.collect(store, None, TRAIN, 0, futures)     # trials are not stored
            return cache[key]

        def objective(trial) -> float:
            values = _suggest(trial, plan)
            trial.set_user_attr("values", list(values))
            results = evaluate(substitute(plan.program.source, values), plan.trial_options)
            trial.set_user_attr("statuses", {t: r.status for t, r in results.items()})
            score = plan.space.score(list(results.values()))
            if not math.isfinite(score):
                reason = _failure_reason(results)
                trial.set_user_attr("error", reason)
                raise optuna.TrialPruned(reason)
            return float(score)

        def report(study_, frozen) -> None:
            if progress is None:
                return
            best = _best(study_, plan)
            ok = frozen.state == optuna.trial.TrialState.COMPLETE
            progress(TrialReport(number=frozen.number, finished=len(_finished(study_)), total=trials,
                                 value=frozen.value if ok else None,
                                 reason=None if ok else frozen.user_attrs.get("error", frozen.state.name.lower()),
                                 best_value=best.value if best else None, best_number=best.number if best else None,
                                 values=plan.values(frozen)))

        remaining = trials - len(_finished(study))
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, callbacks=[report])
        return _conclude(store, plan, study, evaluate, executor)


def _conclude(store, plan: _Plan, study, evaluate: Callable, executor) -> TuneResult:
    """The tune's result; stores the best program as a child unless the original is best."""
    finished = _finished(study)
    best = _best(study, plan)
    first = next((t for t in finished if plan.values(t) == plan.original), None)
    original_score = first.value if first is not None and first.value is not None else -math.inf
    common = dict(program_id=plan.program.id, study_name=plan.study_name, trials=len(finished),
                  constants=plan.constants, original_score=original_score, options=plan.trial_options)
    if best is None or plan.values(best) == plan.original or best.value <= original_score:
        return TuneResult(best_values=plan.original, best_score=original_score,
                          best_trial=first.number if first is not None else 0, child_id=None, child_score=None,
                          **common)
    values = plan.values(best)
    source = substitute(plan.program.source, values)
    results = evaluate(source, plan.run_options)     # cached when the trials used the run's options
    changes = [(c, literal(c, v)) for c, v in zip(plan.constants, values) if v != c.value]
    edit = _edit_text(changes, len(finished), original_score, best.value)
    child = _store_child(store, plan.space, plan.program, source, edit, results,
                         _fingerprint(executor, source, plan.run.space))
    return TuneResult(best_values=values, best_score=float(best.value), best_trial=best.number,
                      child_id=child.id, child_score=child.score, **common)


def _check_study(study, settings: Mapping[str, Any]) -> None:
    """Stamps a new study with what it tunes; refuses to resume one made for something else."""
    attrs = study.user_attrs
    if not attrs:
        for k, v in settings.items():
            study.set_user_attr(k, v)
        return
    for k in ("code_hash", "options"):
        if attrs.get(k) != settings[k]:
            what = "another program" if k == "code_hash" else f"other evaluation options ({attrs.get(k)})"
            raise ValueError(f"study {study.study_name!r} was made for {what}; give another study name")


def _fingerprint(executor, source: str, space_name: str) -> list[float] | None:
    """The program's behavioural fingerprint, computed in the executor as the loop does
    (``discover.engine.probe``); None if the probe fails."""
    from discover.isolation.executor import Job
    result = executor.submit(Job(space=space_name, source=source, task="", kind="probe")).result()
    return [float(x) for x in result.curve[0]] if result.ok and result.curve else None


def _store_child(store, space, parent, source: str, edit: str, results: Mapping[str, TaskResult],
                 fingerprint: Sequence[float] | None):
    """Stores the tuned program as the loop stores an evaluated child (``Discovery._admit``
    and ``Discovery._finish``): the program with its parent edge, one train evaluation per
    task with seed 0, then its status and ``space.score`` of its stored train evaluations."""
    from discover.engine import evaluation
    from discover.store import TRAIN

    child = store.add_program(parent.run_id, source, generation=parent.generation + 1, edit=edit,
                              parents=[parent.id], mutator=MUTATOR, fingerprint=fingerprint)
    evaluation.record(store, child.id, TRAIN, 0, results)
    return evaluation.conclude(store, space, child.id)
