"""Commands that browse and export the lineage: `discover runs | show | lineage | diff |
plot | ui | export`.

``register(subparsers, command)`` adds them to the parser built by ``discover.cli``;
``command(name, help, example)`` is that parser's helper (a subparser with a description
and an ``example:`` epilog). Each command opens the store, calls ``discover.ui.views`` (or
``plot``, ``web``, ``export``), and prints a rich rendering or, with ``--json``, one JSON
value on stdout. Bad input (unknown run or program, a run with no programs, an existing
export directory) raises ``discover.cli.CliError``: one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from discover.ui import views
from discover.cli.common import CliError, console, fmt


# ----------------------------------------------------------------------------- helpers
_error = CliError
_console = console


def _diff_text(diff: str) -> Text:
    """A unified diff coloured line by line (wraps instead of cropping long lines)."""
    out = Text()
    for line in diff.splitlines():
        style = ("bold" if line.startswith(("+++", "---")) else "magenta" if line.startswith("@@")
                 else "green" if line.startswith("+") else "red" if line.startswith("-") else "")
        out.append(line + "\n", style=style)
    return out


def _open_store(url: str | None):
    from discover.store import Store, StoreError
    try:
        return Store.open(url)
    except StoreError as e:
        raise _error(str(e)) from None


def _checked(fn: Callable, *args, **kwargs):
    """Calls a view; its LineageError (bad id, empty run) becomes a one-line CLI error."""
    try:
        return fn(*args, **kwargs)
    except views.LineageError as e:
        raise _error(str(e)) from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


_fmt = fmt


def _gain_text(g: float | None) -> Text:
    if g is None:
        return Text("")
    style = "green" if g > 0 else ("red" if g < 0 else "dim")
    return Text(f"{g:+.4f}", style=style)


def _status_style(status: str) -> str:
    return {"running": "yellow", "finished": "green", "failed": "red", "stopped": "red",
            "evaluated": "green", "invalid": "red", "pending": "yellow", "ok": "green"}.get(status, "")


def _add_db(p) -> None:
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the lineage database "
                   "(default: $DISCOVER_DB, else sqlite:///runs/discover.db)")


def _add_json(p, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON instead of tables")


# ----------------------------------------------------------------------------- runs
def cmd_runs(args) -> int:
    store = _open_store(args.db)
    runs = views.runs_overview(store)
    if args.json:
        _print_json(runs)
        return 0
    if not runs:
        _console().print(f"no runs in {store.url}")
        return 0
    table = Table(title=f"runs in {store.url}")
    for col, just in (("id", "right"), ("run", "left"), ("space", "left"), ("mutator", "left"),
                      ("evaluated", "right"), ("best (program)", "right"), ("cost", "right"), ("status", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in runs:
        budget = "∞" if r["budget"] is None else str(r["budget"])
        best = f"{_fmt(r['best_score'])} ({r['best_id']})" if r["best_id"] is not None else "—"
        table.add_row(str(r["id"]), r["name"], r["space"], " / ".join(x for x in (r["mutator"], r["model"]) if x) or "—",
                      f"{r['evaluated']} / {budget}", best, f"${r['cost_usd']:.2f}",
                      Text(r["status"], style=_status_style(r["status"])))
    _console().print(table)
    return 0


# ----------------------------------------------------------------------------- show
def _curve_lines(e: dict[str, Any]) -> Text:
    """A curve as text: its sparkline, then every point as ``x: value``."""
    ys = [p[1] if len(p) > 1 else None for p in e["curve"]]
    t = Text.assemble(f"  {e['task']} ", (f"[{views.split_label(e['split'])}, seed {e['seed']}]", "dim"), "  ",
                      (views.sparkline(ys), "cyan"), "\n    ")
    t.append("  ".join(f"{p[0]:g}: {_fmt(p[1] if len(p) > 1 else None, '.3e')}" for p in e["curve"]), style="dim")
    return t


def _render_program(view: dict[str, Any], with_diff: bool) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    gain = _gain_text(view["gain"])
    score = Text.assemble(_fmt(view["score"]), " ", gain, (" over its parent" if view["gain"] is not None else ""))
    head.add_row("run", f"{view['run']} (id {view['run_id']}) · space {view['space']}")
    head.add_row("status", Text(view["status"], style=_status_style(view["status"])))
    head.add_row("score", score)
    head.add_row("held-out score", _fmt(view["held_out_score"]))
    head.add_row("generation", str(view["generation"]))
    parents = ", ".join(f"{p['id']} ({p['role']}, {_fmt(p['score'])})" for p in view["parents"]) or "none: a seed"
    head.add_row("made from", parents)
    if view["children"]:
        head.add_row("children", ", ".join(str(c["id"]) for c in view["children"]))
    head.add_row("edit", view["edit"] or "—")
    head.add_row("mutator", " / ".join(x for x in (view["mutator"], view["model"]) if x) or "—")
    for c in view["llm_calls"]:
        tokens = f"{c['prompt_tokens'] or '?'} + {c['completion_tokens'] or '?'} tokens"
        cost = f"${c['cost_usd']:.4f}" if c["cost_usd"] is not None else "cost unknown"
        latency = f"{c['latency_s']:.1f} s" if c["latency_s"] is not None else ""
        head.add_row(f"LLM call {c['id']}", f"{c['model']} · {c['status']} · {tokens} · {cost} {latency}".strip())
    head.add_row("code hash", view["code_hash"])
    parts: list[Any] = [Panel(head, title=f"program {view['id']}", expand=False)]
    parts.append(Panel(Syntax(view["source"], "python", line_numbers=True, word_wrap=True), title="source"))
    if with_diff:
        if view["diff"] is None:
            parts.append(Text("no parent: this program is a seed", style="dim"))
        elif not view["diff"]:
            parts.append(Text(f"identical to its parent {view['parent']}", style="dim"))
        else:
            parts.append(Panel(_diff_text(view["diff"]), title=f"diff against parent {view['parent']}"))
    if view["evaluations"]:
        table = Table(title="evaluations")
        for col, just in (("task", "left"), ("split", "left"), ("seed", "right"), ("status", "left"),
                          ("score", "right"), ("final", "right"), ("seconds", "right")):
            table.add_column(col, justify=just)
        for e in view["evaluations"]:
            metric = views.headline_metric(e["metrics"])
            final = _fmt(e["metrics"].get(metric), ".3e") if metric else "—"
            table.add_row(e["task"], views.split_label(e["split"]), str(e["seed"]),
                          Text(e["status"], style=_status_style(e["status"])), _fmt(e["metrics"].get("score")),
                          final, f"{e['wall_time']:.1f}")
        parts.append(table)
        failed = [e for e in view["evaluations"] if e["status"] != "ok" and e["error"]]
        for e in failed:
            parts.append(Text(f"  {e['task']} [{views.split_label(e['split'])}]: {e['status']}: "
                              f"{e['error'].strip().splitlines()[-1]}", style="red"))
        curves = [e for e in view["evaluations"] if e["status"] == "ok" and e["curve"]]
        if curves:
            metric = views.headline_metric(curves[0]["metrics"]) or "value"
            label = "iteration: exploitability" if metric == "final_exploitability" else "x: value"
            parts.append(Text(f"curves ({label})", style="bold"))
            parts.extend(_curve_lines(e) for e in curves)
    else:
        parts.append(Text("not evaluated yet", style="dim"))
    return Group(*parts)


def cmd_show(args) -> int:
    store = _open_store(args.db)
    view = _checked(views.program_view, store, args.id)
    if args.json:
        _print_json(view)
        return 0
    _console().print(_render_program(view, args.diff))
    return 0


# ----------------------------------------------------------------------------- lineage
def _label(node: dict[str, Any]) -> Text:
    t = Text.assemble((f"{node['id']}", "bold"), "  ", _fmt(node["score"]))
    if node["gain"] is not None:
        t.append("  ")
        t.append_text(_gain_text(node["gain"]))
    if node["status"] != "evaluated":
        t.append(f"  {node['status']}", style=_status_style(node["status"]))
    if node["role"] and node["role"] != "parent":
        t.append(f"  [{node['role']}]", style="magenta")
    if node["edit"]:
        edit = node["edit"].replace("\n", " ")
        t.append(f"  {edit[:90] + ('…' if len(edit) > 90 else '')}", style="dim")
    if node["seen"]:
        t.append("  (shown above)", style="dim italic")
    return t


def _rich_tree(node: dict[str, Any], tree: Tree | None = None) -> Tree:
    branch = Tree(_label(node)) if tree is None else tree.add(_label(node))
    for child in node["children"]:
        _rich_tree(child, branch)
    return branch


def cmd_lineage(args) -> int:
    store = _open_store(args.db)
    fn = views.descendant_tree if args.down else views.ancestor_tree
    tree = _checked(fn, store, args.id, args.depth)
    if args.json:
        _print_json(tree)
        return 0
    console = _console()
    what = "descendants" if args.down else "ancestors"
    console.print(Text(f"{what} of program {tree['id']} (score, gain over the program it was made from, edit)",
                       style="dim"))
    console.print(_rich_tree(tree))
    return 0


# ----------------------------------------------------------------------------- diff
def cmd_diff(args) -> int:
    store = _open_store(args.db)
    d = _checked(views.diff_programs, store, args.a, args.b)
    if args.json:
        _print_json(d)
        return 0
    console = _console()
    if not d["diff"]:
        console.print(f"programs {d['a']} and {d['b']} have the same source")
        return 0
    if console.is_terminal:
        console.print(_diff_text(d["diff"]))
    else:
        print(d["diff"], end="")   # piped: the plain unified diff, ready for `patch`
    return 0


# ----------------------------------------------------------------------------- plot
def cmd_plot(args) -> int:
    from discover.ui import plot
    store = _open_store(args.db)
    if not args.out.lower().endswith(".png"):
        raise _error(f"--out must name a .png file, got {args.out!r}")
    if args.best < 0:
        raise _error(f"--best must be 0 or more, got {args.best}")
    path = _checked(plot.plot_run, store, args.run, args.out, n_best=args.best)
    if args.json:
        data = _checked(plot.plot_data, store, args.run, args.best)
        _print_json({"out": str(path), **data})
        return 0
    _console().print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- ui
def cmd_ui(args) -> int:
    from discover.ui.web import serve
    store = _open_store(args.db)
    if not 0 <= args.port <= 65535:
        raise _error(f"--port must be between 0 and 65535, got {args.port}")
    console = _console()

    def ready(url: str) -> None:
        console.print(f"discover ui on [bold]{url}[/bold] over {store.url} (Ctrl-C stops it)")

    try:
        serve(store, args.host, args.port, on_ready=ready, quiet=not args.verbose)
    except OSError as e:
        raise _error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        console.print("stopped")
    return 0


# ----------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from discover.export import ExportError, export_program
    from discover.isolation.executor import WorkerStartError
    store = _open_store(args.db)
    if os.path.exists(args.out):
        raise _error(f"output directory {args.out!r} exists already; choose another --out or remove it")
    program = _checked(views.resolve_program, store, args.id)
    console = Console(stderr=True, highlight=False) if args.json else _console()
    console.print(f"[dim]re-evaluating program {program.id} on the train and held-out tasks of {program.space} …[/dim]")

    def progress(split: str, task: str, result) -> None:
        score = result.metrics.get("score") if result.ok else None
        console.print(f"  {views.split_label(split):>13}  {task}: "
                      + (f"score {_fmt(score)}" if result.ok else f"[red]{result.status}[/red]"))

    try:
        res = export_program(store, program.id, args.out, args.name, time_limit=args.time_limit,
                             memory_limit_mb=args.memory_limit_mb, workers=args.workers, on_result=progress)
    except (ExportError, WorkerStartError) as e:
        raise _error(str(e)) from None
    except ValueError as e:   # bad limits
        raise _error(str(e)) from None
    if args.json:
        _print_json({"directory": str(res.directory), "name": res.name, "distribution": res.distribution,
                     "module": res.module, "metadata": res.metadata})
        return 0
    scores = res.metadata["scores"]
    console.print(f"wrote [bold]{res.directory}[/bold]: {res.distribution} (module {res.module}, "
                  f"entry point discover.algorithms:{res.name})")
    console.print(f"train score {_fmt(scores['train']['score'])} (stored {_fmt(scores['train']['stored_score'])}), "
                  f"held-out score {_fmt(scores['held_out']['score'])}")
    console.print(f"install with: pip install {res.directory}")
    return 0


# ----------------------------------------------------------------------------- registration
def register(subparsers, command: Callable) -> None:
    """Adds runs, show, lineage, diff, plot, ui and export to ``discover``'s parser.

    Args:
      subparsers: the parser's ``add_subparsers()`` object (unused: ``command`` wraps it).
      command: ``command(name, help, example) -> argparse.ArgumentParser``.
    """
    del subparsers
    p = command("runs", "List the runs: space, mutator, budget used, best score, LLM cost, status.",
                "discover runs --db sqlite:///runs/discover.db")
    _add_db(p)
    _add_json(p, "one JSON array of runs, oldest first,")
    p.set_defaults(func=cmd_runs)

    p = command("show", "Show one program: its source, the diff against its parent, per-task metrics and "
                "curves, and the edit or LLM call that made it.", "discover show 42 --diff")
    p.add_argument("id", help="program id (see `discover top` or `discover lineage`)")
    p.add_argument("--diff", action="store_true", help="also show the diff against the program it was mutated from")
    _add_db(p)
    _add_json(p, "the program (source, diff, evaluations with curves, LLM calls)")
    p.set_defaults(func=cmd_show)

    p = command("lineage", "Show a program's ancestry (or descendants) as a tree with the score gained "
                "at each step.", "discover lineage 42 --down")
    p.add_argument("id", help="program id")
    p.add_argument("--down", action="store_true", help="show descendants instead of ancestors")
    p.add_argument("--depth", type=int, default=None, help="at most this many levels (default: all)")
    _add_db(p)
    _add_json(p, "the tree (nested nodes)")
    p.set_defaults(func=cmd_lineage)

    p = command("diff", "Unified diff between two programs' sources.", "discover diff 17 42")
    p.add_argument("a", help="program id (from)")
    p.add_argument("b", help="program id (to)")
    _add_db(p)
    _add_json(p, "the diff")
    p.set_defaults(func=cmd_diff)

    p = command("plot", "Plot a run: best-so-far score against evaluations, and the curves of its best "
                "programs against the seeds on each task (log scale), to a PNG file.",
                "discover plot my-run --out runs/my-run.png")
    p.add_argument("run", help="run name or id (see `discover runs`)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--best", type=int, default=3, help="how many of the best programs to draw (default 3)")
    _add_db(p)
    _add_json(p, "the plotted data")
    p.set_defaults(func=cmd_plot)

    p = command("ui", "Browse the runs in a web browser: best-so-far chart (live), lineage graph, code, "
                "diffs, metrics and curves.", "discover ui --port 8765")
    _add_db(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=cmd_ui)

    p = command("export", "Re-evaluate a program on fresh seeds (train and held-out tasks) and write it as a "
                "pip-installable plug-in (entry point discover.algorithms).",
                "discover export 42 --out vad_like_cfr/ --name vad_like_cfr")
    p.add_argument("id", help="program id")
    p.add_argument("--out", required=True, help="package directory to create (must not exist)")
    p.add_argument("--name", default=None, help="algorithm name (default: <space>_<id>); the distribution is "
                   "discover-algo-<name>")
    _add_db(p)
    p.add_argument("--time-limit", type=float, default=None, help="seconds per evaluation (default: derived "
                   "per task from the space's reference program, see docs/commands.md)")
    p.add_argument("--memory-limit-mb", type=int, default=8192, help="memory limit of each evaluation process")
    p.add_argument("--workers", type=int, default=None, help="evaluations at once (default: CPU cores)")
    _add_json(p, "the result (directory, names, metadata)")
    p.set_defaults(func=cmd_export)


COMMANDS = ("runs", "show", "lineage", "diff", "plot", "ui", "export")
