"""A trivial space for executor tests: the candidate defines ``f(x)``; the task is the
number ``x`` as a string; the score is ``f(x) + seed``.

Like a real space, it compiles the candidate under a name that is not a file path
(``"<candidate>"``), so the worker's audit hook recognises candidate frames.
Options: ``harness_write=True`` makes the harness itself (not the candidate) write a note
into the engine's cache directory, as an evaluator caching game arrays does.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from discover.space import INVALID, OK, Space, TaskResult


class ToySpace(Space):
    name = "toy"
    doc = "Define f(x: float) -> float."
    required_functions = ("f",)
    train_tasks = ("1", "2")

    def evaluate(self, source: str, task: str, seed: int = 0, **options) -> TaskResult:
        start = time.perf_counter()
        namespace: dict = {"__name__": "candidate"}
        exec(compile(source, "<candidate>", "exec"), namespace)
        value = float(namespace["f"](float(task))) + seed
        if options.get("harness_write"):
            note = Path(os.environ["DISCOVER_CACHE"]) / f"toy-{task}.txt"
            note.write_text(repr(value))
        if not math.isfinite(value):
            return TaskResult.failure(INVALID, "f(x) is not finite", time.perf_counter() - start)
        return TaskResult(status=OK, metrics={"score": value, "pid": float(os.getpid())},
                          curve=[[0.0, value]], wall_time=time.perf_counter() - start)


SPACE = ToySpace()
