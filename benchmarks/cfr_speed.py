"""CFR+ iterations per second: our engine against OpenSpiel's C++ ``CFRPlusSolver``.

Both run in this process, side by side, on the same games. Ours is the CFR+ seed
(seeds/cfr_variants/cfr_plus.py) through the engine ``run_cfr`` uses; only iterations are
timed (compilation is reported separately, exploitability is not computed). Each figure is
the median of three timed runs of a calibrated number of iterations, by wall clock; the
last column divides the CPU-time rates instead, which is steadier on a shared machine.

    python benchmarks/cfr_speed.py                       # the four default games
    python benchmarks/cfr_speed.py --games kuhn_poker --seconds 0.5 --numpy

The last line printed is JSON: ``{"<game>": <our it/s divided by OpenSpiel's>, ...}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyspiel  # noqa: E402

from evaluators import cfr, games  # noqa: E402

DEFAULT_GAMES = ["kuhn_poker", "leduc_poker", "liars_dice",
                 "goofspiel(imp_info=True,num_cards=5,points_order=descending)"]


def seed_rules(name: str = "cfr_plus") -> dict:
    namespace: dict = {}
    exec((ROOT / "seeds" / "cfr_variants" / f"{name}.py").read_text(), namespace)
    return {k: namespace[k] for k in cfr.RULE_NAMES}


def rate(step: Callable[[int], None], seconds: float) -> tuple[float, float]:
    """Median iterations per second of ``step(n)`` over three runs of ~``seconds``, by
    wall clock and by this process's CPU time (steadier on a shared machine)."""
    n = 1
    while True:  # calibrate: double n until one run takes a tenth of the target
        begin = time.perf_counter()
        step(n)
        elapsed = time.perf_counter() - begin
        if elapsed >= seconds / 10 or n >= 1 << 24:
            break
        n *= 2
    n = max(1, int(n * seconds / max(elapsed, 1e-9)))
    wall, cpu = [], []
    for _ in range(3):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        step(n)
        wall.append(n / (time.perf_counter() - begin))
        cpu.append(n / max(time.process_time() - begin_cpu, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def ours(game: str, backend: str, seconds: float) -> tuple[tuple[float, float], float]:
    """((wall, CPU) iterations per second, compile seconds) of our engine."""
    engine = cfr.compile_cfr(seed_rules(), games.load_game_arrays(game), backend=backend)
    state = {"s": engine.advance(engine.start(), 1)}

    def step(n: int) -> None:
        s = state["s"]
        state["s"] = engine.advance(s, s.iteration + n)

    return rate(step, seconds), engine.compile_time


def openspiel(game: str, seconds: float) -> tuple[float, float]:
    solver = pyspiel.CFRPlusSolver(games.load_game(game))
    solver.evaluate_and_update_policy()

    def step(n: int) -> None:
        for _ in range(n):
            solver.evaluate_and_update_policy()

    return rate(step, seconds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=DEFAULT_GAMES, help="OpenSpiel game strings")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each timed run")
    parser.add_argument("--numpy", action="store_true", help="also time the NumPy backend")
    args = parser.parse_args(argv)

    ratios = {}
    print(f"{'game':<28}{'ours it/s':>12}{'compile s':>11}"
          + (f"{'numpy it/s':>12}" if args.numpy else "")
          + f"{'OpenSpiel it/s':>16}{'ratio':>8}{'CPU-time ratio':>16}")
    for game in args.games:
        (ours_wall, ours_cpu), compile_time = ours(game, "jax", args.seconds)
        numpy_wall = ours(game, "numpy", args.seconds)[0][0] if args.numpy else None
        os_wall, os_cpu = openspiel(game, args.seconds)
        ratios[game] = ours_wall / os_wall
        print(f"{game[:27]:<28}{ours_wall:>12.1f}{compile_time:>11.2f}"
              + (f"{numpy_wall:>12.1f}" if args.numpy else "")
              + f"{os_wall:>16.1f}{ratios[game]:>8.1f}{ours_cpu / os_cpu:>16.1f}", flush=True)
    print(json.dumps({g: round(r, 2) for g, r in ratios.items()}))


if __name__ == "__main__":
    main()
