"""`discover run`: wires a space, a store, an executor and a mutator into a Discovery,
shows live progress, and prints the final comparison against the seeds."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import threading
from concurrent.futures import Future
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from discover.config import ConfigError, RunConfig
from discover.engine.loop import HELD_OUT, TRAIN, Discovery
from discover.engine.progress import Progress
from discover.space import Space, TaskResult
from discover.ui.views import headline_metric


class RunError(Exception):
    """A run cannot start or continue; the message is one clear sentence."""


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("discover", "numpy", "jax", "jaxlib", "open-spiel", "sqlalchemy", "rich"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def make_mutator(config: RunConfig):
    """The offline mutator, or the LLM mutator for a litellm model string (several,
    comma-separated, form an ensemble). A missing key or an unusable model name is one
    clear error before the run starts."""
    if config.llm == "offline":
        from discover.mutators.offline import OfflineMutator
        return OfflineMutator(seed=config.seed)
    from discover.extras import MissingExtra, require
    try:
        require("llm", "the LLM mutator")
    except MissingExtra as e:
        raise RunError(str(e)) from None
    from discover.mutators.llm import LLMConfig, LLMConfigError, LLMMutator, check_model_access, parse_models
    try:
        models = parse_models(config.llm)
        check_model_access(models, config.api_base or None)
        # A local OpenAI-compatible server (vLLM, llama.cpp, LM Studio) takes any key, but
        # the client insists on one.
        api_key = None
        if config.api_base and not os.environ.get("OPENAI_API_KEY") and any(m.startswith("openai/") for m in models):
            api_key = "unused-by-local-server"
        return LLMMutator(LLMConfig(models=models, api_base=config.api_base or None, api_key=api_key,
                                    max_cost=config.max_cost or None), seed=config.seed)
    except LLMConfigError as e:
        raise RunError(str(e)) from None
    except ImportError:
        raise RunError(str(MissingExtra("the LLM mutator", "llm"))) from None


def _progress_table(p: Progress, space: str) -> Table:
    t = Table(title=f"discover · {space} · {p.phase}", show_header=False, box=None)
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_row("evaluated", f"{p.evaluated} / {p.budget}")
    t.add_row("best score", f"{p.best_score:.4f}  (program {p.best_id}: {p.best_edit[:80]})"
              if math.isfinite(p.best_score) else "—")
    t.add_row("valid / invalid / rejected", f"{p.valid} / {p.invalid} / {p.rejected}")
    t.add_row("evaluations per minute", f"{p.per_minute:.1f}")
    if p.cost:
        t.add_row("model spend", f"${p.cost:.4f}")
    return t


class _Display:
    """Live panel on a terminal; one line per change of generation elsewhere (logs, CI)."""

    def __init__(self, console: Console, space: str):
        self.console, self.space = console, space
        self.live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
        self._last = None

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def __call__(self, p: Progress) -> None:
        if self.live:
            self.live.update(_progress_table(p, self.space))
            return
        key = (p.phase, p.evaluated)
        if key != self._last and (p.phase != self._last[0] if self._last else True):
            # The phase in brackets is text, not rich markup (which would swallow it).
            phase = escape(f"[{p.phase}]")
            if self._last is not None and p.evaluated == self._last[1] and p.evaluated == p.budget:
                self.console.print(phase)      # the end of the run: the counts no longer change
            else:
                best = f"{p.best_score:.4f} (program {p.best_id})" if math.isfinite(p.best_score) else "—"
                self.console.print(phase + f" evaluated {p.evaluated}/{p.budget}  best {best}  "
                                   f"valid/invalid/rejected {p.valid}/{p.invalid}/{p.rejected}  "
                                   f"{p.per_minute:.1f}/min" + (f"  spend ${p.cost:.4f}" if p.cost else ""))
        self._last = key


def _resolve_run(store, values: Mapping[str, Any], source: str, run_name: str | None, resume: bool):
    if resume:
        run = store.get_run(run_name) if run_name else store.latest_run(values.get("space"))
        if run is None:
            raise RunError(f"no run named {run_name!r} to resume" if run_name else "no run to resume in this database")
        stored = dict(run.config)
        for key in ("budget", "workers", "max_cost"):
            if key in values:
                stored[key] = values[key]
        try:
            config = RunConfig.from_mapping(stored, source=f"run {run.name}")
        except ConfigError as e:
            raise RunError(str(e)) from None
        if config.budget != run.budget:
            store.set_run_budget(run.id, config.budget)
        store.set_run_status(run.id, "running")
        return run, config
    config = RunConfig.from_mapping(values, source=source)
    if run_name and store.get_run(run_name) is not None:
        raise RunError(f"a run named {run_name!r} exists already; add --resume to continue it")
    name = run_name or f"{config.space}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run = store.create_run(name=name, space=config.space, config=config.to_json(), seed=config.seed,
                           budget=config.budget, mutator=config.llm, versions=library_versions())
    return run, config


def _space(name: str) -> Space:
    from discover.spaces import UnknownSpace, get_space
    try:
        return get_space(name)
    except UnknownSpace as e:
        raise RunError(str(e).strip("'\"")) from None


def run_discovery(values: Mapping[str, Any], *, source: str = "command line", db: str | None = None,
                  run_name: str | None = None, resume: bool = False, console: Console | None = None):
    """Runs or resumes a discovery run; returns the store's run record when done."""
    from discover.isolation.executor import LocalExecutor
    from discover.engine.limits import TimeLimits
    from discover.store import Store, StoreError

    console = console or Console()
    try:
        store = Store.open(db)
    except StoreError as e:
        raise RunError(str(e)) from None
    if not resume:
        values = dict(values)
        if not values.get("space"):
            from discover.spaces import UnknownSpace, default_space_name
            try:
                values["space"] = default_space_name()
            except UnknownSpace as e:
                raise RunError(str(e)) from None
        _space(values["space"])  # an unknown space fails before a run is created
    if values.get("llm", "offline") != "offline":
        from discover.extras import MissingExtra, require
        try:
            require("llm", "the LLM mutator")     # before a run is created, too
        except MissingExtra as e:
            raise RunError(str(e)) from None
    try:
        run, config = _resolve_run(store, values, source, run_name, resume)
    except ConfigError as e:
        raise RunError(str(e)) from None
    space = _space(config.space)
    mutator = make_mutator(config)
    console.print(f"run [bold]{run.name}[/bold] (id {run.id}) on {space.name}: budget {config.budget}, "
                  f"{config.workers} workers, mutator {config.llm}, database {store.url}")
    status = "failed"
    try:
        limits = TimeLimits(config.time_limit or None, on_timing=lambda m: console.print(f"[dim]{m}[/dim]"))
        with LocalExecutor(workers=config.workers, time_limit=limits,
                           memory_limit_mb=config.memory_limit_mb) as executor, _Display(console, space.name) as show:
            disc = Discovery(space, store, executor, mutator, config, run, on_progress=show)
            try:
                disc.execute()
            except ValueError as e:
                raise RunError(str(e)) from None
            status = "finished"
            if disc.progress.stop_reason:
                console.print(f"[yellow]stopped early:[/yellow] {disc.progress.stop_reason}")
            summary = summarize(space, store, run, executor, config,
                                on_progress=lambda m: console.print(f"[dim]{m}[/dim]"))
        print_summary(console, summary, space)
    except KeyboardInterrupt:
        status = "stopped"
        raise
    finally:
        store.set_run_status(run.id, status)
    return store.get_run(run.id)


