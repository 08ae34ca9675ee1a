"""The worker process: confines itself, then evaluates the jobs the engine sends, one at a time.

Started by ``discover.isolation.worker_process.WorkerProcess`` as ``python -m discover.isolation.worker JOB_FD
RESULT_FD ALARM_FD``. It reads its settings (sys.path, scratch folder, limits) from the first
frame, applies the resource limits and the kernel confinement of ``discover.isolation.sandbox``,
installs the audit guard, says it is ready, and then answers each job frame with one result
frame (``discover.isolation.wire``). A candidate's exception, memory exhaustion or forbidden operation
becomes a typed ``TaskResult``; after each job the scratch folder is emptied, and a job that
changed process-wide state makes the worker exit so the engine replaces it. See
``discover.isolation.executor`` for the whole design.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any

from discover.space import ERROR, FORBIDDEN, MEMORY, TaskResult
from discover.isolation.wire import read_frame, write_frame

_ERROR_LINES = 20
_ERROR_CHARS = 4000


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
    from discover.isolation import audit
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
        snapshot = audit.HarnessSnapshot(extra_packages=(package,))
        before = audit.global_state()
        restorable = audit.RestorableState()
        try:
            if msg.get("kind") == "probe":
                from discover.engine.probe import fingerprint
                result = fingerprint(space, msg["source"])
            else:
                result = space.evaluate(msg["source"], msg["task"], msg["seed"], **msg["options"])
            if not isinstance(result, _TaskResult):
                result = _TaskResult.failure(ERROR, f"space {msg['space']!r} returned a "
                                                    f"{type(result).__name__}, not a TaskResult")
        except BaseException as e:  # noqa: BLE001 - whatever the candidate raised
            result = _exception_result(e, time.perf_counter() - start, memory_limit_mb)
        replaced = snapshot.replaced()
        restorable.restore()
        changed = audit.changed_state(before, audit.global_state())
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
    """Entry point of a worker process (``python -m discover.isolation.worker JOB_FD RESULT_FD ALARM_FD``,
    started by ``discover.isolation.worker_process.WorkerProcess``); see ``discover.isolation.executor``."""
    job_fd, result_fd, alarm_fd = (int(a) for a in sys.argv[1:4])
    frame = read_frame(job_fd)
    if frame is None:
        os._exit(0)
    init = pickle.loads(frame)
    sys.path[:] = init["sys_path"]
    from discover.isolation import audit, sandbox

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

    audit.install_audit_guard(policy, alarm_fd)
    write_frame(result_fd, json.dumps({"type": "ready", "sandbox": report}).encode())
    spaces_cache: dict = {}
    while True:
        frame = read_frame(job_fd)
        if frame is None:
            os._exit(0)
        reply = _run_job(pickle.loads(frame), spaces_cache, policy.scratch, policy.memory_limit_mb)
        try:
            data = json.dumps(reply, default=_jsonable).encode()
        except (TypeError, ValueError) as e:
            reply["result"] = TaskResult.failure(ERROR, f"the result could not be serialized: {e}",
                                                 reply["result"].get("wall_time") or 0.0).to_json()
            data = json.dumps(reply, default=_jsonable).encode()
        write_frame(result_fd, data)
        if reply["recycle"]:
            os._exit(0)


if __name__ == "__main__":
    _worker_main()
