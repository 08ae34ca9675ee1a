"""The prompts the LLM mutator sends: mutation, repair, reflection and summary.

Each builder is a pure function from records to a list of chat messages
(``[{"role": "system" | "user" | "assistant", "content": str}, ...]``), so a prompt can be
read, tested and recorded without a model.

The mutation prompt follows the shape of AlphaEvolve (Novikov et al., 2025,
arXiv:2506.13131): the problem's contract, the parent program with its per-task results,
a few other good programs as inspiration, what was learnt so far (reflections, in the
spirit of Reflexion, Shinn et al., 2023, arXiv:2303.11366), and a strict output format —
SEARCH/REPLACE blocks inside the evolve block, or a full rewrite of the block.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

from discover.mutators.diffs import DIVIDER, REPLACE_MARK, SEARCH_MARK
from discover.program import split_evolve_block
from discover.space import EVOLVE_END, EVOLVE_START

Message = dict[str, str]

SYSTEM = (
    "You are an expert researcher in reinforcement learning and game theory who improves "
    "algorithms by editing their source code. You make one focused, well-motivated change at a "
    "time, keep the code correct and numerically safe, and follow the requested answer format "
    "exactly.")

FORMAT = f"""\
Answer in this form:
1. One line `IDEA: <what you change and why, in one sentence>`.
2. Then the change, in exactly one of two formats:
   (a) one or more SEARCH/REPLACE blocks; each SEARCH part is copied exactly (same lines,
       same indentation) from the evolve block of the current program and must match one place:
{SEARCH_MARK}
<lines copied from the current evolve block>
{DIVIDER}
<the new lines>
{REPLACE_MARK}
   (b) or the whole new evolve block (everything between `{EVOLVE_START}` and
       `{EVOLVE_END}`) in a single ```python fenced code block.
Only the code between `{EVOLVE_START}` and `{EVOLVE_END}` may change; everything outside it
is fixed. Keep every required function with its name and parameters."""


def format_score(score: float | None) -> str:
    """A score for a prompt: 4 significant digits, or why there is none."""
    if score is None:
        return "not evaluated"
    if not math.isfinite(score):
        return "failed (invalid program)"
    return f"{score:.4g}"


def _value(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.4g}"


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """Per-task results as bullet lines, e.g. ``- leduc_poker: score=0.31, final_exploitability=0.0002571``.

    ``metrics`` maps a task to its metrics mapping (``Parent.metrics``); a flat mapping of
    metric names to values is shown as one line per metric.
    """
    if not metrics:
        return "- (no per-task results)"
    lines = []
    for task, m in metrics.items():
        if isinstance(m, Mapping):
            body = ", ".join(f"{k}={_value(v)}" for k, v in m.items()) or "(no metrics)"
            lines.append(f"- {task}: {body}")
        else:
            lines.append(f"- {task}: {_value(m)}")
    return "\n".join(lines)


def signatures(source: str, names: Iterable[str]) -> list[str]:
    """The ``def`` lines of the functions ``names`` as written at top level of ``source``
    (those it defines), with whitespace collapsed: ``def f(a, b=1)``.

    Reads the text rather than a syntax tree: ``ast.parse`` is not thread-safe in CPython
    3.11 (gh-106905), and prompts are built from several threads.
    """
    out = []
    for name in names:
        m = re.search(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", source, re.MULTILINE)
        if not m:
            continue
        depth, i = 1, m.end()
        while i < len(source) and depth:
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        if depth == 0:
            out.append(f"def {name}({' '.join(source[m.end():i - 1].split())})")
    return out


def evolve_block(source: str) -> str:
    """The evolve block of ``source`` (the whole text where it has no markers)."""
    try:
        return split_evolve_block(source)[1]
    except ValueError:
        return source


def _fence(code: str) -> str:
    return "```python\n" + code.rstrip("\n") + "\n```"


def mutation_messages(context, max_inspirations: int = 4) -> list[Message]:
    """The prompt asking for one child of ``context.parent``.

    Args:
      context: a ``MutationContext``: its space (``name``, ``doc``, ``required_functions``),
        parent (``id``, ``source``, ``score``, ``metrics``), inspirations, reflections.
      max_inspirations: how many inspirations to show at most (the first ones given).
    """
    space, parent = context.space, context.parent
    parts = [f"# Improve a program of the search space `{space.name}` (higher score is better)",
             "## The contract every program must meet", space.doc.strip() or "(no description)"]
    required = tuple(space.required_functions)
    if required:
        declared = getattr(space, "signatures", None) or {}
        sigs = ([declared[n] for n in required if n in declared] if declared
                else signatures(parent.source, required))
        parts.append("Required functions: " + ", ".join(required) + "."
                     + ("\nTheir signatures:\n" + "\n".join(f"    {s}" for s in sigs) if sigs else ""))
    parts += [f"## Current program (id {parent.id}, score {format_score(parent.score)})",
              _fence(parent.source),
              "Its results per task:\n" + format_metrics(parent.metrics)]
    inspirations = list(context.inspirations)[:max_inspirations]
    if inspirations:
        parts.append("## Other programs for inspiration (their evolve blocks)")
        for k, p in enumerate(inspirations, start=1):
            parts.append(f"### Inspiration {k} (id {p.id}, score {format_score(p.score)})\n"
                         + _fence(evolve_block(p.source))
                         + "\nResults per task:\n" + format_metrics(p.metrics))
    reflections = [r.strip() for r in context.reflections if r and r.strip()]
    if reflections:
        parts.append("## What earlier generations learnt\n" + "\n\n".join(reflections))
    parts.append("## Your task\nPropose one change to the evolve block of the current program that "
                 "should raise its score on every task. " + FORMAT)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def repair_messages(messages: Sequence[Message], answer: str, error: str) -> list[Message]:
    """The conversation extended with the model's answer and why it could not be applied."""
    return list(messages) + [
        {"role": "assistant", "content": answer},
        {"role": "user", "content": f"Your answer could not be applied: {error}\n"
                                    "Answer again with a corrected change. " + FORMAT},
    ]


def _item_text(item: Any, score: float | None) -> str:
    edit = getattr(item, "edit", None) or (getattr(item, "meta", None) or {}).get("edit")
    error = getattr(item, "error", None)
    head = f"### Program {getattr(item, 'id', '?')}: score {format_score(score)}"
    lines = [head]
    if edit:
        lines.append(f"Edit that made it: {edit}")
    if error:
        lines.append(f"Error: {error}")
    lines.append("Results per task:\n" + format_metrics(getattr(item, "metrics", {}) or {}))
    source = getattr(item, "source", None)
    if source:
        lines.append(_fence(evolve_block(source)))
    return "\n".join(lines)


def _rank_key(pair: tuple[Any, float | None]) -> float:
    s = pair[1]
    return s if s is not None and math.isfinite(s) else -math.inf


def reflection_messages(space_name: str, batch: Sequence[tuple[Any, float | None]],
                        show: int = 2) -> list[Message]:
    """The prompt for a short note on one evaluated batch: its ``show`` best and ``show``
    worst programs (each a ``Parent``-like record with ``id``, ``source``, ``metrics`` and
    optionally ``edit``/``error``, paired with its score)."""
    ranked = sorted(batch, key=_rank_key, reverse=True)
    best = ranked[:show]
    worst = [p for p in ranked[::-1][:show] if all(p is not b for b in best)]
    parts = [f"A batch of {len(batch)} programs of the search space `{space_name}` was just "
             "evaluated (higher score is better).", "## Best"]
    parts += [_item_text(item, score) for item, score in best]
    if worst:
        parts.append("## Worst")
        parts += [_item_text(item, score) for item, score in worst]
    parts.append("## Your task\nWrite a short note (at most five bullet points, no code) for the "
                 "next generation: which changes raised the score, which lowered it or broke the "
                 "program, and what looks worth trying next.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def summary_messages(space_name: str, notes: Sequence[str]) -> list[Message]:
    """The prompt condensing many short notes into one long-term summary."""
    body = "\n\n".join(f"### Note {k}\n{n.strip()}" for k, n in enumerate(notes, start=1) if n.strip())
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content":
             f"These are notes written after successive batches of programs of the search space "
             f"`{space_name}` were evaluated.\n\n{body}\n\n## Your task\nCondense them into one "
             "long-term summary (at most ten bullet points, no code): the changes that reliably "
             "helped, those that hurt or broke programs, and open directions. Where notes "
             "disagree, trust the later ones."}]


def render(messages: Sequence[Message]) -> str:
    """A conversation as one text, as the store records a prompt."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