# ----------------------------------------------------------------------------- summary
def _reference_cache_dir() -> Path:
    root = Path(os.environ.get("DISCOVER_CACHE", "runs/cache"))
    return root / "reference"


def _reference_eval(executor, space: Space, space_spec: str, source: str, task: str, options: Mapping[str, Any]) -> "Future":
    """Evaluations of seeds that are not part of the run, cached on disk: they are
    deterministic and only serve the final comparison."""
    from discover.isolation.executor import Job
    key = hashlib.sha256(json.dumps([space.name, source, task, dict(options)], sort_keys=True).encode()).hexdigest()
    path = _reference_cache_dir() / f"{key}.json"
    if path.exists():
        f: Future = Future()
        f.set_result(TaskResult.from_json(json.loads(path.read_text())))
        return f
    fut = executor.submit(Job(space=space_spec, source=source, task=task, options=dict(options)))

    def _save(done):
        r = done.result()
        if r.ok:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(r.to_json()))
            tmp.replace(path)
    fut.add_done_callback(_save)
    return fut


class _Countdown:
    """Reports each finished evaluation of a batch the summary waits for, as it finishes:
    ``summary 3/21: dcfr on liars_dice-6 ok (4.1 s), 18 left``."""

    def __init__(self, space: Space, on_progress: Callable[[str], None] | None):
        self.space, self.show = space, on_progress

    def start(self, title: str, items: list[tuple[str, str, "Future"]]) -> None:
        if self.show is None or not items:
            return
        show, total, lock = self.show, len(items), threading.Lock()
        done = [0]
        show(f"{title}: {total} evaluation(s) …")

        def finished(name: str, task: str, fut) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return
            r = fut.result()
            with lock:
                done[0] += 1
                n = done[0]
            show(f"summary {n}/{total}: {name} on {self.space.task_label(task)} {r.status} "
                 f"({r.wall_time:.1f} s), {total - n} left")

        for name, task, fut in items:
            fut.add_done_callback(lambda f, name=name, task=task: finished(name, task, f))


