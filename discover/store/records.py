"""Frozen records the store returns, and the vocabularies of their status fields.

The store never hands out ORM rows: every public method returns one of these immutable
records (or a list of them), detached from any database session, so callers can keep them
as long as they like and pass them between threads and processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping

# The content hash of a program (SHA-256 of its source, trailing whitespace ignored): one
# definition shared with the loop and the mutators, so "same program" means the same everywhere.
from discover.program import code_hash  # noqa: F401  (re-exported)
from discover.space import TaskResult

# Run statuses. A run is "running" from creation (and again on resume) until it ends.
RUN_RUNNING, RUN_FINISHED, RUN_FAILED, RUN_STOPPED = "running", "finished", "failed", "stopped"
RUN_STATUSES = (RUN_RUNNING, RUN_FINISHED, RUN_FAILED, RUN_STOPPED)

# Program statuses. "pending": stored, its train evaluations not all recorded yet;
# "evaluated": scored; "invalid": evaluated but failed (a task errored, or the score is not
# finite). Candidates dropped *before* evaluation (duplicates, failed static checks, ε-net
# neighbours) are not programs at all: they are kept as rejections, in their own table, so
# the population the selector replays holds only programs that were actually evaluated.
PENDING, EVALUATED, INVALID = "pending", "evaluated", "invalid"
PROGRAM_STATUSES = (PENDING, EVALUATED, INVALID)

# Evaluation splits: the train tasks that make the score, the held-out tasks that check it,
# and re-evaluations of promising programs on fresh seeds.
TRAIN, HELD_OUT, REEVAL = "train", "held_out", "reeval"
SPLITS = (TRAIN, HELD_OUT, REEVAL)

# Roles of a parent edge: the program that was mutated, an inspiration shown to the
# mutator, or one of several parents of a crossover.
PARENT, INSPIRATION, CROSSOVER = "parent", "inspiration", "crossover"
PARENT_ROLES = (PARENT, INSPIRATION, CROSSOVER)

# Reflection kinds: a note after each evaluated batch, and the long-term summary that
# replaces the previous one every few batches.
SHORT, LONG = "short", "long"
REFLECTION_KINDS = (SHORT, LONG)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One discovery run.

    Attributes:
      config: the run's configuration as given to ``create_run`` (JSON round trip).
      versions: library versions the run used, e.g. ``{"open_spiel": "2.0.2"}``.
      budget: evaluation budget; ``None`` for unlimited.
      finished_at: when the run last left the "running" status; ``None`` while running.
    """

    id: int
    name: str
    space: str
    config: Mapping[str, Any]
    versions: Mapping[str, str]
    mutator: str | None
    model: str | None
    seed: int
    budget: int | None
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class ProgramRecord:
    """One candidate program of a run.

    Attributes:
      code_hash: ``code_hash(source)``; unique within a run.
      generation: 0 for seeds, then the generation of the loop that proposed it.
      edit: a human-readable description of the edit that made it from its parent(s).
      score: the train fitness (higher is better); ``None`` until evaluated, or if invalid.
      held_out_score: the same on the held-out tasks, once measured.
      fingerprint: the behavioural fingerprint (outputs on the space's probe inputs), as
        float64 values; ``None`` if not measured.
    """

    id: int
    run_id: int
    source: str
    code_hash: str
    space: str
    generation: int
    edit: str | None
    mutator: str | None
    model: str | None
    status: str
    score: float | None
    held_out_score: float | None
    fingerprint: tuple[float, ...] | None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class ParentEdge:
    """``parent_id`` contributed to ``child_id`` in ``role``; ``ordinal`` orders a child's parents."""

    child_id: int
    parent_id: int
    role: str
    ordinal: int


@dataclasses.dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of one program on one task with one seed (see ``TaskResult``).

    Attributes:
      split: one of ``SPLITS``.
      status: one of ``discover.space.STATUSES``.
      metrics: task metrics; ``metrics["score"]`` present iff ``status == "ok"``.
      curve: ``((x, y), ...)``, e.g. ``((iteration, exploitability), ...)``.
      device: where it computed, as the worker reported it (``discover.space.describe_device``):
        ``"cpu"`` for NumPy and JAX's CPU device, e.g. ``"cuda:0 NVIDIA H100 80GB HBM3"`` on
        a GPU; None where the space did not say.
      harness: the harness version that computed it (``discover.space.Space.harness_version``:
        evaluator and scoring code, options); None for evaluations stored before it was kept.
    """

    id: int
    program_id: int
    task: str
    seed: int
    split: str
    status: str
    metrics: Mapping[str, Any]
    curve: tuple[tuple[float, ...], ...]
    error: str | None
    wall_time: float
    device: str | None
    created_at: dt.datetime
    harness: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def result(self) -> TaskResult:
        """The evaluation as the ``TaskResult`` the evaluator returned."""
        return TaskResult(status=self.status, metrics=dict(self.metrics), curve=self.curve,
                          error=self.error, wall_time=self.wall_time, device=self.device, harness=self.harness)


@dataclasses.dataclass(frozen=True)
class RejectionRecord:
    """A candidate dropped before evaluation (duplicate, failed static check, probe failure,
    too close to a known program in the ε-net), with the reason why."""

    id: int
    run_id: int
    source: str
    code_hash: str
    reason: str
    parent_ids: tuple[int, ...]
    generation: int
    edit: str | None
    mutator: str | None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class LLMCallRecord:
    """One call to a language model: what was asked, what came back, and what it cost."""

    id: int
    run_id: int
    program_id: int | None
    model: str
    prompt: str
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    status: str
    error: str | None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class ReflectionRecord:
    """A reflection written after generation ``generation``: ``kind`` is "short" or "long"."""

    id: int
    run_id: int
    generation: int
    kind: str
    text: str
    created_at: dt.datetime
