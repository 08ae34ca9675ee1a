"""The one path from a program to its stored, scored evaluations.

    jobs = submit(executor, space_spec, source, tasks, seed=0, options=opts)   # isolated workers
    results = collect(store, program_id, TRAIN, 0, jobs)     # each recorded as it arrives
    program = conclude(store, space, program_id)             # score of what is stored, status

Every caller goes through these: the discovery loop (live, on resume, re-evaluation on new
seeds, held-out evaluation), the run summary, ``tune``, ``export`` and ``meta-train`` (which
evaluates its population in-process, since ES parameters are not untrusted code, and then
records and concludes the same way). So a program's score is always ``space.score`` of its
stored evaluations of one split and seed, in the space's task order, and a resumed run
scores exactly what a live one did.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future
from typing import Any, Callable, Mapping, Sequence

from discover.space import Space, TaskResult
from discover.store import EVALUATED, HELD_OUT, INVALID, TRAIN

__all__ = ["TRAIN", "HELD_OUT", "EVALUATED", "INVALID", "submit", "collect", "record", "stored",
           "stored_score", "conclude", "done_tasks", "held_out", "check_harness"]


def submit(executor, space_spec: str, source: str, tasks: Sequence[str], seed: int = 0,
           options: Mapping[str, Any] | None = None, tag: Any = None,
           skip: Sequence[str] = ()) -> dict[str, Future]:
    """One isolated job per task (those in ``skip`` left out), as futures by task; each
    job's tag is ``(tag, task)``."""
    from discover.isolation.executor import Job
    opts = dict(options or {})
    return {task: executor.submit(Job(space=space_spec, source=source, task=task, seed=seed, options=opts,
                                      tag=(tag, task)))
            for task in tasks if task not in skip}


def collect(store, program_id: int | None, split: str, seed: int, futures: Mapping[str, Future],
            on_result: Callable[[str, TaskResult], None] | None = None,
            waited: Callable[[float], None] | None = None) -> dict[str, TaskResult]:
    """Waits for ``futures`` in their order, records each result under ``program_id`` (none
    for a program outside the store) as it arrives, and returns them by task. ``waited``
    is told the seconds spent blocked on each result."""
    results = {}
    for task, future in futures.items():
        t0 = time.perf_counter()
        result = future.result()
        if waited is not None:
            waited(time.perf_counter() - t0)
        if program_id is not None:
            record(store, program_id, split, seed, {task: result})
        results[task] = result
        if on_result is not None:
            on_result(task, result)
    return results


def record(store, program_id: int, split: str, seed: int, results: Mapping[str, TaskResult]) -> None:
    """Stores results that are already at hand (``collect`` stores them as they arrive)."""
    for task, result in results.items():
        store.record_evaluation(program_id, task, seed, split, result)


def stored(store, program_id: int, split: str, seed: int, tasks: Sequence[str]) -> list[TaskResult]:
    """The program's stored results of ``split`` and ``seed``, in ``tasks`` order (tasks
    without one left out)."""
    by_task = {e.task: e.result for e in store.evaluations(program_id) if e.split == split and e.seed == seed}
    return [by_task[t] for t in tasks if t in by_task]


def stored_score(store, space: Space, program_id: int, split: str = TRAIN, seed: int = 0,
                 tasks: Sequence[str] | None = None) -> float:
    """``space.score`` of the stored results of one split and seed over ``tasks`` (default
    the split's tasks of the space); -inf if a task lacks one."""
    if tasks is None:
        tasks = space.held_out_tasks if split == HELD_OUT else space.train_tasks
    results = stored(store, program_id, split, seed, tasks)
    return space.score(results) if len(results) == len(tasks) else -math.inf


def conclude(store, space: Space, program_id: int, seed: int = 0, tasks: Sequence[str] | None = None):
    """Sets the program's status and score from its stored train evaluations of ``seed``
    over ``tasks`` (default the space's train tasks): ``evaluated`` with the score, or
    ``invalid``; returns the updated program record."""
    score = stored_score(store, space, program_id, TRAIN, seed, tasks)
    ok = math.isfinite(score)
    return store.set_program_status(program_id, EVALUATED if ok else INVALID, score=score if ok else None)


def done_tasks(store, program_id: int, split: str = TRAIN, seed: int = 0) -> set[str]:
    """Tasks the program already has a stored result for (a resumed run skips them)."""
    return {e.task for e in store.evaluations(program_id) if e.split == split and e.seed == seed}


def held_out(store, space: Space, executor, space_spec: str, program_ids: Sequence[int],
             options: Mapping[str, Any] | None,
             report: Callable[[int, int, int, str, TaskResult], None] | None = None) -> dict[int, float]:
    """Evaluates programs on the held-out tasks (skipping the tasks the store has), records
    each held-out score, and returns them by program. ``report(done, total, program id,
    task, result)`` is called as each result arrives."""
    jobs = {pid: submit(executor, space_spec, store.program(pid).source, space.held_out_tasks, 0, options,
                        tag=pid, skip=done_tasks(store, pid, HELD_OUT))
            for pid in program_ids}
    total = sum(len(fs) for fs in jobs.values())
    done = [0]
    scores = {}
    for pid, futures in jobs.items():
        def arrived(task: str, result: TaskResult, pid=pid) -> None:
            done[0] += 1
            if report is not None:
                report(done[0], total, pid, task, result)
        collect(store, pid, HELD_OUT, 0, futures, on_result=arrived)
        scores[pid] = stored_score(store, space, pid, HELD_OUT)
        store.set_held_out_score(pid, scores[pid] if math.isfinite(scores[pid]) else None)
    return scores


def check_harness(store, space: Space, run, options: Mapping[str, Any] | None, programs) -> None:
    """Refuses (``ValueError``, one line) to continue a run whose stored evaluations were
    computed by another harness than this installation's (``Space.harness_version``: the
    evaluator or scoring code, or the evaluation options differ): their scores and new
    ones would not be comparable. Evaluations stored before versions were kept pass."""
    current = space.harness_version(options)
    for p in programs:
        other = {e.harness for e in store.evaluations(p.id)} - {None, current}
        if other:
            raise ValueError(
                f"run {run.name!r} was evaluated by harness {sorted(other)[0]}, this installation evaluates "
                f"{space.name} by harness {current} (its evaluator, scoring or evaluation options differ): start "
                "a new run, or resume with the version that made it")