FRESH_SEED_OFFSET = 1_000_000  # far above any seed the loop's re-evaluations reach


def fresh_seed(store, run) -> int:
    """A seed no evaluation of the run has used: ``FRESH_SEED_OFFSET`` above the largest."""
    used = [e.seed for p in store.programs(run.id) for e in store.evaluations(p.id)]
    return max(used, default=0) + FRESH_SEED_OFFSET


def _fresh_evaluations(space: Space, store, executor, config: RunConfig, rows: list[dict], seed: int,
                       report: "_Countdown") -> None:
    """Re-evaluates every compared program of a stochastic space on the train tasks with
    ``seed``, which no evaluation of the run used, so the best program's lead is measured
    on training runs that took no part in selecting it. Results of programs in the run
    are recorded in the store (split "reeval"); each row gains ``fresh_score`` and
    ``fresh_results``."""
    from discover.engine import evaluation
    from discover.store import REEVAL
    futs = [(row, evaluation.submit(executor, config.space, row["source"], space.train_tasks, seed,
                                    config.eval_options)) for row in rows]
    report.start(f"summary: re-evaluating {len(rows)} program(s) on the train tasks with fresh seed {seed}",
                 [(row["name"], t, f) for row, fs in futs for t, f in fs.items()])
    for row, fs in futs:
        results = evaluation.collect(store, row["id"], REEVAL, seed, fs)
        row["fresh_results"] = results
        row["fresh_score"] = space.score([results[t] for t in space.train_tasks])


