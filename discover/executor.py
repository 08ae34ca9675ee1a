"""Isolated evaluation of untrusted candidate programs.

A ``Job`` (space name, candidate source, task, seed, options) is evaluated by
``space.evaluate(source, task, seed, **options)`` in a separate worker process, under a
wall-time limit, a memory limit and the confinement of ``discover.sandbox`` (no processes,
no network, no writes outside the job's scratch directory). Whatever the candidate does,
the caller gets a ``TaskResult``; the executor never raises because of a candidate.

Design (figures measured on a 2-core development machine):

- Workers are long-lived interpreters started with ``subprocess``
  (``python -m discover.executor``), the equivalent of the ``spawn`` start method: nothing
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
  changed (``jax.config``, environment, threads left running); see ``discover.sandbox``.
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
import pickle
import queue
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from discover.space import CRASHED, ERROR, FORBIDDEN, MEMORY, STATUSES, TIMEOUT, TaskResult

_HEADER = struct.Struct(">Q")
_MAX_RESULT_BYTES = 64 * 1024 * 1024
_START_TIMEOUT_S = 120.0
_ERROR_LINES = 20
_ERROR_CHARS = 4000
_LOG_TAIL_CHARS = 1500
_MIN_MEMORY_MB = 64


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
    """

    space: str
    source: str
    task: str
    seed: int = 0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tag: Any = None

    def __post_init__(self):
        for name in ("space", "source", "task"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Job.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"Job.seed must be an int, got {type(self.seed).__name__}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"Job.options must be a mapping, got {type(self.options).__name__}")


class Executor(Protocol):
    """Runs jobs in isolation; results arrive as futures of ``TaskResult``."""

    def submit(self, job: Job) -> concurrent.futures.Future[TaskResult]: ...

    def shutdown(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...


class WorkerStartError(RuntimeError):
    """A worker process could not be started (an environment problem, not a candidate's)."""


class ExecutorShutDown(RuntimeError):
    """The executor was shut down while the job was waiting or running."""


# ----------------------------------------------------------------------------- framing
def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    """One frame, blocking; None at end of file."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0])


# ----------------------------------------------------------------------------- parent side
@dataclasses.dataclass(frozen=True)
class _Settings:
    memory_limit_mb: int
    cache_dirs: tuple[str, ...]


def _resolve_cache_dirs(cache_dirs) -> tuple[str, ...]:
    """Absolute, existing harness-writable directories; by default the engine's cache
    (``$DISCOVER_CACHE`` or ``runs/cache``, the convention of ``evaluators.games``)."""
    if cache_dirs is None:
        cache_dirs = [os.environ.get("DISCOVER_CACHE") or "runs/cache"]
    out = []
    for d in cache_dirs:
        p = Path(d).expanduser().resolve()
        p.mkdir(parents=True, exist_ok=True)
        out.append(str(p))
    return tuple(out)


def _check_limits(time_limit: float, memory_limit_mb: int) -> None:
    if not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if int(memory_limit_mb) < _MIN_MEMORY_MB:
        raise ValueError(f"memory_limit_mb must be at least {_MIN_MEMORY_MB}, got {memory_limit_mb!r}")


def _oom_kills() -> int:
    """The kernel's count of out-of-memory kills so far (0 where unknown)."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _worker_env(cache_dir: str | None, scratch: Path) -> dict[str, str]:
    from discover.sandbox import clean_environment

    env = clean_environment(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"     # workers may not write next to the sources
    env["TMPDIR"] = str(scratch)
    if cache_dir is not None:
        env["DISCOVER_CACHE"] = cache_dir
    return env


def _parent_sys_path() -> list[str]:
    cwd = os.getcwd()
    return [os.path.join(cwd, p) if not os.path.isabs(p) else p for p in sys.path]


class _Worker:
    """One worker process and its pipes, driven by one thread of the parent."""

    def __init__(self, settings: _Settings, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="w-", dir=directory))
        self.log = self.scratch.with_suffix(".log")
        self.killed_by_owner = False
        self._lock = threading.Lock()
        self._alarm_data = b""
        self._alarm_open = True     # until the worker's end of the alarm pipe closes
        job_r, self._job_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self._alarm_r, alarm_w = os.pipe()
        started = time.perf_counter()
        try:
            log = open(self.log, "ab")
        except OSError:
            for fd in (job_r, res_w, alarm_w, self._job_w, self._res_r, self._alarm_r):
                os.close(fd)
            raise
        try:
            with log:
                self.proc = subprocess.Popen(
                    # -m, not -c: code given with -c is compiled as "<string>", which the
                    # audit hook would take for candidate code at the bottom of every stack.
                    [sys.executable, "-m", "discover.executor", str(job_r), str(res_w), str(alarm_w)],
                    pass_fds=(job_r, res_w, alarm_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=log,
                    cwd=self.scratch, env=_worker_env(settings.cache_dirs[0] if settings.cache_dirs else None,
                                                      self.scratch),
                    start_new_session=True)
        except OSError as e:
            for fd in (self._job_w, self._res_r, self._alarm_r):
                os.close(fd)
            raise WorkerStartError(f"a worker process could not be started: {e}") from e
        finally:
            for fd in (job_r, res_w, alarm_w):
                os.close(fd)
        try:
            _write_frame(self._job_w, pickle.dumps({
                "sys_path": _parent_sys_path(), "parent_pid": os.getpid(), "scratch": str(self.scratch),
                "harness_dirs": list(settings.cache_dirs), "memory_limit_mb": int(settings.memory_limit_mb)}))
            ready = self._read_message(time.monotonic() + _START_TIMEOUT_S)
        except OSError:
            ready = None
        if not isinstance(ready, dict) or ready.get("type") != "ready":
            self.kill()
            detail = _tail(self.log)
            self.close()
            raise WorkerStartError("a worker process failed to start" + (f":\n{detail}" if detail else ""))
        self.sandbox: dict[str, str] = dict(ready.get("sandbox") or {})
        self.startup_s = time.perf_counter() - started

    # -- lifecycle
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker's process group (the worker and anything it started)."""
        with self._lock:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        self.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._job_w, self._res_r, self._alarm_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)
        try:
            self.log.unlink()
        except OSError:
            pass

    # -- messages
    def _read_message(self, deadline: float) -> dict | None | str:
        """The next result-pipe message: a dict, None at end of file, ``"timeout"`` when
        ``deadline`` passes, or ``"alarm"`` as soon as the alarm pipe delivers data."""
        buf = bytearray()
        need = _HEADER.size
        have_header = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            watched = [self._res_r, self._alarm_r] if self._alarm_open else [self._res_r]
            readable, _, _ = select.select(watched, [], [], remaining)
            if self._alarm_r in readable and self._read_alarm():
                return "alarm"
            if self._res_r not in readable:
                continue
            chunk = os.read(self._res_r, min(1 << 20, need - len(buf)))
            if not chunk:
                return None
            buf += chunk
            if len(buf) < need:
                continue
            if not have_header:
                need = _HEADER.size + _HEADER.unpack(bytes(buf[:_HEADER.size]))[0]
                have_header = True
                if need - _HEADER.size > _MAX_RESULT_BYTES:
                    raise _Malformed(f"a result of {need - _HEADER.size} bytes exceeds the "
                                     f"{_MAX_RESULT_BYTES} byte limit")
                if len(buf) < need:
                    continue
            try:
                message = json.loads(bytes(buf[_HEADER.size:need]))
            except ValueError:
                raise _Malformed("the worker sent a result that is not valid JSON") from None
            if not isinstance(message, dict):
                raise _Malformed("the worker sent a result that is not a JSON object")
            return message

    def _read_alarm(self) -> bool:
        """Reads what the alarm pipe holds now, without blocking; True if it held data
        (end of file, when the worker exits, is not an alarm)."""
        got = False
        while self._alarm_open and select.select([self._alarm_r], [], [], 0)[0]:
            chunk = os.read(self._alarm_r, 65536)
            if not chunk:
                self._alarm_open = False
                break
            self._alarm_data += chunk
            got = True
        return got

    def _alarm(self) -> str | None:
        """The first forbidden operation reported on the alarm pipe, if any."""
        self._read_alarm()
        if not self._alarm_data:
            return None
        line = self._alarm_data.split(b"\n", 1)[0].decode("utf-8", "replace")
        return line[len("FORBIDDEN "):] if line.startswith("FORBIDDEN ") else line

    # -- one job
    def run(self, job: Job, time_limit: float) -> tuple[TaskResult, bool]:
        """Runs ``job``; returns its result and whether this worker may serve another job."""
        try:
            os.truncate(self.log, 0)
        except OSError:
            pass
        payload = pickle.dumps({"space": job.space, "source": job.source, "task": job.task,
                                "seed": job.seed, "options": dict(job.options)})
        oom_before = _oom_kills()
        start = time.monotonic()
        deadline = start + time_limit
        try:
            _write_frame(self._job_w, payload)
            message = self._read_message(deadline)
        except _Malformed as e:
            self.kill()
            return TaskResult.failure(CRASHED, f"{e}; the worker was stopped", time.monotonic() - start), False
        except OSError:
            message = None
        elapsed = time.monotonic() - start
        if self.killed_by_owner:
            raise ExecutorShutDown("the executor was shut down while this job ran")
        if message == "alarm" or (isinstance(message, dict) and self._alarm() is not None):
            self.kill()
            return TaskResult.failure(FORBIDDEN, f"forbidden operation: {self._alarm()}", elapsed), False
        if message == "timeout":
            self.kill()
            return TaskResult.failure(TIMEOUT, f"exceeded the wall-time limit of {time_limit:g} s",
                                      time_limit), False
        if message is None:
            return self._death(elapsed, oom_before), False
        if message.get("type") != "result" or not isinstance(message.get("result"), dict):
            self.kill()
            return TaskResult.failure(CRASHED, "the worker sent an unexpected message; it was stopped",
                                      elapsed), False
        try:
            result = TaskResult.from_json(message["result"])
            if result.status not in STATUSES:
                raise ValueError(result.status)
        except (KeyError, TypeError, ValueError):
            self.kill()
            return TaskResult.failure(CRASHED, "the worker sent a malformed result; it was stopped",
                                      elapsed), False
        keep = not message.get("recycle", False)
        if not keep:
            self.kill()
        return result, keep

    def _death(self, elapsed: float, oom_before: int) -> TaskResult:
        """The result of a job whose worker died under it."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        if self.killed_by_owner:
            raise ExecutorShutDown("the executor was shut down while this job ran")
        alarm = self._alarm()
        if alarm is not None:
            return TaskResult.failure(FORBIDDEN, f"forbidden operation: {alarm}", elapsed)
        if code < 0 and -code == signal.SIGKILL and _oom_kills() > oom_before:
            return TaskResult.failure(MEMORY, "killed by the kernel's out-of-memory killer", elapsed)
        reason = (f"the worker was killed by {_signal_name(-code)}" if code < 0
                  else f"the worker exited with code {code}")
        log = _tail(self.log)
        return TaskResult.failure(CRASHED, reason + (f"; its last output:\n{log}" if log else ""), elapsed)


class _Malformed(Exception):
    pass


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
        seconds`` evaluated when the job is submitted (``discover.limits.TimeLimits``
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
        self._settings = _Settings(self.memory_limit_mb, _resolve_cache_dirs(cache_dirs))
        self._root = Path(tempfile.mkdtemp(prefix="discover-executor-"))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closing = False      # no more submissions
        self._aborting = False     # shutdown(wait=False): stop everything now
        self._live: list[_Worker] = []
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
        """What confinement the running workers got (see ``discover.sandbox.confine``);
        empty before any worker started."""
        with self._lock:
            return dict(self._live[0].sandbox) if self._live else {}

    # -- one thread per worker slot
    def _start_worker(self, slot: int) -> _Worker:
        w = _Worker(self._settings, self._root / f"slot-{slot}")
        with self._lock:
            self._live.append(w)
            if self._aborting:
                w.killed_by_owner = True
                w.kill()
        return w

    def _retire(self, w: _Worker | None) -> None:
        if w is None:
            return
        w.close()
        with self._lock:
            if w in self._live:
                self._live.remove(w)

    def _serve(self, slot: int) -> None:
        worker: _Worker | None = None
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
        worker = _Worker(_Settings(int(memory_limit_mb), _resolve_cache_dirs(cache_dirs)), root)
        result, _ = worker.run(job, float(time_limit))
        return dataclasses.replace(result, harness=_harness(job))
    finally:
        if worker is not None:
            worker.close()
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- worker side
def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):          # NumPy / JAX scalars and arrays
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _exception_result(e: BaseException, wall_time: float, memory_limit_mb: int) -> TaskResult:
    """The result of an evaluation that raised ``e``."""
    chain, seen = [], set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        chain.append(x)
        x = x.__cause__ or x.__context__
    if any(isinstance(c, MemoryError) for c in chain):
        return TaskResult.failure(MEMORY, f"out of memory (limit {memory_limit_mb} MiB): "
                                          f"{type(e).__name__}", wall_time)
    tb = e.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next                      # the worker's own frame says nothing
    try:
        text = "".join(traceback.format_exception(type(e), e, tb))
    except BaseException:  # noqa: BLE001 - an exception whose message itself fails
        text = f"{type(e).__name__} (its message could not be formatted)"
    if "RESOURCE_EXHAUSTED" in text:
        return TaskResult.failure(MEMORY, f"out of memory (limit {memory_limit_mb} MiB): "
                                          f"{text.strip().splitlines()[-1][:500]}", wall_time)
    lines = text.rstrip().splitlines()[-_ERROR_LINES:]
    return TaskResult.failure(ERROR, "\n".join(lines)[-_ERROR_CHARS:], wall_time)


def _empty(directory: str) -> None:
    """Removes everything inside ``directory`` (what the job, or its candidate, left)."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _run_job(msg: dict, spaces_cache: dict, scratch: str, memory_limit_mb: int) -> dict:
    """Evaluates one job inside the worker; returns the result message."""
    from discover import sandbox
    from discover.space import TaskResult as _TaskResult
    from discover.spaces import get_space

    job_dir = tempfile.mkdtemp(prefix="job-", dir=scratch)
    os.chdir(job_dir)
    tempfile.tempdir = job_dir
    start = time.perf_counter()
    replaced: list[str] = []
    changed: list[str] = []
    try:
        space = spaces_cache.get(msg["space"])
        if space is None:
            space = spaces_cache[msg["space"]] = get_space(msg["space"])
        package = type(space).__module__.partition(".")[0]
        snapshot = sandbox.HarnessSnapshot(extra_packages=(package,))
        before = sandbox.global_state()
        restorable = sandbox.RestorableState()
        try:
            result = space.evaluate(msg["source"], msg["task"], msg["seed"], **msg["options"])
            if not isinstance(result, _TaskResult):
                result = _TaskResult.failure(ERROR, f"space {msg['space']!r} returned a "
                                                    f"{type(result).__name__}, not a TaskResult")
        except BaseException as e:  # noqa: BLE001 - whatever the candidate raised
            result = _exception_result(e, time.perf_counter() - start, memory_limit_mb)
        replaced = snapshot.replaced()
        restorable.restore()
        changed = sandbox.changed_state(before, sandbox.global_state())
    except BaseException as e:  # noqa: BLE001 - the space itself failed to load
        result = _exception_result(e, time.perf_counter() - start, memory_limit_mb)
    wall = time.perf_counter() - start
    os.chdir(scratch)
    tempfile.tempdir = scratch
    _empty(scratch)
    if replaced:
        result = TaskResult.failure(FORBIDDEN, "the candidate rebound harness objects: "
                                    + ", ".join(replaced[:10]), wall)
    if not result.wall_time:
        result = dataclasses.replace(result, wall_time=wall)
    return {"type": "result", "result": result.to_json(),
            "recycle": bool(replaced or changed or result.status == MEMORY), "changed": changed}


def _worker_main() -> None:
    """Entry point of a worker process (``python -m discover.executor JOB_FD RESULT_FD ALARM_FD``,
    started by ``_Worker``); see the module docstring."""
    job_fd, result_fd, alarm_fd = (int(a) for a in sys.argv[1:4])
    frame = _read_frame(job_fd)
    if frame is None:
        os._exit(0)
    init = pickle.loads(frame)
    sys.path[:] = init["sys_path"]
    from discover import sandbox

    sandbox.die_with_parent()
    if os.getppid() != init["parent_pid"]:
        os._exit(0)                          # the parent is already gone
    policy = sandbox.Policy(scratch=init["scratch"], harness_dirs=tuple(init["harness_dirs"]),
                            memory_limit_mb=init["memory_limit_mb"])
    sandbox.set_resource_limits(policy.memory_limit_mb)
    report = sandbox.confine(policy)
    import faulthandler

    faulthandler.enable()
    # Imported before the audit guard, so that the harness's own imports are settled.
    import discover.space  # noqa: F401
    import discover.spaces  # noqa: F401

    sandbox.install_audit_guard(policy, alarm_fd)
    _write_frame(result_fd, json.dumps({"type": "ready", "sandbox": report}).encode())
    spaces_cache: dict = {}
    while True:
        frame = _read_frame(job_fd)
        if frame is None:
            os._exit(0)
        reply = _run_job(pickle.loads(frame), spaces_cache, policy.scratch, policy.memory_limit_mb)
        try:
            data = json.dumps(reply, default=_jsonable).encode()
        except (TypeError, ValueError) as e:
            reply["result"] = TaskResult.failure(ERROR, f"the result could not be serialized: {e}",
                                                 reply["result"].get("wall_time") or 0.0).to_json()
            data = json.dumps(reply, default=_jsonable).encode()
        _write_frame(result_fd, data)
        if reply["recycle"]:
            os._exit(0)


if __name__ == "__main__":
    _worker_main()
