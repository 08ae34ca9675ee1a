"""The engine's side of one worker process: start it, send it a job, wait for its one
result under the job's wall-time limit, and tell what happened when it misbehaved.

``WorkerProcess.run(job, time_limit)`` returns the job's ``TaskResult`` and whether the
worker may serve another job: a timeout, a crash, a forbidden operation, an out-of-memory
kill or a malformed result frame is turned into the matching status here, and the worker
is stopped. ``discover.isolation.executor.LocalExecutor`` keeps a pool of these.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from discover.space import CRASHED, FORBIDDEN, MEMORY, STATUSES, TIMEOUT, TaskResult
from discover.isolation.wire import HEADER, MAX_RESULT_BYTES, write_frame

_START_TIMEOUT_S = 120.0
_LOG_TAIL_CHARS = 1500
_MIN_MEMORY_MB = 64


class WorkerStartError(RuntimeError):
    """A worker process could not be started (an environment problem, not a candidate's)."""


class ExecutorShutDown(RuntimeError):
    """The executor was shut down while the job was waiting or running."""


@dataclasses.dataclass(frozen=True)
class Settings:
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
    from discover.isolation.sandbox import clean_environment

    env = clean_environment(os.environ)
    root = str(Path(__file__).resolve().parents[2])      # the folder holding the discover package
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"     # workers may not write next to the sources
    env["TMPDIR"] = str(scratch)
    if cache_dir is not None:
        env["DISCOVER_CACHE"] = cache_dir
    return env


def _parent_sys_path() -> list[str]:
    cwd = os.getcwd()
    return [os.path.join(cwd, p) if not os.path.isabs(p) else p for p in sys.path]


class WorkerProcess:
    """One worker process and its pipes, driven by one thread of the parent."""

    def __init__(self, settings: Settings, directory: Path):
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
                    [sys.executable, "-m", "discover.isolation.worker", str(job_r), str(res_w), str(alarm_w)],
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
            write_frame(self._job_w, pickle.dumps({
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
        need = HEADER.size
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
                need = HEADER.size + HEADER.unpack(bytes(buf[:HEADER.size]))[0]
                have_header = True
                if need - HEADER.size > MAX_RESULT_BYTES:
                    raise _Malformed(f"a result of {need - HEADER.size} bytes exceeds the "
                                     f"{MAX_RESULT_BYTES} byte limit")
                if len(buf) < need:
                    continue
            try:
                message = json.loads(bytes(buf[HEADER.size:need]))
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
    def run(self, job, time_limit: float) -> tuple[TaskResult, bool]:
        """Runs ``job`` (a ``discover.isolation.executor.Job``); returns its result and whether this
        worker may serve another job."""
        try:
            os.truncate(self.log, 0)
        except OSError:
            pass
        payload = pickle.dumps({"space": job.space, "source": job.source, "task": job.task,
                                "seed": job.seed, "options": dict(job.options), "kind": job.kind})
        oom_before = _oom_kills()
        start = time.monotonic()
        deadline = start + time_limit
        try:
            write_frame(self._job_w, payload)
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
