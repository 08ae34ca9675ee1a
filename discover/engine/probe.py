"""Behavioural fingerprints, computed in the isolated executor like any evaluation.

A probe runs candidate code, so it must not run in the loop's own process. It is a job of
its own kind (``Job(space=..., source=..., kind=PROBE)``): the worker executes the source
and calls the space's ``probe`` on its namespace (``fingerprint``); the fingerprint comes
back as the result's single curve row. A space without a probe fingerprints the program's
normalised code text instead (``code_fingerprint``). A probe calls the candidate's
functions on a few small inputs, so it gets the fixed ``TIME_LIMIT``.
"""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np

from discover.space import INVALID, OK, Space, TaskResult

EVALUATE, PROBE = "evaluate", "probe"     # the kinds of job
KINDS = (EVALUATE, PROBE)
# Seconds, worker start-up included: a candidate that hangs on the probe inputs stops here.
TIME_LIMIT = 20.0


def fingerprint(space: Space, source: str) -> TaskResult:
    """The candidate's behavioural fingerprint as a result whose one curve row is the
    fingerprint; ``invalid`` if it fails on the probe inputs or gives non-finite outputs.
    Runs candidate code: only inside a worker."""
    start = time.perf_counter()
    if space.probe is None:
        return TaskResult(status=OK, curve=[code_fingerprint(source)], wall_time=time.perf_counter() - start)
    namespace: dict = {"__name__": "candidate"}
    exec(compile(source, "<candidate>", "exec"), namespace)
    try:
        fp = np.asarray(space.probe(namespace), dtype=np.float64).ravel()
    except ValueError as e:
        return TaskResult.failure(INVALID, f"probe: {e}", time.perf_counter() - start)
    if not all(math.isfinite(v) for v in fp):
        return TaskResult.failure(INVALID, "probe: outputs are not finite", time.perf_counter() - start)
    return TaskResult(status=OK, curve=[fp.tolist()], wall_time=time.perf_counter() - start)


def code_fingerprint(source: str) -> list[float]:
    """The fallback fingerprint: the SHA-256 of the normalised evolve block, as 32 numbers.
    Programs that differ only in formatting, comments or docstrings are one point; any other
    difference is far (relative distance ≥ 1/256)."""
    from discover.program import normalized_code
    return [float(b) for b in hashlib.sha256(normalized_code(source).encode()).digest()]
