"""The loop's own overhead per candidate against the evaluation time.

Runs a real offline discovery run on cfr_variants (SQLite store, isolated workers) and
splits the wall time of its generations into time blocked on train evaluations and
everything else the loop does: selection, mutation, static checks, probe round trips, the
ε-net and every store write. Target: overhead under 5% of the generations' wall time.

    python benchmarks/loop_overhead.py [--budget 40] [--workers 2] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from discover.config import RunConfig
from discover.isolation.executor import LocalExecutor
from discover.engine.loop import Discovery
from discover.mutators.offline import OfflineMutator
from discover.spaces import get_space
from discover.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seeds", default="cfr_plus,dcfr")
    args = ap.parse_args()
    space = get_space("cfr_variants")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        config = RunConfig(space="cfr_variants", budget=args.budget, workers=args.workers,
                           seeds=tuple(args.seeds.split(",")), eval_options={"iterations": args.iterations})
        run = store.create_run("bench", config.space, config.to_json(), 0, config.budget, "offline", {})
        t0 = time.perf_counter()
        with LocalExecutor(workers=args.workers) as ex:
            disc = Discovery(space, store, ex, OfflineMutator(seed=0), config, run)
            disc.execute()
        total = time.perf_counter() - t0
        gen = disc.timings["generations"]
        wait = disc.timings["generation_evaluation_wait"]
        children = len([p for p in store.programs(run.id) if p.generation > 0]) + len(store.rejections(run.id))
        overhead = gen - wait
        out = {"candidates": children, "generations_s": gen, "evaluation_wait_s": wait,
               "overhead_s": overhead, "overhead_ms_per_candidate": 1000 * overhead / max(1, children),
               "overhead_fraction": overhead / gen if gen else float("nan"), "total_s": total}
    print(f"candidates proposed       {children}")
    print(f"generations wall time     {gen:8.2f} s")
    print(f"blocked on evaluations    {wait:8.2f} s")
    print(f"loop overhead             {overhead:8.2f} s  ({out['overhead_ms_per_candidate']:.1f} ms per candidate,"
          f" {100 * out['overhead_fraction']:.1f}% of the generations' wall time)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
