"""Behavioural fingerprints, computed in the isolated executor like any evaluation.

A probe runs candidate code, so it must not run in the loop's own process. It is submitted
as a job whose space is ``discover.probe:PROBE`` and whose task is the real space's name;
the fingerprint comes back as the result's single curve row.
"""

from __future__ import annotations

import math
import time

import numpy as np

from discover.space import INVALID, OK, Space, TaskResult


class ProbeSpace(Space):
    name = "probe"

    def evaluate(self, source: str, task: str, seed: int = 0, **options) -> TaskResult:
        from discover.spaces import get_space

        start = time.perf_counter()
        space = get_space(task)
        namespace: dict = {"__name__": "candidate"}
        exec(compile(source, "<candidate>", "exec"), namespace)
        try:
            fp = np.asarray(space.probe(namespace), dtype=np.float64).ravel()
        except ValueError as e:
            return TaskResult.failure(INVALID, f"probe: {e}", time.perf_counter() - start)
        if not all(math.isfinite(v) for v in fp):
            return TaskResult.failure(INVALID, "probe: outputs are not finite", time.perf_counter() - start)
        return TaskResult(status=OK, curve=[fp.tolist()], wall_time=time.perf_counter() - start)


PROBE = ProbeSpace()
PROBE_SPACE = "discover.probe:PROBE"
