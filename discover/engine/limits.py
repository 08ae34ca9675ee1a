"""Per-evaluation wall-time limits derived from what honest work costs on this machine.

A candidate that hangs must cost a small, bounded multiple of an honest evaluation, not a
fixed ten minutes. The rule, for one task of a space with options ``O``:

    limit(task, O) = max(FLOOR_S, FACTOR × t_ref(task, O))

where ``t_ref`` is the wall time of the space's reference program (``Space.reference_seed``,
e.g. CFR+ for the CFR space) evaluated on that task with those options, timed here, in the
trusted parent process, never in a worker. The timing is of the first, cold evaluation on
the machine: it includes one-time setup (building and caching the game arrays, computing
the reference curves, compiling), so it errs on the generous side; the floor covers a
worker's own start-up (imports, ~2 s) on tasks that take milliseconds. Timings are cached
on disk (``timings/`` beside the engine's cache folder, which workers cannot write) keyed by
space, task, options, the reference's source, the space's code, the library versions and
the machine (CPU count, JAX platform), so they are paid once per machine.

A space without a reference program uses its own ``time_limit`` attribute if it sets one,
else ``FALLBACK_S``. An explicit limit (``--time-limit``, ``time_limit`` in a run's config)
overrides all of this.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

FACTOR = 10.0
FLOOR_S = 20.0
FALLBACK_S = 600.0
TIMING_VERSION = 1


def timings_dir() -> Path:
    """``timings/`` beside the engine's cache (``$DISCOVER_CACHE`` or ``runs/cache``)."""
    cache = Path(os.environ.get("DISCOVER_CACHE") or "runs/cache").expanduser()
    return cache.resolve().parent / "timings"


def _machine() -> dict[str, Any]:
    try:
        import jax
        jax_platform = jax.default_backend()
    except Exception:  # noqa: BLE001 - no JAX, or no usable backend: not part of the key
        jax_platform = None
    versions = {}
    for dist in ("discover", "numpy", "jax", "open-spiel", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpus": os.cpu_count(), "jax_platform": jax_platform, "python": platform.python_version(),
            "versions": versions}


def _space_digest(space) -> str:
    try:
        return hashlib.sha256(Path(inspect.getfile(type(space))).read_bytes()).hexdigest()
    except (OSError, TypeError):
        return ""


class TimeLimits:
    """``limits(job) -> seconds``: the wall-time limit of one job (see the module docstring).

    Args:
      override: a fixed limit in seconds for every job; None derives them.
      on_timing: called with a one-line message before a reference program is timed (it
        can take as long as one evaluation), for progress displays.

    Timings are computed on the first job of each (space, task, options) and memoised; the
    object is safe to call from several threads.
    """

    def __init__(self, override: float | None = None, *, on_timing: Callable[[str], None] | None = None):
        if override is not None and not override > 0:
            raise ValueError(f"a time limit must be a positive number of seconds, got {override!r}")
        self.override = None if override is None else float(override)
        self._on_timing = on_timing or (lambda message: None)
        self._memo: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, job) -> float:
        if self.override is not None:
            return self.override
        from discover.engine import probe
        if job.kind == probe.PROBE:
            return probe.TIME_LIMIT
        from discover.spaces import get_space
        space = get_space(job.space)
        return self.for_task(space, job.task, job.options)

    def for_task(self, space, task: str, options: Mapping[str, Any]) -> float:
        """The limit of one evaluation of ``space`` on ``task`` with ``options``."""
        if self.override is not None:
            return self.override
        reference = getattr(space, "reference_seed", None)
        if not reference:
            return float(getattr(space, "time_limit", None) or FALLBACK_S)
        seconds = self.reference_seconds(space, task, options)
        if seconds is None:
            return FALLBACK_S
        return max(FLOOR_S, FACTOR * seconds)

    def reference_seconds(self, space, task: str, options: Mapping[str, Any]) -> float | None:
        """Wall seconds of the reference program on ``task`` (cold, timed in this process),
        from the disk cache when this machine timed it before; None when the reference
        itself fails (its error then shows in the candidate's own evaluation)."""
        source = space.seeds().get(space.reference_seed)
        if source is None:
            return None
        key = {"version": TIMING_VERSION, "space": space.name, "task": task,
               "options": {k: options[k] for k in sorted(options)},
               "reference_sha256": hashlib.sha256(source.encode()).hexdigest(),
               "space_sha256": _space_digest(space), "machine": _machine()}
        text = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        with self._lock:
            if digest in self._memo:
                return self._memo[digest]
            path = timings_dir() / f"{digest}.json"
            seconds = _read(path, key)
            if seconds is None:
                self._on_timing(f"timing the reference program {space.reference_seed} on "
                                f"{space.task_label(task)} (once per machine) …")
                start = time.perf_counter()
                try:
                    result = space.evaluate(source, task, 0, **dict(options))
                except Exception:  # noqa: BLE001 - bad options fail the candidate's own job too
                    return None
                seconds = time.perf_counter() - start
                if not result.ok:
                    return None
                _write(path, key, seconds)
            self._memo[digest] = seconds
            return seconds


def _read(path: Path, key: Mapping[str, Any]) -> float | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if json.dumps(data.get("key"), sort_keys=True, default=str) != json.dumps(key, sort_keys=True, default=str):
        return None
    seconds = data.get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None


def _write(path: Path, key: Mapping[str, Any], seconds: float) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "seconds": seconds}, f, default=str)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only folder only costs timing again next time