def summarize(space: Space, store, run, executor, config: RunConfig,
              on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Best program found vs every seed of the space, on train and held-out tasks; for a
    stochastic space also on the train tasks with a seed the run never used.

    ``on_progress`` gets one line as each evaluation the summary waits for finishes
    (which program, which task, how many are left)."""
    from discover.program import code_hash
    report = _Countdown(space, on_progress)
    rows = []
    top = store.top(run.id, n=1)
    if top:
        best = top[0]
        evs = store.evaluations(best.id)
        rows.append({"name": f"best (program {best.id})", "id": best.id, "score": best.score,
                     "held_out_score": best.held_out_score, "source": best.source,
                     "results": {(e.split, e.task): e.result for e in evs if e.seed == 0}})
    in_run = {p.code_hash: p for p in store.programs(run.id) if p.generation == 0}
    pending = []
    for name, src in space.seeds().items():
        p = in_run.get(code_hash(src))
        if p is not None:
            evs = store.evaluations(p.id)
            rows.append({"name": name, "id": p.id, "score": p.score, "held_out_score": p.held_out_score,
                         "source": src, "results": {(e.split, e.task): e.result for e in evs if e.seed == 0}})
        else:
            futs = {(TRAIN, t): _reference_eval(executor, space, config.space, src, t, config.eval_options) for t in space.train_tasks}
            futs.update({(HELD_OUT, t): _reference_eval(executor, space, config.space, src, t, config.eval_options)
                         for t in space.held_out_tasks})
            pending.append((name, src, futs))
    report.start(f"summary: evaluating {len(pending)} seed(s) that are not in the run on the train and "
                 "held-out tasks", [(name, k[1], f) for name, _, futs in pending for k, f in futs.items()])
    for name, src, futs in pending:
        results = {k: f.result() for k, f in futs.items()}
        rows.append({"name": name, "id": None, "source": src,
                     "score": space.score([results[(TRAIN, t)] for t in space.train_tasks]),
                     "held_out_score": space.score([results[(HELD_OUT, t)] for t in space.held_out_tasks]),
                     "results": results})
    summary: dict[str, Any] = {"run": run.name, "rows": rows}
    if space.stochastic and rows:
        seed = fresh_seed(store, run)
        _fresh_evaluations(space, store, executor, config, rows, seed, report)
        summary["fresh_seed"] = seed
    return summary


def _cell(r: TaskResult | None, metric: str) -> str:
    if r is None:
        return "—"
    if not r.ok:
        return r.status
    v = float(r.metrics.get(metric, float("nan")))
    return f"{v:.2e}" if metric == "final_exploitability" else f"{v:.4g}"


def print_summary(console: Console, summary: Mapping[str, Any], space: Space) -> None:
    """Two tables: scores per program, then the final metric per task (rows) and program
    (columns), so the comparison stays readable on an 80-column terminal."""
    rows = summary["rows"]
    metric = next((m for r in rows for res in r["results"].values() if res.ok
                   for m in [headline_metric(res.metrics)] if m), "final_exploitability")
    fresh = summary.get("fresh_seed")
    names = [r["name"] if r["id"] is None or not r["name"].startswith("best") else f"best #{r['id']}"
             for r in rows]
    fmt = lambda x: "—" if x is None or not math.isfinite(x) else f"{x:+.3f}"
    scores = Table(title=f"run {summary['run']}: scores (higher is better)")
    scores.add_column("program")
    scores.add_column("train", justify="right")
    scores.add_column("held-out", justify="right")
    if fresh is not None:
        scores.add_column(f"train, fresh seed {fresh}", justify="right")
    for name, row in zip(names, rows):
        cells = [fmt(row["score"]), fmt(row["held_out_score"])]
        if fresh is not None:
            cells.append(fmt(row.get("fresh_score")))
        scores.add_row(name, *cells)
    console.print(scores)
    table = Table(title=f"{metric.replace('_', ' ')} at the end of the evaluation")
    table.add_column("task")
    for name in names:
        table.add_column(name, justify="right")
    for split, tasks in ((TRAIN, space.train_tasks), (HELD_OUT, space.held_out_tasks)):
        for t in tasks:
            cells = []
            for row in rows:
                r = row["results"].get((split, t))
                cells.append(_cell(r, metric))
            table.add_row(("" if split == TRAIN else "(held-out) ") + space.task_label(t), *cells)
    if fresh is not None:
        for t in space.train_tasks:
            table.add_row(f"(fresh seed) {space.task_label(t)}",
                          *[_cell(row.get("fresh_results", {}).get(t), metric) for row in rows])
    console.print(table)
