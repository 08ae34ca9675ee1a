"""Which backend evaluates a fresh candidate faster, per game, at a given iteration count.

Each candidate is new code, so the JAX path pays its compilation every time; this measures
NumPy against JAX end to end (compilation included) for two seeds per game in one process,
and prints the cost model's choice beside the measurement.

    python benchmarks/cfr_backend_choice.py [--iterations 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from evaluators.cfr import preferred_backend, run_cfr
from evaluators.games import load_game_arrays
from search_spaces.cfr_variants import SPACE, load_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seeds", default="dcfr,pcfr_plus,cfr_plus")
    args = ap.parse_args()
    sources = SPACE.seeds()
    names = args.seeds.split(",")
    out = {}
    print(f"{'game':14s} {'nodes':>8s} {'numpy s':>8s} {'jax s':>8s} {'faster':>7s} {'chosen':>7s}")
    for game in list(SPACE.train_tasks) + list(SPACE.held_out_tasks):
        arrays = load_game_arrays(game)
        times = {}
        for backend in ("numpy", "jax"):
            ts = []
            for name in names:
                rules, _ = load_rules(sources[name])  # fresh functions: JAX recompiles
                t = time.perf_counter()
                run_cfr(rules, arrays, args.iterations, backend=backend)
                ts.append(time.perf_counter() - t)
            times[backend] = statistics.median(ts)
        faster = min(times, key=times.get)
        chosen = preferred_backend(arrays, args.iterations)
        label = SPACE.task_label(game)
        out[label] = {"numpy_s": times["numpy"], "jax_s": times["jax"], "faster": faster, "chosen": chosen}
        print(f"{label:14s} {arrays.num_nodes:8d} {times['numpy']:8.2f} {times['jax']:8.2f} {faster:>7s} {chosen:>7s}",
              flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
