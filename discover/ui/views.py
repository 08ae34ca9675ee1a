"""Read-only views of the lineage store: the data behind `discover runs | show | lineage |
diff | plot | ui` and `discover export`.

Every function takes a ``discover.store.Store`` and returns plain JSON-ready values (dicts,
lists, strings, numbers, ``None``), so the terminal commands, the web API and the exporter
share one definition of "a run's summary", "a program's lineage" or "best so far". A bad
identifier raises ``LineageError`` (a ``ValueError``) with one clear sentence.

Scores are the store's train scores (higher is better). The *gain* of a program is its
score minus the score of the program it was mutated from (its first "parent"/"crossover"
edge); seeds and programs without a score have no gain.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from typing import Any, Iterable, Mapping, Sequence

from discover.store import (CROSSOVER, EVALUATED, HELD_OUT, INVALID, PARENT, PENDING, REEVAL, TRAIN,
                            EvaluationRecord, ProgramRecord, RunRecord, Store)

# Edges that make up the lineage proper. Inspirations were only shown to the mutator; they
# are listed with a program, but do not make it a descendant.
LINEAGE_ROLES = (PARENT, CROSSOVER)
SPARK_BARS = "▁▂▃▄▅▆▇█"


class LineageError(ValueError):
    """A run or program that does not exist, or a run with nothing to show."""


# ----------------------------------------------------------------------------- lookups
def resolve_run(store: Store, name_or_id: int | str) -> RunRecord:
    """The run with this name or id.

    Raises:
      LineageError: there is no such run.
    """
    run = store.get_run(name_or_id if isinstance(name_or_id, int) else str(name_or_id))
    if run is None:
        raise LineageError(f"no run named or numbered {str(name_or_id)!r} in {store.url}")
    return run


def resolve_program(store: Store, program_id: int | str) -> ProgramRecord:
    """The program with this id (an int, or a string of digits).

    Raises:
      LineageError: the id is not a number, or no program has it.
    """
    text = str(program_id).strip()
    if not text.isdigit():
        raise LineageError(f"a program id is a whole number, got {str(program_id)!r}")
    program = store.program(int(text))
    if program is None:
        raise LineageError(f"no program with id {int(text)} in {store.url}")
    return program


def require_programs(store: Store, run: RunRecord) -> list[ProgramRecord]:
    """The run's programs, oldest first.

    Raises:
      LineageError: the run has no programs yet.
    """
    programs = store.programs(run.id)
    if not programs:
        raise LineageError(f"run {run.name!r} (id {run.id}) has no programs yet")
    return programs


# ----------------------------------------------------------------------------- small helpers
def finite(x: Any) -> float | None:
    """``x`` as a float, or ``None`` if it is missing, not a number, NaN or infinite."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def lineage_parents(store: Store, program_id: int) -> list[int]:
    """Ids of the programs ``program_id`` was made from (parent and crossover edges), in order."""
    return [e.parent_id for e in store.parents(program_id) if e.role in LINEAGE_ROLES]


def primary_parent(store: Store, program_id: int) -> int | None:
    """The program ``program_id`` was mutated from (its first lineage edge), if any."""
    parents = lineage_parents(store, program_id)
    return parents[0] if parents else None


def gain(program: ProgramRecord, parent: ProgramRecord | None) -> float | None:
    """``program.score - parent.score`` where both are finite, else ``None``."""
    if parent is None:
        return None
    a, b = finite(program.score), finite(parent.score)
    return None if a is None or b is None else a - b


