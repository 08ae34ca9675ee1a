"""Helpers on program source text: the evolve block, content hashes, normalised code.

A program file marks the part evolution may change with two comment lines,
``# EVOLVE-BLOCK-START`` and ``# EVOLVE-BLOCK-END`` (``discover.space``); everything outside
is fixed. These helpers are pure functions on text, shared by the mutators, the static
checks and the store.
"""

from __future__ import annotations

import ast
import hashlib
import threading

from discover.space import EVOLVE_END, EVOLVE_START


# Converting a parse into Python syntax-tree objects is not thread-safe in CPython 3.11: a
# thread switch inside it (a garbage-collector finalizer, say) lets another thread's parse
# corrupt a shared depth counter, and both fail with "SystemError: AST constructor recursion
# depth mismatch" (python/cpython#106905). Mutators may run on several threads.
_AST_LOCK = threading.RLock()


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` under a process-wide lock (see ``_AST_LOCK``); raises SyntaxError."""
    with _AST_LOCK:
        return ast.parse(source, filename)


def _marker_lines(lines: list[str], marker: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip().startswith(marker)]


def split_evolve_block(source: str) -> tuple[str, str, str]:
    """Splits ``source`` into ``(prefix, block, suffix)`` with ``prefix + block + suffix == source``.

    ``prefix`` ends with the start-marker line (newline included), ``suffix`` begins with the
    end-marker line. A source with neither marker is all block: ``("", source, "")``.

    Raises:
      ValueError: only one of the markers is present, one appears twice, or the end marker
        comes before the start marker.
    """
    lines = source.splitlines(keepends=True)
    starts, ends = _marker_lines(lines, EVOLVE_START), _marker_lines(lines, EVOLVE_END)
    if not starts and not ends:
        return "", source, ""
    if len(starts) != 1 or len(ends) != 1:
        raise ValueError(
            f"a program needs exactly one {EVOLVE_START!r} and one {EVOLVE_END!r} line, "
            f"found {len(starts)} and {len(ends)}.")
    (s,), (e,) = starts, ends
    if e < s:
        raise ValueError(f"{EVOLVE_END!r} (line {e + 1}) comes before {EVOLVE_START!r} (line {s + 1}).")
    prefix = "".join(lines[: s + 1])
    if not prefix.endswith(("\n", "\r")):  # the start marker is the last line, without newline
        prefix += "\n"
    return prefix, "".join(lines[s + 1: e]), "".join(lines[e:])


def join_evolve_block(prefix: str, block: str, suffix: str) -> str:
    """The inverse of ``split_evolve_block``; a block that does not end with a newline gets
    one, so the end marker stays on its own line."""
    if block and suffix and not block.endswith("\n"):
        block += "\n"
    return prefix + block + suffix


def _strip_trailing_whitespace(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")


def code_hash(source: str) -> str:
    """SHA-256 (hex) of ``source`` with trailing whitespace removed from every line and
    trailing blank lines dropped, so editor noise does not make a new program."""
    return hashlib.sha256(_strip_trailing_whitespace(source).encode("utf-8")).hexdigest()


class _DropDocstrings(ast.NodeTransformer):
    """Removes docstrings: they change no behaviour, so they should not make code distinct."""

    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def normalized_code(source: str) -> str:
    """The evolve block of ``source`` as ``ast.unparse`` writes it, without comments or
    docstrings: two programs that differ only in layout, comments or docstrings give the
    same text. A block that does not parse falls back to its text without trailing
    whitespace (it is still comparable, only less normalised)."""
    _, block, _ = split_evolve_block(source)
    try:
        tree = parse_python(block)
    except SyntaxError:
        return _strip_trailing_whitespace(block)
    return ast.unparse(_DropDocstrings().visit(tree))


def load_functions(source: str, names) -> tuple[dict | None, list[str]]:
    """Executes a candidate's ``source`` in a fresh namespace (compiled as "<candidate>", so
    the sandbox recognises its frames); returns (functions by name, missing names).

    The functions are None when a required one is missing. Exceptions raised while
    executing the module (syntax errors included) propagate.
    """
    namespace: dict = {"__name__": "candidate"}
    exec(compile(source, "<candidate>", "exec"), namespace)  # noqa: S102 - runs in the worker
    missing = [n for n in names if not callable(namespace.get(n))]
    if missing:
        return None, missing
    return {n: namespace[n] for n in names}, []
