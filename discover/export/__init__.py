"""`discover export`: a program of the lineage store as a pip-installable plug-in.

``export_program(store, program_id, out)``:

1. re-evaluates the program, in isolated worker processes
   (``discover.engine.evaluation`` on a ``LocalExecutor``) on a seed none of its stored evaluations used:
   on the space's train tasks (recorded in the store under split "reeval") and on its
   held-out tasks (split "held_out"; the program's held-out score is updated). A program
   that fails any of these is not exported;
2. writes the directory ``out``:

   ``pyproject.toml``      distribution ``discover-algo-<name>``, depending on numpy and
                           ``discover`` (the engine), with the entry point
                           ``[discover.algorithms] <name> = discover_algo_<name>:ALGORITHM``
   ``discover_algo_<name>/program.py``     the program's source, verbatim
   ``discover_algo_<name>/__init__.py``    ``ALGORITHM`` (``discover.algorithms.Algorithm``)
                           and the space's adapter (``Space.export_adapter``)
   ``metadata.json``       (also inside the package) scores on the train and held-out tasks,
                           lineage (ancestor ids and edits), library versions, code hash
   ``README.md``           results, lineage, and how to call the adapter from one's own code
   ``tests/test_algorithm.py``  the package's own checks (it loads, and the adapter's)

The adapter is declared by each space (``discover.space.ExportAdapter``; a space that
declares none gets ``ALGORITHM`` alone). The built-in ones:

   ``cfr_variants``        ``Solver(game)``: an OpenSpiel-style CFR solver; tests: it lowers
                           exploitability on Kuhn poker
   ``psro_meta_solvers``   ``MetaSolver(kind)``: payoff tensor in, one mixture per player out,
                           state kept between calls, and a meta-strategy method for OpenSpiel's
                           PSRO; tests: valid mixtures, OpenSpiel's meta-game form, exact PSRO
                           on Kuhn poker ends below the uniform policy
   ``ppo_objectives``,     ``loss(log_prob, old_log_prob, advantages, ...)``: the JAX policy
   ``temporal_objectives`` loss, and ``drift``; tests: differentiable, the vanilla policy
                           gradient at r = 1, a valid drift, PPO's surrogate for PPO's drift
   ``advantage_rules``     ``advantages(rewards, values, dones, last_value, gamma, lam)``;
                           tests: finite [T, E] outputs, compiled and eager agree

Nothing is written if the program fails, and an existing ``out`` is never touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from discover.ui import views
from discover.algorithms import normalize_name
from discover.space import ExportAdapter, Space, TaskResult
from discover.store import HELD_OUT, REEVAL, ProgramRecord, RunRecord, Store

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGE_VERSION = "0.1.0"
DEFAULT_MEMORY_LIMIT_MB = 8192


class ExportError(ValueError):
    """The program cannot be exported; the message is one clear sentence."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What ``export_program`` wrote.

    Attributes:
      directory: the package directory.
      name: the algorithm's entry-point name.
      distribution: the pip distribution name (``discover-algo-<name>``).
      module: the importable package (``discover_algo_<name>``).
      metadata: the contents of ``metadata.json``.
    """

    directory: Path
    name: str
    distribution: str
    module: str
    metadata: Mapping[str, Any]


def default_name(program: ProgramRecord) -> str:
    """``<space>_<id>``, e.g. ``cfr_variants_42`` (a space given as ``module:ATTR`` uses its
    module's last part)."""
    space = program.space.split(":")[0].split(".")[-1]
    cleaned = "".join(c if c.isalnum() else "_" for c in space.lower()).strip("_") or "program"
    if not cleaned[0].isalpha():
        cleaned = "p_" + cleaned
    return normalize_name(f"{cleaned}_{program.id}")


def fresh_seed(store: Store, program_id: int) -> int:
    """One more than the largest seed of any stored evaluation of the program (1 if none)."""
    return max((e.seed for e in store.evaluations(program_id)), default=0) + 1


def reevaluate(store: Store, program: ProgramRecord, space: Space, options: Mapping[str, Any], seed: int,
               time_limit: float | None, memory_limit_mb: int, workers: int = 1,
               on_result: Callable[[str, str, TaskResult], None] | None = None) -> dict[str, dict[str, TaskResult]]:
    """Evaluates ``program`` afresh on the space's train tasks (split "reeval") and
    held-out tasks (split "held_out") with ``seed`` in isolated workers (the one path of
    ``discover.engine.evaluation``), and records every result in the store as it arrives.

    Returns:
      ``{"reeval": {task: result}, "held_out": {task: result}}`` in the space's task order.
    """
    from discover.engine import evaluation
    from discover.isolation.executor import LocalExecutor
    from discover.engine.limits import TimeLimits

    with LocalExecutor(workers=max(1, int(workers)), time_limit=TimeLimits(time_limit),
                       memory_limit_mb=memory_limit_mb) as executor:
        jobs = {split: evaluation.submit(executor, program.space, program.source, tasks, seed, options)
                for split, tasks in ((REEVAL, space.train_tasks), (HELD_OUT, space.held_out_tasks))}
        return {split: evaluation.collect(store, program.id, split, seed, futures,
                                          on_result=None if on_result is None else
                                          (lambda task, result, split=split: on_result(split, task, result)))
                for split, futures in jobs.items()}


def _score(space: Space, results: Mapping[str, TaskResult]) -> float | None:
    return views.finite(space.score(list(results.values()))) if results else None


def _task_entry(r: TaskResult) -> dict[str, Any]:
    return {"status": r.status, "metrics": dict(r.metrics), "curve": [list(p) for p in r.curve],
            "error": r.error, "wall_time": r.wall_time}


def build_metadata(store: Store, program: ProgramRecord, run: RunRecord, space: Space, name: str, module: str,
                   distribution: str, results: Mapping[str, Mapping[str, TaskResult]], seed: int,
                   options: Mapping[str, Any]) -> dict[str, Any]:
    """The contents of ``metadata.json`` (JSON-ready)."""
    from discover.engine.runner import library_versions

    train, held = results[REEVAL], results[HELD_OUT]
    harness = space.harness_version(options)
    stored_harness = sorted({e.harness for e in store.evaluations(program.id)} - {None})
    return {
        "name": name, "distribution": distribution, "module": module, "version": PACKAGE_VERSION,
        "space": program.space, "required_functions": list(space.required_functions),
        "program_id": program.id, "code_hash": program.code_hash, "generation": program.generation,
        "edit": program.edit, "mutator": program.mutator, "model": program.model,
        "run": {"id": run.id, "name": run.name, "seed": run.seed, "mutator": run.mutator, "model": run.model,
                "config": dict(run.config)},
        "scores": {
            "train": {"score": _score(space, train), "stored_score": views.finite(program.score),
                      "tasks": {t: _task_entry(r) for t, r in train.items()}},
            "held_out": {"score": _score(space, held), "tasks": {t: _task_entry(r) for t, r in held.items()}},
        },
        "evaluation": {"seed": seed, "options": dict(options), "executor": "discover.isolation.executor.LocalExecutor",
                       # The stored score is comparable with the fresh one only if these agree.
                       "harness": harness, "stored_harness": stored_harness,
                       "stored_score_comparable": stored_harness in ([], [harness])},
        "lineage": views.ancestry(store, program.id),
        "versions": {"export": library_versions(), "run": dict(run.versions)},
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- rendering
def _template(name: str | Path) -> string.Template:
    """A template of ``templates/`` by file name, or any template file by path."""
    return string.Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _fmt(x: Any, spec: str = "+.4f") -> str:
    v = views.finite(x)
    return "—" if v is None else format(v, spec)


def _results_table(metadata: Mapping[str, Any]) -> str:
    rows = ["| split | task | status | score | final value |", "|---|---|---|---|---|"]
    for split, label in (("train", "train"), ("held_out", "held-out")):
        for task, r in metadata["scores"][split]["tasks"].items():
            metric = views.headline_metric(r["metrics"])
            final = _fmt(r["metrics"].get(metric), ".3e") if metric else "—"
            rows.append(f"| {label} | `{task}` | {r['status']} | {_fmt(r['metrics'].get('score'))} | {final} |")
    if len(rows) == 2:
        rows.append("| — | — | — | — | — |")
    metric = next((views.headline_metric(r["metrics"]) for s in ("train", "held_out")
                   for r in metadata["scores"][s]["tasks"].values() if r["status"] == "ok"), None)
    if metric:
        rows.append("")
        rows.append(f"*final value*: `{metric}` at the end of the evaluation.")
    return "\n".join(rows)


def _lineage_text(metadata: Mapping[str, Any]) -> str:
    # Ancestry is nearest first; the README reads from the seed down.
    lines = []
    for a in reversed(metadata["lineage"]):
        parents = ", ".join(str(p) for p in a["parents"]) or "—"
        edit = (a["edit"] or "").replace("\n", " ").replace("|", "\\|")
        lines.append(f"| {a['id']} | {a['generation']} | {parents} | {_fmt(a['score'])} | {edit} |")
    return "\n".join(["| program | generation | made from | score | edit |", "|---|---|---|---|---|", *lines])


GENERIC = ExportAdapter(code=TEMPLATES / "generic_adapter.py.tmpl")


def adapter_for(space: str) -> ExportAdapter:
    """The export adapter ``space`` declares (``Space.export_adapter``; a space name as a
    program records it), ``GENERIC`` (``ALGORITHM`` alone) if it declares none."""
    from discover.spaces import get_space
    adapter = get_space(space).export_adapter
    return adapter if adapter is not None and adapter.code is not None else GENERIC


def _text(path: Path | None, **values: str) -> str:
    """The template file ``path`` ("" for none), with ``values`` substituted."""
    return _template(path).substitute(values) if path else ""


def render_package(metadata: Mapping[str, Any], source: str) -> dict[str, str]:
    """The files of the package, by relative path."""
    name, module, space = metadata["name"], metadata["module"], metadata["space"]
    adapter = adapter_for(space)
    title = f"{name}: an evolved {space} program"
    doc_usage, readme_usage = _text(adapter.doc_usage, module=module), _text(adapter.readme_usage, module=module)
    program_id, run_name = metadata["program_id"], metadata["run"]["name"]
    common = {"name": name, "module": module, "space": space, "program_id": program_id, "run_name": run_name,
              "title": title}
    deps = ['"numpy>=1.24"', '"discover>=0.1"']
    files = {
        "pyproject.toml": _template("pyproject.toml.tmpl").substitute(
            common, distribution=metadata["distribution"], version=metadata["version"],
            description=f"{space} program {program_id} evolved by discover (run {run_name})".replace('"', "'"),
            dependencies=", ".join(deps)),
        f"{module}/__init__.py": _template("module_init.py.tmpl").substitute(
            common, usage=doc_usage, name_repr=repr(name), space_repr=repr(space),
            adapter=_template(adapter.code).template),
        f"{module}/program.py": source,
        f"{module}/metadata.json": json.dumps(metadata, indent=2) + "\n",
        "metadata.json": json.dumps(metadata, indent=2) + "\n",
        "tests/test_algorithm.py": _template("test_algorithm.py.tmpl").substitute(
            common, adapter_tests=_template(adapter.tests).template if adapter.tests else ""),
    }
    scores = metadata["scores"]
    versions = metadata["versions"]["export"]
    opts = metadata["evaluation"]["options"]
    files["README.md"] = _template("README.md.tmpl").substitute(
        common, generation=metadata["generation"], train_score=_fmt(scores["train"]["score"]),
        stored_score=_fmt(scores["train"]["stored_score"]),
        held_out_score=_fmt(scores["held_out"]["score"]) if scores["held_out"]["tasks"] else "— (the space has no held-out tasks)",
        code_hash=metadata["code_hash"], results_table=_results_table(metadata), lineage=_lineage_text(metadata),
        usage_section=readme_usage, score_note=adapter.score_note,
        evaluation=f"seed {metadata['evaluation']['seed']}" + (f" and options `{json.dumps(opts)}`" if opts else ""),
        versions="\n".join(f"- {k} {v}" for k, v in sorted(versions.items())))
    return files


def _write_tree(files: Mapping[str, str], out: Path) -> None:
    """Writes ``files`` into a fresh sibling folder, then renames it to ``out``, so ``out``
    appears complete or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if out.exists():
            raise ExportError(f"output directory {str(out)!r} exists already; choose another --out or remove it")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------- entry point
def export_program(store: Store, program_id: int | str, out: str | Path, name: str | None = None, *,
                   time_limit: float | None = None, memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
                   workers: int | None = None,
                   on_result: Callable[[str, str, TaskResult], None] | None = None) -> ExportResult:
    """Re-evaluates a program and writes it as an installable package (module docstring).

    Args:
      program_id: the program's id in ``store``.
      out: the package directory to create; it must not exist.
      name: the algorithm's name (letters, digits, ``_``/``-``); default ``default_name``.
      time_limit, memory_limit_mb: limits of each isolated evaluation; a time limit of
        None derives it per task (``discover.engine.limits``).
      workers: evaluations run at once (default: the number of CPU cores).
      on_result: called as ``(split, task, result)`` after each evaluation.

    Raises:
      views.LineageError: no program has this id.
      ExportError: ``out`` exists, the name is invalid, the space is unknown, or the program
        fails its re-evaluation (the failing results are still recorded in the store).
    """
    from discover.spaces import UnknownSpace, get_space

    out = Path(out)
    if out.exists():
        raise ExportError(f"output directory {str(out)!r} exists already; choose another --out or remove it")
    program = views.resolve_program(store, program_id)
    try:
        name = normalize_name(name) if name is not None else default_name(program)
    except ValueError as e:
        raise ExportError(str(e)) from None
    run = store.get_run(program.run_id)
    try:
        space = get_space(program.space)
    except UnknownSpace as e:
        raise ExportError(f"cannot re-evaluate program {program.id}: {e}") from None
    options = dict((run.config or {}).get("eval_options") or {})
    seed = fresh_seed(store, program.id)
    results = reevaluate(store, program, space, options, seed, time_limit, memory_limit_mb,
                         workers or max(1, os.cpu_count() or 1), on_result)
    failed = [(split, t, r) for split in (REEVAL, HELD_OUT) for t, r in results[split].items() if not r.ok]
    if space.held_out_tasks:
        held = space.score(list(results[HELD_OUT].values()))
        store.set_held_out_score(program.id, held if math.isfinite(held) else None)
    if failed:
        split, task, r = failed[0]
        reason = (r.error or "").strip().splitlines()[-1:] or [""]
        raise ExportError(f"program {program.id} failed its re-evaluation on {views.split_label(split)} task "
                          f"{task!r} ({r.status}{': ' + reason[0][:200] if reason[0] else ''}); nothing was written")
    module = f"discover_algo_{name}"
    distribution = f"discover-algo-{name.replace('_', '-')}"
    metadata = build_metadata(store, program, run, space, name, module, distribution, results, seed, options)
    _write_tree(render_package(metadata, program.source), out)
    return ExportResult(directory=out, name=name, distribution=distribution, module=module, metadata=metadata)
