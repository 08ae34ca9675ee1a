"""`discover tune ID --trials N`: tune a program's numeric constants with Optuna.

``register(subparsers, command)`` adds the command to the parser built by ``discover.cli``
(``command(name, help, example)`` is that parser's helper, as for ``discover.cli.lineage``).
The command opens the store, calls ``discover.studies.tune.tune_program``, prints one line per trial
(on stderr with ``--json``) and then a table of the constants, original → tuned, the scores
and the new program's id; with ``--json`` one JSON object on stdout. Bad input (unknown
program, no tunable constants, ``--trials`` below 1, an unreachable database) is one line
``discover: error: …`` on stderr and exit status 2.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from discover.ui import views
from discover.cli.common import CliError, console, fmt


_error = CliError
_console = console
_fmt = fmt


def _value_text(v: int | float, short: bool = False) -> str:
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if short else repr(float(v))


def _progress_line(console: Console, constants) -> Callable:
    def show(r) -> None:
        values = "  ".join(f"{c.name}={_value_text(v, short=True)}" for c, v in zip(constants, r.values))
        head = f"[{r.finished}/{r.total}] trial {r.number}"
        if r.value is None:
            outcome = Text(f"pruned: {r.reason}", style="red")
        else:
            outcome = Text(f"score {r.value:+.4f}", style="green" if r.number == r.best_number else "")
        best = f"best {r.best_value:+.4f} (trial {r.best_number})" if r.best_value is not None else "best —"
        console.print(Text.assemble(f"{head:>18}  ", outcome, f"  {best}  ", Text(values, style="dim")))
    return show


def _as_json(result, program) -> dict[str, Any]:
    return {
        "program_id": result.program_id, "study_name": result.study_name, "trials": result.trials,
        "original_score": views.finite(result.original_score), "best_score": views.finite(result.best_score),
        "best_trial": result.best_trial, "child_id": result.child_id, "child_score": views.finite(result.child_score),
        "stored_score": views.finite(program.score), "options": dict(result.options),
        "constants": [{"index": c.index, "name": c.name, "line": c.line, "col": c.col, "text": c.text,
                       "kind": c.kind, "original": c.value, "tuned": v}
                      for c, v in zip(result.constants, result.best_values)],
    }


def _render(console: Console, result, program) -> None:
    table = Table(title=f"program {program.id}: {len(result.constants)} constants, {result.trials} trials "
                        f"(study {result.study_name})")
    for col, just in (("constant", "left"), ("line", "right"), ("original", "right"), ("tuned", "right")):
        table.add_column(col, justify=just)
    for c, v in zip(result.constants, result.best_values):
        changed = v != c.value
        table.add_row(c.name, str(c.line), c.text, Text(_value_text(v) if changed else "=",
                                                        style="bold green" if changed else "dim"))
    console.print(table)
    console.print(f"score: original {_fmt(result.original_score, '+.4f')}, tuned {_fmt(result.best_score, '+.4f')}"
                  + (f" (trial {result.best_trial})" if result.child_id is not None else ""))
    if result.child_id is None:
        console.print(f"the original constants are the best found: nothing stored; program {program.id} stays the one to use")
        return
    note = ""
    if result.child_score is None or result.child_score < result.best_score - 1e-12:
        note = f" (stored score {_fmt(result.child_score)}, with the run's own evaluation options)"
    console.print(f"new program [bold]{result.child_id}[/bold], child of {program.id}{note}: "
                  f"discover show {result.child_id} --diff")


def cmd_tune(args) -> int:
    from discover.isolation.executor import WorkerStartError
    from discover.store import Store, StoreError
    from discover.studies.tune import tunable_constants, tune_program

    if args.trials < 1:
        raise _error(f"--trials must be at least 1, got {args.trials}")
    if args.workers is not None and args.workers < 1:
        raise _error(f"--workers must be at least 1, got {args.workers}")
    try:
        store = Store.open(args.db)
    except StoreError as e:
        raise _error(str(e)) from None
    try:
        import optuna
    except ImportError:
        raise _error("discover tune needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # the command prints its own line per trial
    try:
        program = views.resolve_program(store, args.id)
        constants = tunable_constants(program.source)
    except ValueError as e:
        raise _error(str(e)) from None
    console = _console(stderr=args.json)
    console.print(f"[dim]tuning {len(constants)} constants of program {program.id} ({program.space}) "
                  f"with {args.trials} trials …[/dim]")
    try:
        result = tune_program(store, program.id, args.trials, seed=args.seed, workers=args.workers,
                              progress=_progress_line(console, constants))
    except (ValueError, WorkerStartError, StoreError) as e:
        raise _error(str(e)) from None
    if args.json:
        print(json.dumps(_as_json(result, program)))
    else:
        _render(console, result, program)
    return 0


def register(subparsers, command: Callable) -> None:
    """Adds ``tune`` to ``discover``'s parser.

    Args:
      subparsers: the parser's ``add_subparsers()`` object (unused: ``command`` wraps it).
      command: ``command(name, help, example) -> argparse.ArgumentParser``.
    """
    del subparsers
    p = command("tune", "Tune a program's numeric constants with Optuna (TPE) on its space's train tasks; the best "
                "setting is stored as a child program, the study in the same database.",
                "discover tune 42 --trials 30")
    p.add_argument("id", help="program id (see `discover top`)")
    p.add_argument("--trials", type=int, required=True, help="trials in the study, the original constants' "
                   "included; a resumed study runs only the missing ones")
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the lineage database "
                   "(default: $DISCOVER_DB, else sqlite:///runs/discover.db)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: the run's, at most "
                   "one per train task)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (progress goes to stderr)")
    p.set_defaults(func=cmd_tune)


COMMANDS = ("tune",)
