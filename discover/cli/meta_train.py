"""The `discover meta-train` command: learn an LPO-style drift network with an evolution
strategy and store each generation's mean as a program of the space.

``register(subparsers, command)`` adds the command to the parser built by
``discover.cli`` (``command(name, help, example)`` is that parser's helper). The command
opens the store, calls ``discover.studies.meta_train.meta_train`` with a progress callback that
prints one line per generation, and ends with a summary (or, with ``--json``, one JSON
object on stdout). Bad input (a space other than the drift spaces, an unknown method or
task, bad numbers, a run name taken by another run) raises ``discover.cli.CliError``: one
line on stderr, exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace
from typing import Callable

from rich.text import Text

from discover.cli.common import CliError, console, fmt
from discover.studies.meta_train import METHODS, MetaTrainConfig

# The defaults, read off the config's fields: building a MetaTrainConfig validates its tasks
# against the trainer, which needs the rl extra, and `discover --help` must not.
DEFAULTS = SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(MetaTrainConfig)})


_error = CliError
_console = console
_fmt = fmt


def _progress_line(report, generations: int) -> Text:
    """``gen 3/5  population mean 0.9120  best 0.9870  mean's score 0.9500 (program 14)  12.3 s``."""
    t = Text()
    t.append(f"gen {report.generation}/{generations}", style="bold")
    t.append(f"  population mean {_fmt(report.population_mean)}  best ")
    t.append(_fmt(report.population_best), style="cyan")
    if report.invalid_members:
        t.append(f"  ({report.invalid_members} diverged)", style="red")
    t.append("  mean's score ")
    t.append(_fmt(report.mean_score), style="green" if report.mean_score is not None else "red")
    t.append(f" (program {report.program_id})", style="dim")
    t.append(f"  {report.seconds:.1f} s")
    if report.final:
        t.append("  final mean", style="bold")
    return t


def cmd_meta_train(args) -> int:
    from discover import extras
    from discover.store import Store, StoreError
    try:
        extras.require("rl", "discover meta-train")
    except extras.MissingExtra as e:
        raise _error(str(e)) from None
    from discover.studies.meta_train import meta_train
    try:
        tasks = tuple(args.task) if args.task else DEFAULTS.tasks
        cfg = MetaTrainConfig(space=args.space, method=args.method, generations=args.generations,
                              popsize=args.popsize, sigma=args.sigma, learning_rate=args.lr, tasks=tasks,
                              total_timesteps=args.timesteps, num_seeds=args.num_seeds, seed=args.seed)
    except ValueError as e:
        raise _error(str(e)) from None
    try:
        store = Store.open(args.db)
    except StoreError as e:
        raise _error(str(e)) from None
    console = _console()
    if not args.json:
        console.print(f"meta-train [bold]{cfg.space}[/bold] with {cfg.method}: {cfg.generations} generations × "
                      f"({cfg.popsize} + 1 mean) members × {cfg.num_seeds} seeds, σ {cfg.sigma:g}, lr "
                      f"{cfg.learning_rate:g}, {cfg.total_timesteps:,} steps on {', '.join(cfg.tasks)}; "
                      f"database {store.url}")
        console.print(Text("the first generation also computes the PPO references and compiles the trainer",
                           style="dim"))
    show: Callable = (lambda r: None) if args.json else (lambda r: console.print(_progress_line(r, cfg.generations)))
    try:
        result = meta_train(store, space=cfg.space, method=cfg.method, generations=cfg.generations,
                            popsize=cfg.popsize, sigma=cfg.sigma, learning_rate=cfg.learning_rate, tasks=cfg.tasks,
                            total_timesteps=cfg.total_timesteps, num_seeds=cfg.num_seeds, seed=cfg.seed,
                            run_name=args.run_name, progress=show)
    except ValueError as e:
        raise _error(str(e)) from None
    except StoreError as e:
        raise _error(str(e)) from None
    if args.json:
        print(json.dumps({"run": result.run.name, "run_id": result.run.id, "programs": list(result.program_ids),
                          "best_program": result.best_program_id, "final_program": result.program_ids[-1],
                          "resumed_from": result.resumed_from,
                          "generations": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                           for k, v in dataclasses.asdict(r).items()} for r in result.reports]}))
        return 0
    if result.resumed_from is not None:
        console.print(f"continued run {result.run.name} from generation {result.resumed_from}")
    best = store.program(result.best_program_id) if result.best_program_id is not None else None
    console.print(f"run [bold]{result.run.name}[/bold] (id {result.run.id}): {len(result.program_ids)} means stored; "
                  f"final mean is program {result.program_ids[-1]}"
                  + (f", best is program {best.id} (score {_fmt(best.score)})" if best else ""))
    db = f" --db {args.db}" if args.db else ""
    console.print(Text(f"see: discover lineage {result.program_ids[-1]}{db}   discover show "
                       f"{best.id if best else result.program_ids[-1]} --diff{db}", style="dim"))
    return 0


