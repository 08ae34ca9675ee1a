"""The mutator interface: what every mutator (offline, LLM) receives and returns.

A mutator turns a parent program (plus a few inspirations and the current reflections)
into child programs. It knows nothing of evaluation: the loop checks, fingerprints and
evaluates what it proposes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from discover.space import Space


@dataclasses.dataclass(frozen=True)
class Parent:
    """A program a mutator starts from.

    Attributes:
      id: the program's id in the store.
      source: the whole program text.
      score: its fitness so far (None where not yet evaluated).
      metrics: a per-task summary of its evaluations, e.g. ``{"leduc_poker": {"score": 0.4}}``.
    """

    id: int
    source: str
    score: float | None = None
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MutationContext:
    """Everything a mutator may use for one batch of proposals.

    Attributes:
      space: the search space (its doc, required functions, mechanisms).
      parent: the program to change.
      inspirations: other good programs (crossover partners, examples for an LLM).
      reflections: short notes on what worked and what failed so far.
      generation: the loop's generation counter.
      rng_seed: the seed of this batch; the same context gives the same proposals.
    """

    space: Space
    parent: Parent
    inspirations: Sequence[Parent] = ()
    reflections: Sequence[str] = ()
    generation: int = 0
    rng_seed: int = 0


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A child program and how it was made.

    Attributes:
      source: the whole child program text.
      edit: a human-readable description of the edit,
        e.g. ``"update_regret: constant 1.5 → 1.8"``.
      parents: ids of the programs it came from (two or more for crossover).
      kind: the kind of edit (``"perturb"``, ``"swap"``, ``"splice"``, ``"crossover"``, ...).
      meta: anything else worth recording (mechanism name, model, prompt id, ...).
    """

    source: str
    edit: str
    parents: tuple[int, ...]
    kind: str
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Mutator:
    """What the loop asks of a mutator: ``propose``, and optional abilities declared here
    with their defaults, so the loop calls them without probing for them.

    Attributes:
      name: recorded with each program it makes.
      concurrent: True for a mutator that waits on a model: the loop then asks for all of a
        generation's parents at once, on threads, and proposes the next generation while
        the current one is evaluated.
      model: the model that wrote a proposal when its ``meta`` names none (None offline).
    """

    name: str = "mutator"
    concurrent: bool = False
    model: str | None = None

    def propose(self, context: MutationContext, n: int) -> list[Proposal]:
        """Up to ``n`` children of ``context.parent``; fewer (never more) when it cannot find
        that many distinct, statically valid children."""
        raise NotImplementedError

    def record_outcome(self, proposal: Proposal, score: float | None) -> None:
        """Told how a proposal fared: its score, or None if it was rejected or failed."""

    def drain_calls(self) -> list:
        """The model calls made since the last drain, for the lineage (``LLMCall``s)."""
        return []

    @property
    def total_cost(self) -> float:
        """Dollars spent on model calls so far."""
        return 0.0

    def reflect(self, batch: Sequence[tuple[Parent, float | None]], space_name: str | None = None) -> str:
        """A short note on what worked in a batch of (child, score); "" to let the loop
        write its statistical one."""
        return ""

    def summarize(self, notes: Sequence[str], space_name: str | None = None) -> str:
        """A long-term summary of recent short notes; "" for the loop's statistical one."""
        return ""
