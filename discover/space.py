"""What a search space is, and the typed results its evaluator returns.

A space states once what a candidate program must define (the text the mutator sees),
which programs it starts from, on which tasks a candidate is scored and how. The loop,
selector, mutators and executors only ever talk to a space through this interface, so a
new space (or a third-party one registered under the ``discover.spaces`` entry point)
slots in without touching them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

EVOLVE_START = "# EVOLVE-BLOCK-START"
EVOLVE_END = "# EVOLVE-BLOCK-END"

# Statuses of one evaluation. Only "ok" is ever scored.
OK = "ok"
INVALID = "invalid"      # the candidate ran but broke the space's contract (shape, NaN, probabilities ...)
ERROR = "error"          # the candidate raised
TIMEOUT = "timeout"      # wall-time limit
MEMORY = "memory"        # memory limit
CRASHED = "crashed"      # the worker process died (signal, os._exit, segfault)
FORBIDDEN = "forbidden"  # tried a forbidden operation (process, network, file outside its directory)
STATUSES = (OK, INVALID, ERROR, TIMEOUT, MEMORY, CRASHED, FORBIDDEN)


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """One evaluation of one program on one task with one seed.

    Attributes:
      status: one of ``STATUSES``.
      metrics: task metrics, e.g. ``{"final_exploitability": 2.6e-4, "score": 0.31}``.
        ``metrics["score"]`` is this task's contribution to the program's fitness
        (higher is better); it is present iff ``status == "ok"``.
      curve: ``[[x, y], ...]``, e.g. ``[[iteration, exploitability], ...]``.
      error: a one-paragraph reason when ``status != "ok"``.
      wall_time: seconds spent evaluating.
      device: where the evaluation computed, as the worker saw it, in the format of
        ``describe_device``: ``"cpu"`` (NumPy, or JAX's CPU device) or e.g.
        ``"cuda:0 NVIDIA H100 80GB HBM3"``; None where the space does not say.
      harness: the version of the harness that computed it (``Space.harness_version``),
        set by the executor in the trusted process, never by the worker.
    """

    status: str
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    curve: Sequence[Sequence[float]] = ()
    error: str | None = None
    wall_time: float = 0.0
    device: str | None = None
    harness: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "metrics": dict(self.metrics),
            "curve": [list(p) for p in self.curve],
            "error": self.error,
            "wall_time": self.wall_time,
            "device": self.device,
            "harness": self.harness,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TaskResult":
        return cls(
            status=d["status"],
            metrics=dict(d.get("metrics") or {}),
            curve=[tuple(p) for p in d.get("curve") or ()],
            error=d.get("error"),
            wall_time=float(d.get("wall_time") or 0.0),
            device=d.get("device") if isinstance(d.get("device"), str) else None,
            harness=d.get("harness") if isinstance(d.get("harness"), str) else None,
        )

    @classmethod
    def failure(cls, status: str, error: str, wall_time: float = 0.0) -> "TaskResult":
        return cls(status=status, error=error, wall_time=wall_time)


CPU = "cpu"

MEAN_FITNESS_DOC = ("The program's fitness is the mean of its tasks' scores; a program that fails "
                    "on any task has fitness -infinity.")


def describe_device(device) -> str:
    """One JAX device as stored with evaluations: ``"cpu"`` for a CPU device, else
    ``"<platform>:<id> <kind>"`` with CUDA's platform named ``cuda``, e.g.
    ``"cuda:0 NVIDIA H100 80GB HBM3"``."""
    platform = str(getattr(device, "platform", CPU))
    if platform == CPU:
        return CPU
    platform = "cuda" if platform == "gpu" else platform
    kind = str(getattr(device, "device_kind", "") or "").strip()
    return f"{platform}:{getattr(device, 'id', 0)}" + (f" {kind}" if kind else "")


def jax_device() -> str:
    """The device JAX computes on by default in this process (``describe_device``)."""
    import jax
    return describe_device(jax.devices()[0])


@dataclasses.dataclass(frozen=True)
class ExportAdapter:
    """How a space's programs are used outside discover, declared by the space itself.

    ``discover export`` writes the package's ``ALGORITHM`` for every space; a space with an
    adapter adds its own code, tests and usage texts (``string.Template`` files, ``$module``
    substituted in the usage texts), and ``discover.load_algorithm(name)`` objects of the
    space gain ``methods``.

    Attributes:
      code: template appended to the package's ``__init__.py``: the adapter and ``__all__``.
      tests: template appended to the package's ``tests/test_algorithm.py``.
      doc_usage: usage lines for the package's module docstring.
      readme_usage: the README's section on calling it from one's own code.
      score_note: a sentence on what the space's score means, for the README.
      methods: ``name -> function(algorithm, *args, **kwargs)``; ``algorithm.name(...)``
        calls it, e.g. ``{"solver": lambda a, game: Solver(game, a.source)}``.
    """

    code: Path | None = None
    tests: Path | None = None
    doc_usage: Path | None = None
    readme_usage: Path | None = None
    score_note: str = ""
    methods: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)


def aggregate_score(results: Sequence[TaskResult]) -> float:
    """The fitness of a program: the mean of its tasks' scores; -inf if any task failed.

    A failed program can never win: one failed task makes the whole program -inf.
    """
    if not results:
        return -math.inf
    scores = []
    for r in results:
        if not r.ok:
            return -math.inf
        s = float(r.metrics.get("score", math.nan))
        if not math.isfinite(s):
            return -math.inf
        scores.append(s)
    return sum(scores) / len(scores)


class Space:
    """Base class of a search space. Subclasses set the class attributes and implement
    ``evaluate`` (and optionally ``probe``); everything else has a working default.

    Attributes:
      name: the space's name on the command line (``--space NAME``).
      doc: what the mutator (and a human) reads: the contract of the functions to write,
        their signatures, shapes and meaning. Written for a reader who never saw the code.
      required_functions: names a candidate module must define at top level.
      signatures: each required function's typed signature, as the ``def`` line a reader
        sees (``"def drift(ratio: Array[B], advantage: Array[B]) -> Array[B]"``, shapes in
        brackets). The prompt shows these, and ``discover.checks`` reads the parameters a
        candidate must accept from them; a space that declares none has them read off its
        seeds.
      seeds_dir: folder holding the seed programs, one ``NAME.py`` each.
      train_tasks / held_out_tasks: task identifiers (for game spaces: game strings).
      stochastic: True where evaluating twice with different seeds gives different scores.
      mechanisms: for the offline mutator, snippets of known mechanisms worth splicing in.
      reference_seed: the seed (a name in ``seeds()``) whose evaluation time on a task sets
        that task's wall-time limit (``discover.engine.limits``); None for none.
      time_limit: a fixed per-evaluation wall-time limit in seconds for a space without a
        reference seed; None for ``discover.engine.limits.FALLBACK_S``.
      fitness_doc: the paragraph of ``doc`` that says how ``score`` turns task scores into
        the program's fitness, rendered from the same constants the score uses, so the
        prompt and the score cannot disagree (a test checks it for every space).
      export_adapter: what ``discover export`` and ``discover.load_algorithm`` offer for
        the space's programs beyond their source (``ExportAdapter``); None for the source alone.
    """

    name: str = ""
    doc: str = ""
    required_functions: tuple[str, ...] = ()
    signatures: Mapping[str, str] = {}
    seeds_dir: Path | None = None
    train_tasks: tuple[str, ...] = ()
    held_out_tasks: tuple[str, ...] = ()
    stochastic: bool = False
    mechanisms: Mapping[str, str] = {}
    reference_seed: str | None = None
    time_limit: float | None = None
    fitness_doc: str = MEAN_FITNESS_DOC
    export_adapter: ExportAdapter | None = None

    def seeds(self) -> dict[str, str]:
        """Seed programs by name, as source text."""
        if self.seeds_dir is None:
            return {}
        return {p.stem: p.read_text() for p in sorted(Path(self.seeds_dir).glob("*.py"))
                if not p.name.startswith("_")}

    def evaluate(self, source: str, task: str, seed: int = 0, **options: Any) -> TaskResult:
        """Scores ``source`` on one task. Runs inside an isolated worker; may raise for
        candidate errors (the executor turns exceptions into ``error`` results).
        Every space that is run overrides it."""
        raise NotImplementedError(f"space {self.name!r} does not define evaluate()")

    # A space without behavioural probes leaves ``probe`` as None: the ε-net then falls
    # back to the program's normalised code text (``discover.engine.probe``).
    probe = None
    # def probe(self, namespace: Mapping[str, Any]) -> np.ndarray:
    #     The candidate's outputs on fixed probe inputs, as a 1-D float array: its
    #     behavioural fingerprint for the ε-net. Two programs that compute the same
    #     function give the same fingerprint. Raises ValueError if the candidate fails
    #     on the probes.

    def score(self, results: Sequence[TaskResult]) -> float:
        return aggregate_score(results)

    # The modules whose code computes an evaluation's numbers, beyond the space's own module;
    # their source is part of ``harness_version``.
    harness_modules: tuple[str, ...] = ("discover.space",)

    def harness_version(self, options: Mapping[str, Any] | None = None) -> str:
        """A digest of everything an evaluation's numbers depend on besides the program and
        the task: the space's module and ``harness_modules`` (evaluator and scoring code) and
        the evaluation ``options``. Evaluations with different versions are not comparable;
        resume and export refuse to mix them."""
        import hashlib
        import importlib
        import inspect
        import json
        digest = hashlib.sha256()
        modules = dict.fromkeys((type(self).__module__, *self.harness_modules))
        for name in modules:
            try:
                digest.update(Path(inspect.getfile(importlib.import_module(name))).read_bytes())
            except (ImportError, OSError, TypeError):
                digest.update(name.encode())
        digest.update(json.dumps(dict(options or {}), sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    def task_label(self, task: str) -> str:
        """A short name for tables and plots."""
        return task
