"""Behavioural fingerprints, computed in the isolated executor like any evaluation.

A probe runs candidate code, so it must not run in the loop's own process. It is submitted
as a job whose space is ``discover.probe:PROBE`` and whose task is the real space's name;
the fingerprint comes back as the result's single curve row.
"""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np

from discover.space import INVALID, OK, Space, TaskResult


class ProbeSpace(Space):
    name = "probe"
    probe = None
    # A probe calls the candidate's functions on a few small inputs: seconds at most, worker
    # start-up included; a candidate that hangs on them is stopped at the engine's floor.
    time_limit = 20.0

    def evaluate(self, source: str, task: str, seed: int = 0, **options) -> TaskResult:
        from discover.spaces import get_space

        start = time.perf_counter()
        space = get_space(task)
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


PROBE = ProbeSpace()
PROBE_SPACE = "discover.probe:PROBE"
