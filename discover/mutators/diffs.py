"""Reading a model's answer and applying it to the evolve block of a program.

A model answers in one of two formats (``discover.mutators.prompts`` asks for them):

1. SEARCH/REPLACE blocks, each replacing an exact excerpt of the evolve block::

       <<<<<<< SEARCH
       return xp.maximum(cum_regret + inst_regret, 0.0), state
       =======
       return xp.maximum(0.9 * cum_regret + inst_regret, 0.0), state
       >>>>>>> REPLACE

2. a full rewrite of the evolve block in a fenced python code block.

Blocks apply in order. A SEARCH text is looked up in the evolve block exactly first, then
line by line ignoring indentation and runs of spaces (models often re-indent what they
copy); in the tolerant case the replacement is re-indented by the same offset. Everything
outside the evolve block is fixed: a SEARCH text that is found only outside it, or across
a marker, is an error. Every failure is a ``DiffError`` whose message is written to be sent
back to the model as is, so that it can repair its answer.

The block format is the one popularised by Aider's editing formats and used by
AlphaEvolve (Novikov et al., 2025, arXiv:2506.13131) and OpenEvolve.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

from discover.program import join_evolve_block, split_evolve_block
from discover.space import EVOLVE_END, EVOLVE_START

SEARCH_MARK = "<<<<<<< SEARCH"
DIVIDER = "======="
REPLACE_MARK = ">>>>>>> REPLACE"

# One block: a SEARCH line, the excerpt, a divider line, the replacement, a REPLACE line.
# Marker runs of 5-9 characters are accepted because models miscount them.
_BLOCK = re.compile(
    r"^[ \t]*<{5,9}[ \t]*SEARCH[^\n]*\n(?P<search>.*?)^[ \t]*={5,9}[ \t]*\n(?P<replace>.*?)^[ \t]*>{5,9}[ \t]*REPLACE[^\n]*$",
    re.MULTILINE | re.DOTALL)
_SEARCH_LINE = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
                    re.MULTILINE | re.DOTALL)
_IDEA = re.compile(r"^[ \t*#>-]*IDEA[ \t*]*:[ \t*]*(?P<idea>\S.*)$", re.MULTILINE | re.IGNORECASE)

DIFF, REWRITE = "diff", "rewrite"


class DiffError(ValueError):
    """An answer that cannot be applied; the message says why, for the model to repair."""


class NoCodeError(DiffError):
    """An answer with neither SEARCH/REPLACE blocks nor a fenced code block (prose only)."""


@dataclasses.dataclass(frozen=True)
class SearchReplace:
    """One edit: replace the excerpt ``search`` of the evolve block by ``replace``."""

    search: str
    replace: str


@dataclasses.dataclass(frozen=True)
class Answer:
    """A parsed model answer.

    Attributes:
      kind: ``"diff"`` (SEARCH/REPLACE blocks) or ``"rewrite"`` (a new evolve block).
      blocks: the edits, in order (empty for a rewrite).
      rewrite: the new evolve-block text (None for a diff).
      idea: the one-line description the model gave (``IDEA: ...``), or "".
    """

    kind: str
    blocks: tuple[SearchReplace, ...] = ()
    rewrite: str | None = None
    idea: str = ""


def parse_answer(text: str) -> Answer:
    """Reads SEARCH/REPLACE blocks, or else a fenced python block, from a model's answer.

    Raises:
      NoCodeError: the answer holds neither (prose only).
      DiffError: a SEARCH/REPLACE block is incomplete (e.g. its REPLACE line is missing).
    """
    idea_match = _IDEA.search(text)
    idea = idea_match.group("idea").strip().strip("*").strip() if idea_match else ""
    blocks = tuple(SearchReplace(m.group("search"), m.group("replace")) for m in _BLOCK.finditer(text))
    opened = len(_SEARCH_LINE.findall(text))
    if opened > len(blocks):
        raise DiffError(
            f"{opened - len(blocks)} of {opened} SEARCH/REPLACE blocks are incomplete: each needs a "
            f"'{SEARCH_MARK}' line, the exact lines to find, a '{DIVIDER}' line, the new lines "
            f"and a '{REPLACE_MARK}' line.")
    if blocks:
        return Answer(kind=DIFF, blocks=blocks, idea=idea)
    fences = [m for m in _FENCE.finditer(text) if m.group("lang").lower() in ("", "python", "py", "python3")]
    if not fences:
        raise NoCodeError("the answer contains neither SEARCH/REPLACE blocks nor a fenced python code block.")
    # Prefer a fence that carries the evolve markers (the model rewrote the whole file),
    # else the longest one (short fences are usually quoted fragments).
    marked = [m for m in fences if EVOLVE_START in m.group("body") or EVOLVE_END in m.group("body")]
    chosen = marked[-1] if marked else max(fences, key=lambda m: len(m.group("body")))
    return Answer(kind=REWRITE, rewrite=_block_of_fence(chosen.group("body")), idea=idea)


def _block_of_fence(body: str) -> str:
    """The evolve-block text inside a fenced rewrite: between the markers where both are
    present, otherwise the fence without any stray marker line."""
    try:
        prefix, block, suffix = split_evolve_block(body)
    except ValueError:
        prefix, block, suffix = "", body, ""
    if not prefix and not suffix:
        block = "".join(line for line in body.splitlines(keepends=True)
                        if not line.strip().startswith((EVOLVE_START, EVOLVE_END)))
    return block


def apply_answer(source: str, answer: Answer) -> str:
    """The program ``source`` with ``answer`` applied to its evolve block.

    Raises:
      DiffError: an edit does not apply, touches code outside the evolve block, leaves the
        program unchanged, or the result does not parse as Python.
    """
    if answer.kind == DIFF:
        new = apply_search_replace(source, answer.blocks)
    elif answer.kind == REWRITE:
        new = apply_rewrite(source, answer.rewrite or "")
    else:
        raise ValueError(f"unknown answer kind {answer.kind!r}; expected 'diff' or 'rewrite'.")
    if new == source:
        raise DiffError("the edit leaves the program unchanged; propose a change to the evolve block.")
    check_syntax(new)
    return new


def _split(source: str) -> tuple[str, str, str]:
    prefix, block, suffix = split_evolve_block(source)
    if not prefix and not suffix:
        raise ValueError(f"the program has no evolve block ({EVOLVE_START!r} ... {EVOLVE_END!r}).")
    return prefix, block, suffix


def apply_rewrite(source: str, block: str) -> str:
    """Replaces the whole evolve block of ``source`` by ``block``.

    Raises:
      DiffError: ``block`` is empty.
    """
    prefix, _, suffix = _split(source)
    if not block.strip():
        raise DiffError("the rewritten evolve block is empty.")
    return join_evolve_block(prefix, block, suffix)


def apply_search_replace(source: str, blocks: tuple[SearchReplace, ...] | list[SearchReplace]) -> str:
    """Applies SEARCH/REPLACE ``blocks`` in order to the evolve block of ``source``.

    Raises:
      DiffError: a block has an empty SEARCH part, matches nothing in the evolve block,
        matches several places, or matches only code outside the evolve block.
    """
    prefix, block, suffix = _split(source)
    for number, edit in enumerate(blocks, start=1):
        block = _apply_one(block, prefix + suffix, edit, number)
    return join_evolve_block(prefix, block, suffix)


def _apply_one(block: str, outside: str, edit: SearchReplace, number: int) -> str:
    where = f"SEARCH/REPLACE block {number}"
    if not edit.search.strip():
        raise DiffError(f"{where} has an empty SEARCH part; to replace the whole evolve block, "
                        "answer with a fenced python code block instead.")
    if EVOLVE_START in edit.search or EVOLVE_END in edit.search:
        raise DiffError(f"{where} includes an evolve-block marker; only code between "
                        f"{EVOLVE_START!r} and {EVOLVE_END!r} may change.")
    found = _line_starts_of(block, edit.search)
    count = len(found)
    if count == 1:
        return block[:found[0]] + edit.replace + block[found[0] + len(edit.search):]
    if count > 1:
        raise DiffError(f"{where} matches {count} places in the evolve block; "
                        "include more surrounding lines so that it matches exactly one.")
    starts = _tolerant_matches(block.splitlines(keepends=True), edit.search)
    if len(starts) == 1:
        return _replace_lines(block, starts[0], edit)
    if len(starts) > 1:
        raise DiffError(f"{where} matches {len(starts)} places in the evolve block; "
                        "include more surrounding lines so that it matches exactly one.")
    if edit.search in outside or _tolerant_matches(outside.splitlines(keepends=True), edit.search):
        raise DiffError(f"{where} matches code outside the evolve block, which is fixed; "
                        f"edit only the lines between {EVOLVE_START!r} and {EVOLVE_END!r}.")
    raise DiffError(f"{where} does not match the evolve block: {_closest_hint(block, edit.search)}"
                    "Copy the SEARCH lines exactly from the current program.")


def _line_starts_of(text: str, excerpt: str) -> list[int]:
    """Offsets where ``excerpt`` occurs in ``text`` starting at the beginning of a line
    (whole-line matches only: a fragment of a line never matches)."""
    out, i = [], text.find(excerpt)
    while i != -1:
        if i == 0 or text[i - 1] == "\n":
            out.append(i)
        i = text.find(excerpt, i + 1)
    return out


def _norm(line: str) -> str:
    return " ".join(line.split())


def _trim_blank(lines: list[str]) -> list[str]:
    lo, hi = 0, len(lines)
    while lo < hi and not lines[lo].strip():
        lo += 1
    while hi > lo and not lines[hi - 1].strip():
        hi -= 1
    return lines[lo:hi]


def _tolerant_matches(lines: list[str], search: str) -> list[int]:
    """Start indices where the non-blank-trimmed ``search`` lines equal ``lines`` up to
    indentation and runs of whitespace."""
    want = [_norm(s) for s in _trim_blank(search.splitlines())]
    if not want:
        return []
    have = [_norm(s) for s in lines]
    return [i for i in range(len(have) - len(want) + 1) if have[i:i + len(want)] == want]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _replace_lines(block: str, start: int, edit: SearchReplace) -> str:
    """Replaces the tolerant match at line ``start``, shifting the replacement's indentation
    by the offset between the block's matched lines and the SEARCH lines."""
    lines = block.splitlines(keepends=True)
    search = _trim_blank(edit.search.splitlines())
    shift = _indent(lines[start]) - _indent(search[0])
    out = []
    for line in edit.replace.splitlines():
        if line.strip():
            line = line.expandtabs(4)
            line = " " * shift + line if shift >= 0 else line[min(-shift, _indent(line)):]
        out.append(line + "\n")
    return "".join(lines[:start] + out + lines[start + len(search):])


