"""`discover plot`: a run's progress and its best programs' curves, as one PNG.

Panels:

1. best-so-far train score against the number of evaluated programs (each program's own
   score as a dot, invalid programs as crosses on the lower edge);
2. one panel per task: the curve every evaluation recorded (for CFR variants, the
   exploitability of the average policy against iterations), for the run's best programs
   (solid) against its seeds (dashed), on log scales where the values allow.

Rendering is headless (matplotlib's Agg backend), so it works on servers and in CI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from discover.ui import views
from discover.store import HELD_OUT, TRAIN, Store


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)   # no display: never try to open a window
    import matplotlib.pyplot as plt

    return plt


def _positive(values: Sequence[float]) -> bool:
    return bool(values) and all(v is not None and v > 0 for v in values)


def plot_data(store: Store, run_name_or_id: int | str, n_best: int = 3) -> dict[str, Any]:
    """What ``plot_run`` draws, as plain data (also what ``--json`` prints).

    Returns:
      ``{"run": name, "progress": views.progress(...), "metric": label,
      "tasks": [{"task", "split", "series": [{"program", "label", "seed", "curve"}]}]}``.

    Raises:
      views.LineageError: unknown run, or a run with no programs.
    """
    run = views.resolve_run(store, run_name_or_id)
    views.require_programs(store, run)
    seeds, best = views.seeds_and_best(store, run, n_best)
    ids = [p.id for p in best] + [p.id for p in seeds]
    curves = views.task_curves(store, ids, splits=(TRAIN, HELD_OUT))
    split_of: dict[str, str] = {}
    metric = None
    for pid in ids:
        for e in store.evaluations(pid):
            if e.split in (TRAIN, HELD_OUT):
                split_of.setdefault(e.task, e.split)
            if e.ok and metric is None:
                metric = views.headline_metric(e.metrics)
    labels = {p.id: f"best #{i + 1}: program {p.id}" for i, p in enumerate(best)}
    labels.update({p.id: f"seed: {(p.edit or '').removeprefix('seed: ') or p.id}" for p in seeds})
    seed_ids = {p.id for p in seeds}
    tasks = []
    for task in sorted(curves, key=lambda t: (split_of.get(t) != TRAIN, t)):
        series = [{"program": pid, "label": labels[pid], "seed": pid in seed_ids, "curve": curves[task][pid]}
                  for pid in ids if pid in curves[task]]
        tasks.append({"task": task, "split": split_of.get(task, TRAIN), "series": series})
    label = "exploitability" if metric == "final_exploitability" else (metric or "metric")
    return {"run": run.name, "progress": views.progress(store, run), "metric": label, "tasks": tasks}


def plot_run(store: Store, run_name_or_id: int | str, out: str | Path, n_best: int = 3,
             dpi: int = 110) -> Path:
    """Draws ``plot_data`` into the PNG file ``out`` (its folder is created); returns the path.

    Raises:
      views.LineageError: unknown run, or a run with no programs.
    """
    data = plot_data(store, run_name_or_id, n_best)
    plt = _pyplot()
    panels = 1 + len(data["tasks"])
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    try:
        _draw_progress(flat[0], data)
        for ax, task in zip(flat[1:], data["tasks"]):
            _draw_task(ax, task, data["metric"])
        for ax in flat[panels:]:
            ax.axis("off")
        fig.suptitle(f"run {data['run']}")
        fig.tight_layout()
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _draw_progress(ax, data: dict[str, Any]) -> None:
    pts = data["progress"]
    xs = [p["n"] for p in pts]
    ok = [(p["n"], p["score"]) for p in pts if p["score"] is not None]
    best = [(p["n"], p["best"]) for p in pts if p["best"] is not None]
    if ok:
        ax.scatter([x for x, _ in ok], [y for _, y in ok], s=12, color="0.6", label="program score", zorder=2)
    if best:
        ax.step([x for x, _ in best], [y for _, y in best], where="post", color="C3", lw=2,
                label="best so far", zorder=3)
    bad = [p["n"] for p in pts if p["score"] is None]
    if bad:
        ax.scatter(bad, [0] * len(bad), marker="x", color="C1", s=16, label="invalid",
                   transform=ax.get_xaxis_transform(), clip_on=False, zorder=3)
    ax.set_xlabel("programs evaluated")
    ax.set_ylabel("train score (higher is better)")
    ax.set_title("best so far")
    if xs:
        ax.set_xlim(0.5, max(xs) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _draw_task(ax, task: dict[str, Any], metric: str) -> None:
    xs_all, ys_all = [], []
    for s in task["series"]:
        xs = [p[0] for p in s["curve"]]
        ys = [p[1] if len(p) > 1 else None for p in s["curve"]]
        xs_all += xs
        ys_all += ys
        ax.plot(xs, ys, ls="--" if s["seed"] else "-", lw=1.2 if s["seed"] else 2.0,
                alpha=0.8 if s["seed"] else 1.0, label=s["label"], marker=None if len(xs) > 12 else ".")
    if _positive(ys_all):
        ax.set_yscale("log")
    if _positive(xs_all):
        ax.set_xscale("log")
    name = task["task"]
    wrapper = "turn_based_simultaneous_game(game="
    if name.startswith(wrapper) and name.endswith(")"):
        name = name[len(wrapper):-1] + " (turn-based)"
    if len(name) > 60:
        name = name[:57] + "…"
    ax.set_title(f"{'held-out: ' if task['split'] == HELD_OUT else ''}{name}", fontsize=9)
    ax.set_xlabel("iteration" if metric == "exploitability" else "x")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
