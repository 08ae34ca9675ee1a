"""The `discover` command line: a thin layer over the library.

Each command builds the library objects, calls them, and turns library errors into one
clear line on stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from discover.cli.common import EXIT_USAGE, CliError, add_db, console, fmt, get_space, open_store
from discover.extras import MissingExtra

# ----------------------------------------------------------------------------- helpers
_console = console
_open_store = open_store
_get_space = get_space


def _fmt(x, spec: str = ".3g") -> str:
    return fmt(x, spec)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["total_timesteps=20000", "backend=numpy"]`` → ``{"total_timesteps": 20000,
    "backend": "numpy"}``: each value is read as a TOML value (numbers, booleans, quoted
    strings, arrays) and otherwise taken as a plain string."""
    import tomllib
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CliError(f"--option needs KEY=VALUE with KEY a name, got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value.strip()
    return out


# ----------------------------------------------------------------------------- spaces
def cmd_spaces(args) -> int:
    from discover.extras import install_hint
    from discover.spaces import space_catalogue
    entries = space_catalogue()
    if args.json:
        print(json.dumps([{"name": e.name, "available": e.available, "needs_extra": e.needs_extra,
                           "error": e.error,
                           "train_tasks": list(e.space.train_tasks) if e.space else None,
                           "held_out_tasks": list(e.space.held_out_tasks) if e.space else None,
                           "seeds": sorted(e.space.seeds()) if e.space else None} for e in entries]))
        return 0
    table = Table(title="search spaces")
    for col in ("space", "seeds", "train tasks", "held-out tasks"):
        table.add_column(col)
    for e in entries:
        if e.space is not None:
            s = e.space
            table.add_row(e.name, ", ".join(sorted(s.seeds())), "\n".join(s.train_tasks), "\n".join(s.held_out_tasks))
        elif e.needs_extra:
            table.add_row(e.name, f"[yellow]needs the {e.needs_extra} extra:[/yellow] "
                          + escape(install_hint(e.needs_extra, e.distribution or "discover")), "", "")
        else:
            table.add_row(e.name, f"[red]cannot be loaded:[/red] {escape(e.error or '')}", "", "")
    _console().print(table)
    return 0


# ----------------------------------------------------------------------------- eval
def cmd_eval(args) -> int:
    from discover.isolation.executor import Job, evaluate_isolated
    space = _get_space(args.space)
    path = Path(args.file)
    try:
        source = path.read_text()
    except OSError as e:
        raise CliError(f"cannot read {str(path)!r}: {e.strerror}") from None
    tasks = args.game or list(space.train_tasks)
    options: dict[str, Any] = parse_options(args.option or [])
    if args.iterations is not None:
        if args.iterations < 1:
            raise CliError(f"--iterations must be at least 1, got {args.iterations}")
        options["iterations"] = args.iterations
    console = Console(stderr=True) if args.json else _console()
    from discover.engine.limits import TimeLimits
    try:
        limits = TimeLimits(args.time_limit, on_timing=lambda m: console.print(f"[dim]{m}[/dim]"))
    except ValueError as e:
        raise CliError(str(e)) from None
    results = {}
    for task in tasks:
        console.print(f"[dim]evaluating {path.name} on {task} …[/dim]")
        results[task] = evaluate_isolated(Job(space=args.space, source=source, task=task, seed=args.seed,
                                              options=options), time_limit=limits,
                                          memory_limit_mb=args.memory_limit_mb)
    table = Table(title=f"{path.name} on {space.name}")
    table.add_column("task")
    table.add_column("status")
    table.add_column("score", justify="right")
    table.add_column("curve (iteration: value)")
    for task, r in results.items():
        curve = "  ".join(f"{int(x)}: {y:.3e}" for x, y in r.curve) if r.ok else (r.error or "")
        table.add_row(task, r.status, _fmt(r.metrics.get("score")) if r.ok else "—", curve)
    console.print(table)
    failed = [t for t, r in results.items() if not r.ok]
    if args.json:
        print(json.dumps({t: ([[int(x), float(y)] for x, y in r.curve] if r.ok else
                              {"status": r.status, "error": r.error}) for t, r in results.items()}))
    return 1 if failed else 0


# ----------------------------------------------------------------------------- run
def cmd_run(args) -> int:
    from discover.config import ConfigError, load_config_file
    from discover.engine.runner import RunError, run_discovery
    values: dict[str, Any] = {}
    try:
        if args.config:
            values.update(load_config_file(args.config))
    except ConfigError as e:
        raise CliError(str(e)) from None
    for key in ("space", "budget", "llm", "workers", "seed", "batch_size", "api_base", "max_cost"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    if args.seeds is not None:
        values["seeds"] = args.seeds
    if args.iterations is not None:
        values["eval_options"] = {**values.get("eval_options", {}), "iterations": args.iterations}
    try:
        run_discovery(values, source=args.config or "command line", db=args.db, run_name=args.run_name,
                      resume=args.resume, console=_console())
    except (RunError, ConfigError) as e:
        raise CliError(str(e)) from None
    return 0


# ----------------------------------------------------------------------------- top
def cmd_top(args) -> int:
    store = _open_store(args.db)
    run = None
    if args.run:
        run = store.get_run(args.run)
        if run is None:
            raise CliError(f"no run named {args.run!r} in the database")
    items, left_out = [], 0
    current = _HarnessOf()
    ranked = store.top(run.id if run else None, n=args.n if run or args.any_harness else max(10 * args.n, 100))
    for p in ranked:
        if len(items) == args.n:
            break
        r = store.get_run(p.run_id)
        stored = sorted({e.harness for e in store.evaluations(p.id, split="train")} - {None})
        if run is None and not args.any_harness and stored and current(p.space, r) not in (None, *stored):
            left_out += 1      # scored by another harness: not comparable with this installation's
            continue
        items.append({"id": p.id, "run": r.name if r else None, "space": p.space, "status": p.status,
                      "score": p.score, "held_out_score": p.held_out_score,
                      "parents": [e.parent_id for e in store.parents(p.id) if e.role == "parent"],
                      "edit": p.edit, "generation": p.generation, "harness": stored[0] if len(stored) == 1 else
                      (stored or None)})
    if args.json:
        print(json.dumps(items))
        return 0
    table = Table(title="best programs")
    for col in ("id", "run", "score", "held-out", "gen", "parents", "edit"):
        table.add_column(col)
    for it in items:
        table.add_row(str(it["id"]), it["run"] or "", _fmt(it["score"], ".4f"), _fmt(it["held_out_score"], ".4f"),
                      str(it["generation"]), ",".join(map(str, it["parents"])), textwrap.shorten(it["edit"] or "", 70))
    _console().print(table)
    if left_out:
        _console().print(f"[dim]{left_out} program(s) scored by another harness (evaluator, scoring or options) "
                         "left out; --any-harness includes them[/dim]")
    return 0


class _HarnessOf:
    """The harness version this installation evaluates a run's space with (None where the
    space cannot be loaded here), memoised per space and options."""

    def __init__(self):
        self._memo: dict[str, str | None] = {}

    def __call__(self, space_name: str, run) -> str | None:
        options = dict((run.config or {}).get("eval_options") or {}) if run is not None else {}
        key = json.dumps([space_name, options], sort_keys=True, default=str)
        if key not in self._memo:
            from discover.spaces import get_space
            try:
                self._memo[key] = get_space(space_name).harness_version(options)
            except Exception:  # noqa: BLE001 - an unknown or unloadable space: nothing to compare
                self._memo[key] = None
        return self._memo[key]


# ----------------------------------------------------------------------------- parser
_add_db = add_db


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discover", description="Evolve the source of RL algorithm components and keep what works.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help, example):
        return sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("run", "Run (or resume) a discovery run.", "discover run --space cfr_variants --budget 60")
    p.add_argument("--space", default=None, help="search space (see `discover spaces`); default: the first one installed, "
                   "cfr_variants in this distribution")
    p.add_argument("--budget", type=int, default=None, help="programs to evaluate, seeds included")
    p.add_argument("--llm", default=None, help="'offline' (default), or a litellm model string such as "
                   "openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/qwen2.5-coder; several, comma-separated, "
                   "form an ensemble chosen by a bandit")
    p.add_argument("--api-base", default=None, help="base URL of a local model server (Ollama, vLLM)")
    p.add_argument("--max-cost", type=float, default=None, help="stop cleanly once model calls cost this many USD")
    _add_db(p)
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: number of cores)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the run")
    p.add_argument("--seeds", default=None, help="comma-separated seed programs to start from (default: all)")
    p.add_argument("--run-name", default=None, help="name of the run (default: generated)")
    p.add_argument("--resume", action="store_true", help="continue the named run, or the latest one")
    p.add_argument("--config", default=None, help="TOML file with RunConfig fields")
    p.add_argument("--batch-size", type=int, default=None, help="programs per generation (default: 2 × workers)")
    p.add_argument("--iterations", type=int, default=None, help="evaluation iterations per task (space option)")
    p.set_defaults(func=cmd_run)

    p = command("spaces", "List the search spaces.", "discover spaces --json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_spaces)

    p = command("top", "Show the best programs.", "discover top --n 5 --json")
    _add_db(p)
    p.add_argument("--run", default=None, help="only this run (name or id)")
    p.add_argument("--n", type=int, default=10, help="how many")
    p.add_argument("--json", action="store_true", help="print one JSON array, best first")
    p.add_argument("--any-harness", action="store_true", help="across runs, also list programs scored by "
                   "another harness version (other evaluator or scoring code, or options), whose scores are "
                   "not comparable")
    p.set_defaults(func=cmd_top)

    p = command("eval", "Evaluate one program file on a space's tasks.",
                "discover eval seeds/cfr_variants/cfr_plus.py --space cfr_variants --game leduc_poker --iterations 100 --json")
    p.add_argument("file", help="program file")
    p.add_argument("--space", required=True, help="search space")
    p.add_argument("--game", "--task", action="append", default=None, help="task (game string); repeatable; default: the train tasks")
    p.add_argument("--iterations", type=int, default=None, help="iterations (default: the space's)")
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                   help="a keyword option of the space's evaluate, e.g. --option total_timesteps=20000 "
                   "--option num_seeds=1 (policy-objective spaces) or --option backend=numpy (CFR); repeatable")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed")
    p.add_argument("--time-limit", type=float, default=None, help="seconds per task (default: 10 × the space's "
                   "reference program on that task, at least 20 s; see docs/commands.md)")
    p.add_argument("--memory-limit-mb", type=int, default=8192, help="memory limit of the evaluation process")
    p.add_argument("--json", action="store_true", help="last stdout line: JSON {task: [[iteration, value], ...]}")
    p.set_defaults(func=cmd_eval)

    from discover.cli.lineage import register
    register(sub, command)
    from discover.cli.tune import register as register_tune
    register_tune(sub, command)
    from discover.cli.meta_train import register as register_meta_train
    register_meta_train(sub, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (CliError, MissingExtra) as e:
        print(f"discover: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("discover: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