def _closest_hint(block: str, search: str) -> str:
    """A hint naming the block line closest to the first SEARCH line that has no match."""
    block_lines = [line.strip() for line in block.splitlines() if line.strip()]
    have = {_norm(line) for line in block_lines}
    for line in _trim_blank(search.splitlines()):
        if _norm(line) in have:
            continue
        close = difflib.get_close_matches(line.strip(), block_lines, n=1, cutoff=0.5)
        hint = f"the line {line.strip()!r} is not in it"
        return hint + (f" (closest: {close[0]!r}). " if close else ". ")
    return "its lines are in the block but not in this order or not consecutive. "


def check_syntax(source: str) -> None:
    """Raises ``DiffError`` naming the line when ``source`` does not compile as Python.

    Compiles to bytecode (nothing runs) rather than calling ``ast.parse``: converting a
    syntax tree to Python objects is not thread-safe in CPython 3.11 (gh-106905, "AST
    constructor recursion depth mismatch"), and proposals are made from several threads.
    """
    try:
        compile(source, "<candidate>", "exec", dont_inherit=True)
    except SyntaxError as e:
        raise DiffError(f"the edited program does not parse: {e.msg} (line {e.lineno}).") from None
    except ValueError as e:  # e.g. a null byte
        raise DiffError(f"the edited program does not parse: {e}.") from None