def register(subparsers, command: Callable) -> None:
    """Adds ``meta-train`` to ``discover``'s parser.

    Args:
      subparsers: the parser's ``add_subparsers()`` object (unused: ``command`` wraps it).
      command: ``command(name, help, example) -> argparse.ArgumentParser``.
    """
    del subparsers
    p = command("meta-train", "Meta-learn an LPO-style drift network with an evolution strategy (evosax OpenES): "
                "each generation trains the population and its mean with PPO in one compiled call, and stores "
                "the mean as a program of the space (PPO first). Run again with the same --run-name to continue.",
                "discover meta-train --space ppo_objectives --method openes --generations 5 --run-name lpo-cartpole")
    p.add_argument("--space", default=DEFAULTS.space, help="a drift space, e.g. ppo_objectives or "
                   "temporal_objectives (default: the first one installed)")
    p.add_argument("--method", default=DEFAULTS.method, help=f"evolution strategy: {', '.join(METHODS)} "
                   f"(default {DEFAULTS.method})")
    p.add_argument("--generations", type=int, default=DEFAULTS.generations,
                   help=f"ES updates; generations + 1 means are stored (default {DEFAULTS.generations})")
    p.add_argument("--popsize", type=int, default=DEFAULTS.popsize,
                   help=f"perturbations per generation, even (default {DEFAULTS.popsize})")
    p.add_argument("--sigma", type=float, default=DEFAULTS.sigma,
                   help=f"perturbation standard deviation (default {DEFAULTS.sigma:g})")
    p.add_argument("--lr", type=float, default=DEFAULTS.learning_rate,
                   help=f"SGD learning rate of the ES mean (default {DEFAULTS.learning_rate:g})")
    p.add_argument("--task", nargs="+", action="extend", default=None, metavar="T",
                   help=f"gymnax environment(s) to train on; fitness is the mean score "
                   f"(default {' '.join(DEFAULTS.tasks)})")
    p.add_argument("--timesteps", type=int, default=DEFAULTS.total_timesteps,
                   help=f"environment steps per training run (default {DEFAULTS.total_timesteps:,})")
    p.add_argument("--num-seeds", type=int, default=DEFAULTS.num_seeds,
                   help=f"training seeds per member and task (default {DEFAULTS.num_seeds})")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help=f"random seed (default {DEFAULTS.seed})")
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the lineage database "
                   "(default: $DISCOVER_DB, else sqlite:///runs/discover.db)")
    p.add_argument("--run-name", default=None, help="name of the run; an existing meta-train run of that name "
                   "is continued from its last stored mean (default: generated)")
    p.add_argument("--json", action="store_true", help="print the result (run, programs, per-generation "
                   "figures) as one JSON object instead of progress lines")
    p.set_defaults(func=cmd_meta_train)


COMMANDS = ("meta-train",)
