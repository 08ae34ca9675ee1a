"""Isolated evaluation of untrusted candidate programs.

A ``Job`` (space name, candidate source, task, seed, options) is evaluated by
``space.evaluate(source, task, seed, **options)`` in a separate worker process, under a
wall-time limit, a memory limit and the confinement of ``discover.isolation.sandbox`` (no processes,
no network, no writes outside the job's scratch directory). Whatever the candidate does,
the caller gets a ``TaskResult``; the executor never raises because of a candidate.

Design (figures measured on a 2-core development machine):

- Workers are long-lived interpreters started with ``subprocess``
  (``python -m discover.isolation.worker``), the equivalent of the ``spawn`` start method: nothing
  is forked from a process that may hold JAX's threads. A fresh confined worker is ready
  in ~0.2 s, a first job that imports JAX adds ~1.7 s, and evaluators cache game arrays
  and compiled functions per process, so a worker serves many jobs (a trivial job costs
  ~4 ms round trip); only a worker that misbehaved is replaced.
- Parent and worker talk over three pipes: jobs (pickled, parent -> worker: the parent is
  trusted), results (length-prefixed JSON, worker -> parent: the parent never unpickles
  what candidate code could have written) and alarms (one line per forbidden operation,
  written by the worker's audit hook just before the worker ends itself).
- Wall time: the parent waits for the result with a deadline and SIGKILLs the worker's
  process group when it passes (``timeout``). The limit covers the job as the worker runs
  it, including first-time imports of the space.
- Memory: ``RLIMIT_DATA`` in the worker (``RLIMIT_AS`` would fail JAX, which reserves far
  more address space than it uses); the resulting ``MemoryError`` (or XLA's
  ``RESOURCE_EXHAUSTED``) becomes ``memory`` and the worker is replaced. A worker killed by
  the kernel's OOM killer (``/proc/vmstat`` ``oom_kill`` grew while it ran) is ``memory`` too.
- Death: a worker that exits or is killed by a signal while running a job yields
  ``crashed`` with its exit code or signal and the tail of its stderr (faulthandler writes
  the Python stack of a segfault there). It is replaced; no other job is re-run.
- Forbidden operations: an alarm from the worker yields ``forbidden`` with the event, even
  if a result arrived too. After each job the worker checks that the candidate rebound no
  harness function (else ``forbidden``) and replaces itself when process-wide state
  changed (``jax.config``, environment, threads left running); see ``discover.isolation.sandbox``.
- ``candidate raised``: ``error`` with the last lines of the traceback.

Each worker gets its own scratch directory; a job runs in a fresh subdirectory of it
(its working directory and ``tempfile``'s directory), and the scratch directory is emptied
after every job, so no candidate sees another's files. Workers also get
``DISCOVER_CACHE`` pointing at the engine's cache (the only other place the harness may
write) and an environment without variables that look like credentials; their standard
output goes to ``/dev/null`` and their standard error to a log whose tail is reported when
a worker crashes. Workers die with the executor (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import queue
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from discover.space import TaskResult
from discover.isolation.worker_process import (ExecutorShutDown, Settings, WorkerProcess, WorkerStartError, _check_limits,
                                     _resolve_cache_dirs)

__all__ = ["Job", "Executor", "LocalExecutor", "evaluate_isolated", "WorkerStartError", "ExecutorShutDown"]


@dataclasses.dataclass(frozen=True)
class Job:
    """One evaluation to run: ``get_space(space).evaluate(source, task, seed, **options)``.

    Attributes:
      space: a space name (``discover.spaces.get_space``) or ``"module.path:ATTR"``,
        resolved again inside the worker.
      source: the candidate program's source.
      task: the task identifier, e.g. a game string.
      seed: the evaluation seed.
      options: keyword arguments for ``evaluate`` (picklable).
      tag: opaque, never sent to the worker; returned as ``future.job.tag`` for the caller
        to match results.
      kind: ``"evaluate"`` (``space.evaluate``) or ``"probe"`` (the candidate's behavioural
        fingerprint, ``discover.engine.probe.fingerprint``; ``task`` is ignored).
    """

    space: str
    source: str
    task: str
    seed: int = 0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tag: Any = None
    kind: str = "evaluate"

    def __post_init__(self):
        for name in ("space", "source", "task"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Job.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"Job.seed must be an int, got {type(self.seed).__name__}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"Job.options must be a mapping, got {type(self.options).__name__}")
        from discover.engine.probe import KINDS
        if self.kind not in KINDS:
            raise ValueError(f"Job.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


class Executor(Protocol):
    """Runs jobs in isolation; results arrive as futures of ``TaskResult``."""

    def submit(self, job: Job) -> concurrent.futures.Future[TaskResult]: ...

    def shutdown(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...


_HARNESS: dict[str, str] = {}


def _harness(job: Job) -> str:
    """The harness version of ``job``'s space and options (``Space.harness_version``),
    computed here, in the trusted process, and set on its result."""
    from discover.spaces import get_space
    key = json.dumps([job.space, dict(job.options)], sort_keys=True, default=str)
    if key not in _HARNESS:
        _HARNESS[key] = get_space(job.space).harness_version(job.options)
    return _HARNESS[key]


def _cleanup(root: Path, workers: list) -> None:
    for w in list(workers):
        try:
            w.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
    shutil.rmtree(root, ignore_errors=True)


class LocalExecutor:
    """A pool of isolated worker processes on this machine.

    Args:
      workers: number of worker processes (default: the number of CPUs).
      time_limit: wall-time limit per job, in seconds, or a callable ``limit(job) ->
        seconds`` evaluated when the job is submitted (``discover.engine.limits.TimeLimits``
        derives each task's limit from the space's reference program).
      memory_limit_mb: data-segment limit per worker, in MiB (JAX alone needs ~250).
      cache_dirs: directories the harness (not the candidate) may write; the first one is
        passed to workers as ``DISCOVER_CACHE``. Default: ``$DISCOVER_CACHE`` or
        ``runs/cache``, created if missing.

    Example::

        with LocalExecutor(workers=2, time_limit=60) as ex:
            fut = ex.submit(Job(space="cfr_variants", source=src, task="leduc_poker"))
            print(fut.result().status)
    """

    def __init__(self, workers: int | None = None, time_limit: float | Callable[[Job], float] = 300.0,
                 memory_limit_mb: int = 4096, *, cache_dirs=None):
        n = (os.cpu_count() or 1) if workers is None else workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        _check_limits(1.0 if callable(time_limit) else time_limit, memory_limit_mb)
        self.workers = n
        self.time_limit = time_limit if callable(time_limit) else float(time_limit)
        self.memory_limit_mb = int(memory_limit_mb)
        self._settings = Settings(self.memory_limit_mb, _resolve_cache_dirs(cache_dirs))
        self._root = Path(tempfile.mkdtemp(prefix="discover-executor-"))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closing = False      # no more submissions
        self._aborting = False     # shutdown(wait=False): stop everything now
        self._live: list[WorkerProcess] = []
        self._known_spaces: set[str] = set()
        self._finalizer = weakref.finalize(self, _cleanup, self._root, self._live)
        self._threads = [threading.Thread(target=self._serve, args=(i,), name=f"discover-executor-{i}",
                                          daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    # -- public API
    def submit(self, job: Job) -> concurrent.futures.Future[TaskResult]:
        """Queues ``job``; the future's result is its ``TaskResult`` and ``future.job`` is
        ``job`` (so ``future.job.tag`` matches results, e.g. with ``as_completed``).

        Raises:
          UnknownSpace: ``job.space`` names no space (checked here, in the caller's process).
          RuntimeError: the executor was shut down.
        """
        if not isinstance(job, Job):
            raise TypeError(f"submit needs a Job, got {type(job).__name__}")
        if job.space not in self._known_spaces:
            from discover.spaces import get_space
            get_space(job.space)
            self._known_spaces.add(job.space)
        limit = float(self.time_limit(job)) if callable(self.time_limit) else self.time_limit
        _check_limits(limit, self.memory_limit_mb)
        harness = _harness(job)
        future: concurrent.futures.Future[TaskResult] = concurrent.futures.Future()
        future.job = job  # type: ignore[attr-defined]  # to match results: future.job.tag
        future.time_limit = limit  # type: ignore[attr-defined]
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit a job to an executor that was shut down")
            self._queue.put((job, future, limit, harness))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Stops the workers. With ``wait``, queued jobs finish first; without, they are
        cancelled and running ones are stopped (their futures raise ``ExecutorShutDown``)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if not wait:
                self._aborting = True
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[1].cancel()
                for w in list(self._live):
                    w.killed_by_owner = True
                    w.kill()
            for _ in self._threads:
                self._queue.put(None)
        for t in self._threads:
            t.join()
        self._finalizer()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.shutdown(wait=exc_type is None)

    def worker_sandbox(self) -> dict[str, str]:
        """What confinement the running workers got (see ``discover.isolation.sandbox.confine``);
        empty before any worker started."""
        with self._lock:
            return dict(self._live[0].sandbox) if self._live else {}

    # -- one thread per worker slot
    def _start_worker(self, slot: int) -> WorkerProcess:
        w = WorkerProcess(self._settings, self._root / f"slot-{slot}")
        with self._lock:
            self._live.append(w)
            if self._aborting:
                w.killed_by_owner = True
                w.kill()
        return w

    def _retire(self, w: WorkerProcess | None) -> None:
        if w is None:
            return
        w.close()
        with self._lock:
            if w in self._live:
                self._live.remove(w)

    def _serve(self, slot: int) -> None:
        worker: WorkerProcess | None = None
        try:
            try:
                worker = self._start_worker(slot)     # warm up before the first job arrives
            except WorkerStartError:
                worker = None                         # retried, and reported, with a job
            while True:
                item = self._queue.get()
                if item is None:
                    return
                job, future, limit, harness = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if worker is None or not worker.alive():
                        self._retire(worker)
                        worker = None
                        worker = self._start_worker(slot)
                    result, keep = worker.run(job, limit)
                except BaseException as e:  # noqa: BLE001 - the caller gets it through the future
                    self._retire(worker)
                    worker = None
                    future.set_exception(e if not self._aborting or isinstance(e, ExecutorShutDown)
                                         else ExecutorShutDown("the executor was shut down while this job ran"))
                    continue
                if not keep:
                    self._retire(worker)
                    worker = None
                future.set_result(dataclasses.replace(result, harness=harness))
                if worker is None and not self._closing:
                    try:
                        worker = self._start_worker(slot)
                    except WorkerStartError:
                        worker = None
        finally:
            self._retire(worker)


def evaluate_isolated(job: Job, time_limit: float | Callable[[Job], float], memory_limit_mb: int, *,
                      cache_dirs=None) -> TaskResult:
    """Evaluates one job in one fresh isolated worker process, then stops it.

    ``time_limit`` is in seconds, or a callable ``limit(job) -> seconds`` as for
    ``LocalExecutor``.

    Raises:
      UnknownSpace: ``job.space`` names no space.
      WorkerStartError: no worker process could be started.
    """
    from discover.spaces import get_space

    if not isinstance(job, Job):
        raise TypeError(f"evaluate_isolated needs a Job, got {type(job).__name__}")
    get_space(job.space)
    time_limit = float(time_limit(job)) if callable(time_limit) else time_limit
    _check_limits(time_limit, memory_limit_mb)
    root = Path(tempfile.mkdtemp(prefix="discover-eval-"))
    worker = None
    try:
        worker = WorkerProcess(Settings(int(memory_limit_mb), _resolve_cache_dirs(cache_dirs)), root)
        result, _ = worker.run(job, float(time_limit))
        return dataclasses.replace(result, harness=_harness(job))
    finally:
        if worker is not None:
            worker.close()
        shutil.rmtree(root, ignore_errors=True)
