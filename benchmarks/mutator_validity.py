"""How often the offline mutator's children are valid, and how often they beat their parent.

For every seed of a space (default ``cfr_variants``) and every edit kind, the offline
mutator is asked for children (the other seeds serve as crossover partners); each child is

1. loaded and run through the space's ``probe`` (the behavioural fingerprint: the rules on
   fixed synthetic inputs up to t = 1000; any exception, wrong shape or NaN is a failure),
2. unless ``--no-game``, evaluated by the space on one game for a few hundred iterations
   (``Space.evaluate``, NumPy backend), and compared with its parent's score there.

Prints, per edit kind: proposals returned / asked, the fraction valid on the probe, the
fraction valid on the game, and the fraction of game-valid children scoring above their
parent. ``--json`` prints the same as JSON.

    python benchmarks/mutator_validity.py                      # ~3 min on 2 cores
    python benchmarks/mutator_validity.py --no-game --per-kind 24
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from discover.checks import load_candidate  # noqa: E402
from discover.mutators import MutationContext, OfflineMutator, OfflineMutatorConfig, Parent  # noqa: E402
from discover.mutators.offline import KINDS  # noqa: E402


def load_space(name: str):
    try:
        from discover.spaces import get_space  # the registry: entry points, source checkout
    except ImportError:
        return importlib.import_module(f"search_spaces.{name}").SPACE
    return get_space(name)


def probe_failure(space, source: str) -> str | None:
    try:
        space.probe(load_candidate(source))
    except Exception as e:  # noqa: BLE001 - any failure of the child is the measurement
        return f"{type(e).__name__}: {e}"
    return None


def game_score(space, source: str, game: str, iterations: int) -> float | None:
    try:
        result = space.evaluate(source, game, iterations=iterations, backend="numpy")
    except Exception:  # noqa: BLE001
        return None
    score = result.metrics.get("score") if result.ok else None
    return score if score is not None and math.isfinite(score) else None


def measure(space, per_kind: int, seed: int, game: str | None, iterations: int) -> dict:
    seeds = space.seeds()
    names = sorted(seeds)
    parent_scores = {n: game_score(space, seeds[n], game, iterations) for n in names} if game else {}
    rows: dict[str, collections.Counter] = {}
    failures: dict[str, list] = collections.defaultdict(list)
    for kind in (*KINDS, "default"):
        config = OfflineMutatorConfig() if kind == "default" else OfflineMutatorConfig(weights={kind: 1.0})
        mutator = OfflineMutator(seed, config)
        row = collections.Counter()
        for i, name in enumerate(names):
            parent = Parent(i, seeds[name])
            partners = [Parent(100 + j, seeds[o]) for j, o in enumerate(names) if o != name]
            context = MutationContext(space, parent, inspirations=partners, rng_seed=seed)
            proposals = mutator.propose(context, per_kind)
            row["asked"] += per_kind
            row["proposed"] += len(proposals)
            for p in proposals:
                error = probe_failure(space, p.source)
                row["probe_valid"] += error is None
                if error:
                    failures[kind].append((name, p.edit, error))
                if game:
                    score = game_score(space, p.source, game, iterations)
                    row["game_valid"] += score is not None
                    if score is not None and parent_scores[name] is not None:
                        row["improved"] += score > parent_scores[name]
                        row["compared"] += 1
        rows[kind] = row
    return {"rows": rows, "failures": failures, "parent_scores": parent_scores}


def _fraction(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cfr_variants")
    parser.add_argument("--per-kind", type=int, default=8, help="children asked per seed and edit kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--game", default="leduc_poker")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--no-game", action="store_true", help="probe validity only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    space = load_space(args.space)
    begin = time.perf_counter()
    result = measure(space, args.per_kind, args.seed, None if args.no_game else args.game, args.iterations)
    rows = result["rows"]
    if args.json:
        print(json.dumps({k: dict(v) for k, v in rows.items()}, indent=2))
        return 0
    where = "" if args.no_game else f"; game {args.game}, {args.iterations} iterations"
    print(f"space {space.name}, {len(space.seeds())} seeds, {args.per_kind} children asked per seed and kind{where}")
    print(f"{'kind':<10} {'proposed':>9} {'probe-valid':>12} {'game-valid':>11} {'improved':>9}")
    for kind, row in rows.items():
        print(f"{kind:<10} {row['proposed']:>4}/{row['asked']:<4} {_fraction(row['probe_valid'], row['proposed']):>12}"
              f" {_fraction(row['game_valid'], row['proposed'] if not args.no_game else 0):>11}"
              f" {_fraction(row['improved'], row['compared']):>9}")
    for kind, items in result["failures"].items():
        for name, edit, error in items[:3]:
            print(f"  probe failure [{kind}] {name}: {edit} -> {error[:120]}")
    print(f"({time.perf_counter() - begin:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
