"""Reflection without a model: which kinds of edit raised the score.

The LLM mutator writes its reflections with the model (``LLMMutator.reflect``); offline,
the same place in the prompt — and in the store's ``reflections`` table — is filled with
statistics over the lineage: for each kind of edit, how often it was tried, how often the
child was valid, its mean improvement over its parent and the share of children that beat
their parent. This is the statistical counterpart of the reflective memory of
OR-Agent/POLCA-style searches.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any, Iterable


@dataclasses.dataclass(frozen=True)
class EditOutcome:
    """One child: the kind of edit that made it, its parent's score and its own.

    Any object with these three attributes is accepted where an ``EditOutcome`` is.
    ``score`` is None or non-finite for a child that failed.
    """

    kind: str
    parent_score: float | None
    score: float | None


@dataclasses.dataclass(frozen=True)
class EditStats:
    """Statistics of one kind of edit.

    Attributes:
      kind: the edit kind (``Proposal.kind``).
      count: children made by it.
      valid: children with a finite score.
      mean_improvement: mean of ``score - parent_score`` over valid children whose parent
        has a finite score (nan where there are none).
      improved: children that beat their parent.
      share_improved: ``improved / count``.
    """

    kind: str
    count: int
    valid: int
    mean_improvement: float
    improved: int

    @property
    def share_improved(self) -> float:
        return self.improved / self.count if self.count else 0.0


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def edit_statistics(records: Iterable[Any]) -> list[EditStats]:
    """Per-kind statistics of ``records`` (``EditOutcome``-like), best mean improvement first;
    kinds with no measurable improvement come last."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        groups[str(r.kind)].append(r)
    out = []
    for kind, rs in groups.items():
        valid = [r for r in rs if _finite(r.score)]
        gains = [float(r.score) - float(r.parent_score) for r in valid if _finite(r.parent_score)]
        out.append(EditStats(kind=kind, count=len(rs), valid=len(valid),
                             mean_improvement=sum(gains) / len(gains) if gains else math.nan,
                             improved=sum(g > 0 for g in gains)))
    return sorted(out, key=lambda s: (math.isnan(s.mean_improvement),
                                      -s.mean_improvement if not math.isnan(s.mean_improvement) else 0.0,
                                      s.kind))


def statistical_reflection(records: Iterable[Any]) -> str:
    """A reflection note from statistics alone: one line per kind of edit, e.g.
    ``- splice: 12 tried, 10 valid, mean change vs parent +0.031, improved 5/12 (42%)``.
    Returns "" when there are no records."""
    stats = edit_statistics(records)
    if not stats:
        return ""
    lines = ["Which kinds of edit raised the score so far (change = child score - parent score, "
             "over valid children):"]
    for s in stats:
        mean = "n/a" if math.isnan(s.mean_improvement) else f"{s.mean_improvement:+.4g}"
        lines.append(f"- {s.kind}: {s.count} tried, {s.valid} valid, mean change vs parent {mean}, "
                     f"improved {s.improved}/{s.count} ({100 * s.share_improved:.0f}%)")
    helped = [s.kind for s in stats if s.improved and s.mean_improvement > 0]
    never = [s.kind for s in stats if s.improved == 0]
    if helped:
        lines.append("Most promising: " + ", ".join(helped[:3]) + ".")
    if never:
        lines.append("Never improved: " + ", ".join(never) + ".")
    return "\n".join(lines)