def unified_diff(a: str, b: str, a_label: str = "a", b_label: str = "b", context: int = 3) -> str:
    """The unified diff turning source ``a`` into source ``b`` ("" when they are equal)."""
    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                 fromfile=a_label, tofile=b_label, n=context)
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def sparkline(values: Sequence[float], log: bool = True) -> str:
    """One block character per value, lowest ▁ to highest █ (log10 scale when ``log`` and
    every value is positive); non-finite values are blanks."""
    vals = [finite(v) for v in values]
    use_log = log and all(v is not None and v > 0 for v in vals)
    xs = [(math.log10(v) if use_log else v) if v is not None else None for v in vals]
    known = [x for x in xs if x is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    span = hi - lo
    out = []
    for x in xs:
        if x is None:
            out.append(" ")
        else:
            k = 0 if span == 0 else int(round((x - lo) / span * (len(SPARK_BARS) - 1)))
            out.append(SPARK_BARS[k])
    return "".join(out)


def headline_metric(metrics: Mapping[str, Any]) -> str | None:
    """The metric a curve measures, for labels: ``final_exploitability`` where present, else
    the first numeric metric that is not the score."""
    if "final_exploitability" in metrics:
        return "final_exploitability"
    for k, v in metrics.items():
        if k != "score" and finite(v) is not None:
            return k
    return None


# ----------------------------------------------------------------------------- runs
def run_summary(store: Store, run: RunRecord) -> dict[str, Any]:
    """One run: space, mutator and model, budget used, best score, LLM cost, status.

    ``evaluated`` counts the run's programs whose evaluation finished (valid or invalid),
    the quantity the budget limits; ``pending`` those still being evaluated.
    """
    counts = store.counts(run.id)
    best = store.top(run.id, n=1)
    b = best[0] if best else None
    return {
        "id": run.id, "name": run.name, "space": run.space, "status": run.status,
        "mutator": run.mutator, "model": run.model, "seed": run.seed, "budget": run.budget,
        "evaluated": counts[EVALUATED] + counts[INVALID], "valid": counts[EVALUATED],
        "invalid": counts[INVALID], "pending": counts[PENDING], "rejected": counts["rejected"],
        "best_score": finite(b.score) if b else None, "best_id": b.id if b else None,
        "best_held_out_score": finite(b.held_out_score) if b else None,
        "cost_usd": store.total_cost(run.id), "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at), "config": dict(run.config), "versions": dict(run.versions),
    }


def runs_overview(store: Store) -> list[dict[str, Any]]:
    """``run_summary`` of every run, oldest first."""
    return [run_summary(store, r) for r in store.list_runs()]


def progress(store: Store, run: RunRecord) -> list[dict[str, Any]]:
    """Best-so-far of a run: one point per finished evaluation of a program, in the order the
    programs were stored.

    Returns:
      ``[{"n": 1.., "program": id, "score": float | None, "best": float | None,
      "best_id": id | None}, ...]``; ``score`` is ``None`` for an invalid program, ``best``
      is the highest score among the first ``n`` programs (``None`` until one is valid).
    """
    points, best, best_id = [], None, None
    for p in store.programs(run.id):
        if p.status == PENDING:
            continue
        s = finite(p.score) if p.status == EVALUATED else None
        if s is not None and (best is None or s > best):
            best, best_id = s, p.id
        points.append({"n": len(points) + 1, "program": p.id, "score": s, "best": best, "best_id": best_id})
    return points


def run_graph(store: Store, run: RunRecord) -> dict[str, Any]:
    """The lineage of a whole run as a graph.

    Returns:
      ``{"run": run_summary, "nodes": [{"id", "generation", "status", "score",
      "held_out_score", "gain", "edit", "mutator", "parent"}], "edges": [{"parent", "child",
      "role"}]}``; edges of every role, nodes oldest first.
    """
    programs = store.programs(run.id)
    by_id = {p.id: p for p in programs}
    nodes, edges = [], []
    for p in programs:
        parent_id = None
        for e in store.parents(p.id):
            edges.append({"parent": e.parent_id, "child": p.id, "role": e.role})
            if parent_id is None and e.role in LINEAGE_ROLES:
                parent_id = e.parent_id
        parent = by_id.get(parent_id) if parent_id is not None else None
        nodes.append({"id": p.id, "generation": p.generation, "status": p.status, "score": finite(p.score),
                      "held_out_score": finite(p.held_out_score),
                      "gain": gain(p, parent) if parent is not None else None,
                      "edit": p.edit, "mutator": p.mutator, "parent": parent_id})
    return {"run": run_summary(store, run), "nodes": nodes, "edges": edges}


# ----------------------------------------------------------------------------- programs
def evaluation_view(e: EvaluationRecord) -> dict[str, Any]:
    return {"task": e.task, "split": e.split, "seed": e.seed, "status": e.status,
            "metrics": dict(e.metrics), "curve": [list(p) for p in e.curve], "error": e.error,
            "wall_time": e.wall_time, "device": e.device, "created_at": _iso(e.created_at)}


def program_view(store: Store, program_id: int | str) -> dict[str, Any]:
    """Everything about one program: source, parents and children, the diff against the
    program it was mutated from, its evaluations (metrics and curves, every split), and the
    edit and LLM calls that produced it.

    Raises:
      LineageError: no program has this id.
    """
    p = resolve_program(store, program_id)
    run = store.get_run(p.run_id)
    edges = store.parents(p.id)
    parents = []
    for e in edges:
        q = store.program(e.parent_id)
        parents.append({"id": e.parent_id, "role": e.role, "score": finite(q.score) if q else None,
                        "edit": q.edit if q else None})
    first = next((e.parent_id for e in edges if e.role in LINEAGE_ROLES), None)
    parent = store.program(first) if first is not None else None
    diff = (unified_diff(parent.source, p.source, f"program {parent.id}", f"program {p.id}")
            if parent is not None else None)
    children = [{"id": e.child_id, "role": e.role} for e in store.children(p.id)]
    calls = [c for c in store.llm_calls(p.run_id) if c.program_id == p.id] if run else []
    return {
        "id": p.id, "run_id": p.run_id, "run": run.name if run else None, "space": p.space,
        "generation": p.generation, "status": p.status, "score": finite(p.score),
        "held_out_score": finite(p.held_out_score), "gain": gain(p, parent), "code_hash": p.code_hash,
        "edit": p.edit, "mutator": p.mutator, "model": p.model, "created_at": _iso(p.created_at),
        "source": p.source, "parent": first, "parents": parents, "children": children, "diff": diff,
        "evaluations": [evaluation_view(e) for e in store.evaluations(p.id)],
        "llm_calls": [{"id": c.id, "model": c.model, "prompt": c.prompt, "response": c.response,
                       "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                       "cost_usd": c.cost_usd, "latency_s": c.latency_s, "status": c.status,
                       "error": c.error} for c in calls],
    }


def diff_programs(store: Store, a: int | str, b: int | str) -> dict[str, Any]:
    """The unified diff from program ``a`` to program ``b``."""
    pa, pb = resolve_program(store, a), resolve_program(store, b)
    return {"a": pa.id, "b": pb.id, "score_a": finite(pa.score), "score_b": finite(pb.score),
            "diff": unified_diff(pa.source, pb.source, f"program {pa.id}", f"program {pb.id}")}


# ----------------------------------------------------------------------------- lineage trees
def _node(p: ProgramRecord, role: str | None, g: float | None) -> dict[str, Any]:
    return {"id": p.id, "role": role, "generation": p.generation, "status": p.status,
            "score": finite(p.score), "gain": g, "edit": p.edit, "children": [], "seen": False}


def ancestor_tree(store: Store, program_id: int | str, max_depth: int | None = None) -> dict[str, Any]:
    """The program and its ancestors as a nested tree: a node's ``children`` are the
    programs it was made from (parent and crossover edges, in order), so the seeds are the
    leaves. ``gain`` is each program's score minus that of the program it was mutated from.
    A program reached a second time (crossover of relatives) has ``seen: True`` and no
    children."""
    root = resolve_program(store, program_id)
    seen: set[int] = set()

    def build(p: ProgramRecord, role: str | None, depth: int) -> dict[str, Any]:
        edges = [e for e in store.parents(p.id) if e.role in LINEAGE_ROLES]
        parents = [store.program(e.parent_id) for e in edges]
        node = _node(p, role, gain(p, parents[0]) if parents else None)
        if p.id in seen:
            node["seen"] = True
            return node
        seen.add(p.id)
        if max_depth is None or depth < max_depth:
            node["children"] = [build(q, e.role, depth + 1) for e, q in zip(edges, parents) if q is not None]
        return node

    return build(root, None, 0)


def descendant_tree(store: Store, program_id: int | str, max_depth: int | None = None) -> dict[str, Any]:
    """The program and the programs made from it, as a nested tree (parent and crossover
    edges); ``gain`` of a child is its score minus that of the node it hangs under."""
    root = resolve_program(store, program_id)
    seen: set[int] = set()

    def build(p: ProgramRecord, role: str | None, g: float | None, depth: int) -> dict[str, Any]:
        node = _node(p, role, g)
        if p.id in seen:
            node["seen"] = True
            return node
        seen.add(p.id)
        if max_depth is None or depth < max_depth:
            for e in store.children(p.id):
                if e.role not in LINEAGE_ROLES:
                    continue
                c = store.program(e.child_id)
                if c is not None:
                    node["children"].append(build(c, e.role, gain(c, p), depth + 1))
        return node

    first_id = primary_parent(store, root.id)
    first = store.program(first_id) if first_id is not None else None
    return build(root, None, gain(root, first), 0)


def ancestry(store: Store, program_id: int | str) -> list[dict[str, Any]]:
    """Every ancestor of a program (parent and crossover edges), nearest first, each once:
    ``[{"id", "generation", "score", "edit", "mutator", "parents": [ids]}, ...]``, the
    program itself first."""
    start = resolve_program(store, program_id)
    out, queue, seen = [], [start.id], {start.id}
    while queue:
        pid = queue.pop(0)
        p = store.program(pid)
        if p is None:
            continue
        parents = lineage_parents(store, pid)
        out.append({"id": p.id, "generation": p.generation, "score": finite(p.score), "edit": p.edit,
                    "mutator": p.mutator, "parents": parents})
        for q in parents:
            if q not in seen:
                seen.add(q)
                queue.append(q)
    return out


# ----------------------------------------------------------------------------- curves
def task_curves(store: Store, program_ids: Iterable[int],
                splits: Sequence[str] = (TRAIN, HELD_OUT)) -> dict[str, dict[int, list[list[float]]]]:
    """Curves by task, then by program: ``{task: {program_id: [[x, y], ...]}}`` from each
    program's ok evaluations in ``splits`` (the first stored evaluation per task)."""
    out: dict[str, dict[int, list[list[float]]]] = {}
    for pid in program_ids:
        for e in store.evaluations(pid):
            if e.split not in splits or not e.ok or not e.curve:
                continue
            out.setdefault(e.task, {}).setdefault(pid, [list(p) for p in e.curve])
    return out


def seeds_and_best(store: Store, run: RunRecord, n_best: int = 3) -> tuple[list[ProgramRecord], list[ProgramRecord]]:
    """(the run's seed programs, its ``n_best`` best programs that are not seeds)."""
    programs = store.programs(run.id)
    seeds = [p for p in programs if p.generation == 0]
    seed_ids = {p.id for p in seeds}
    best = [p for p in store.top(run.id, n=n_best + len(seeds)) if p.id not in seed_ids][:n_best]
    return seeds, best


def split_label(split: str) -> str:
    return {TRAIN: "train", HELD_OUT: "held-out", REEVAL: "re-evaluation"}.get(split, split)
