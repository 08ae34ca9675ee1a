"""A small, fast, deterministic space for loop tests: fit a known curve.

The candidate defines ``f(x)``; each task is a range of x; the task's score is
−log10 of the mean squared error against ``TARGET`` on that range, so the known optimum is
``TARGET`` itself. It behaves like a real space (candidate compiled as "<candidate>",
invalid on non-finite output, probe fingerprint = outputs on fixed inputs), only in
milliseconds, so the loop's own behaviour (resume, determinism, containment) can be tested
without waiting for game evaluations.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from discover.space import INVALID, OK, Space, TaskResult

RANGES = {"left": (-2.0, 0.0), "right": (0.0, 2.0), "far": (2.0, 4.0)}


def target(x: np.ndarray) -> np.ndarray:
    return 1.3 * x * x - 0.7 * x + 0.25


class FitSpace(Space):
    name = "tests.fit_space:SPACE"
    doc = "Define f(x: float) -> float approximating an unknown curve."
    required_functions = ("f",)
    seeds_dir = Path(__file__).parent / "fit_seeds"
    train_tasks = ("left", "right")
    held_out_tasks = ("far",)
    mechanisms = {"quadratic": "def f(x):\n    return 1.0 * x * x + 0.5\n"}

    def evaluate(self, source: str, task: str, seed: int = 0, delay_s: float = 0.0, **options) -> TaskResult:
        """``delay_s`` (an eval option) makes each evaluation take at least that long, so
        tests can stop a run in the middle of a generation."""
        start = time.perf_counter()
        time.sleep(float(delay_s))
        ns: dict = {"__name__": "candidate"}
        exec(compile(source, "<candidate>", "exec"), ns)
        lo, hi = RANGES[task]
        xs = np.linspace(lo, hi, 9)
        ys = np.array([float(ns["f"](float(x))) for x in xs])
        if not np.all(np.isfinite(ys)):
            return TaskResult.failure(INVALID, "f returned a non-finite value", time.perf_counter() - start)
        err = float(np.mean((ys - target(xs)) ** 2))
        return TaskResult(status=OK, metrics={"score": -math.log10(err + 1e-12), "final_exploitability": err},
                          curve=[[float(x), float(y)] for x, y in zip(xs, ys)],
                          wall_time=time.perf_counter() - start)

    def probe(self, namespace) -> np.ndarray:
        return np.array([float(namespace["f"](x)) for x in (-1.5, -0.3, 0.0, 0.4, 1.7)])


SPACE = FitSpace()


class NoisyFitSpace(FitSpace):
    """``FitSpace`` with evaluation noise: each (program, task, seed) adds a fixed draw of
    N(0, 0.5²) to the score, as a training run's return varies with its seed."""

    name = "tests.fit_space:NOISY"
    stochastic = True

    def evaluate(self, source: str, task: str, seed: int = 0, **options) -> TaskResult:
        result = super().evaluate(source, task, seed, **options)
        if not result.ok:
            return result
        noise = noise_draw(source, task, seed)
        return TaskResult(status=OK, metrics={**result.metrics, "score": result.metrics["score"] + noise,
                                              "noise": noise},
                          curve=result.curve, wall_time=result.wall_time)


def noise_draw(source: str, task: str, seed: int) -> float:
    import zlib
    rng = np.random.default_rng([zlib.crc32(source.encode()), zlib.crc32(task.encode()), int(seed)])
    return 0.5 * float(rng.standard_normal())


NOISY = NoisyFitSpace()
