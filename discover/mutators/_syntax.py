"""Source surgery for syntax-tree mutators: parse an evolve block into top-level
statements that remember their text, write a changed block back, and splice whole
functions from another program (a mechanism, a crossover partner) into it.

Statements carry their original text (``_TEXT``), the comment and blank lines above them
(``_GAP``) and their tree at parse time (``_DUMP``); a statement whose tree is unchanged is
written back with its own text, comments included, so a child's diff shows only its edit.
Attributes set on a node survive ``copy.deepcopy``, so copies keep them too.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
import textwrap
from typing import Mapping, Sequence

from discover.knobs import call_name  # noqa: F401  (re-exported: the mutators use it)
from discover.program import join_evolve_block, parse_python, split_evolve_block

_TEXT, _GAP, _DUMP = "_discover_text", "_discover_gap", "_discover_dump"


# ----------------------------------------------------------------------------------------
# Parsing and rendering.

def parse_units(text: str) -> tuple[list[ast.stmt], tuple[str, ...]]:
    """Top-level statements of ``text`` (dedented), each annotated with its text, and the
    lines after the last statement. Raises SyntaxError."""
    text = textwrap.dedent(text)
    module = parse_python(text)
    lines = text.splitlines(keepends=True)
    previous_end = 0
    for stmt in module.body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        setattr(stmt, _GAP, tuple(lines[previous_end:start - 1]))
        setattr(stmt, _TEXT, tuple(lines[start - 1:stmt.end_lineno]))
        setattr(stmt, _DUMP, ast.dump(stmt))
        previous_end = stmt.end_lineno
    return module.body, tuple(lines[previous_end:])


@dataclasses.dataclass(frozen=True)
class Program:
    """A program split around its evolve block.

    Attributes:
      prefix, suffix: the fixed text around the block (markers included).
      body: the block's top-level statements (never modified: edits work on copies).
      tail: lines after the block's last statement.
      outside: the prefix and suffix parsed (names the block may rely on).
    """

    prefix: str
    suffix: str
    body: tuple[ast.stmt, ...]
    tail: tuple[str, ...]
    outside: ast.Module


def parse_program(source: str) -> Program:
    """Raises ValueError when the markers are malformed or the block does not parse."""
    prefix, block, suffix = split_evolve_block(source)
    try:
        body, tail = parse_units(block)
        outside = parse_python(prefix + "\n" + suffix)
    except SyntaxError as e:
        raise ValueError(f"the program's evolve block does not parse: {e.msg} (line {e.lineno}).") from e
    return Program(prefix, suffix, tuple(body), tail, outside)


def copy_body(program: Program) -> list[ast.stmt]:
    return [copy.deepcopy(s) for s in program.body]


def is_def(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))


def _ends_with_newline(lines: Sequence[str]) -> list[str]:
    lines = list(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


_PARENTHESISED_RETURN = re.compile(r"^(\s*)return \((.*)\)$")


def unparse(stmt: ast.stmt) -> str:
    """``ast.unparse``, without the parentheses it puts around returned tuples
    (``return (policy, state)`` → ``return policy, state``) where that parses the same."""
    text = ast.unparse(stmt)
    reference = ast.dump(parse_python(text))
    lines = text.split("\n")
    for i, line in enumerate(lines):
        match = _PARENTHESISED_RETURN.match(line)
        if match:
            candidate = lines[:i] + [f"{match[1]}return {match[2]}"] + lines[i + 1:]
            try:
                if ast.dump(parse_python("\n".join(candidate))) == reference:
                    lines = candidate
            except SyntaxError:
                pass
    return "\n".join(lines)


def render(body: Sequence[ast.stmt], tail: Sequence[str] = ()) -> str:
    """Block text for ``body``: unchanged statements keep their text and the comments above
    them; changed or new ones are written by ``unparse``; PEP 8 blank lines between
    definitions."""
    out: list[str] = []
    for k, stmt in enumerate(body):
        gap = list(getattr(stmt, _GAP, ()))
        blank = next((i for i, line in enumerate(gap) if line.strip()), len(gap))
        if k == 0:
            gap = gap[blank:]
        else:
            wanted = 2 if is_def(stmt) or is_def(body[k - 1]) else 0
            gap = ["\n"] * min(2, max(blank, wanted)) + gap[blank:]
        if getattr(stmt, _DUMP, None) == ast.dump(stmt):
            text = list(getattr(stmt, _TEXT))
        else:
            text = unparse(stmt).splitlines(keepends=True)
        out += _ends_with_newline(gap) + _ends_with_newline(text)
    return "".join(out + list(tail))


def child_source(program: Program, body: Sequence[ast.stmt]) -> str:
    """The whole program with ``body`` as its evolve block; prefix and suffix unchanged."""
    return join_evolve_block(program.prefix, render(body, program.tail), program.suffix)


# ----------------------------------------------------------------------------------------
# Small tree utilities.

def annotate_parents(root: ast.AST) -> None:
    """Sets ``_parent`` and ``_field`` on every node under ``root`` (on edit copies only)."""
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            for child in (value if isinstance(value, list) else [value]):
                if isinstance(child, ast.AST):
                    child._parent, child._field = parent, field


def replace(node: ast.AST, new: ast.AST) -> None:
    """Puts ``new`` where ``node`` is in its annotated parent."""
    parent, field = node._parent, node._field
    value = getattr(parent, field)
    if isinstance(value, list):
        value[next(i for i, v in enumerate(value) if v is node)] = new
    else:
        setattr(parent, field, new)
    new._parent, new._field = parent, field


def ancestors(node: ast.AST):
    """(child, parent) pairs from ``node`` up to the root of an annotated tree."""
    while hasattr(node, "_parent"):
        yield node, node._parent
        node = node._parent


def is_number(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool))


def signed_value(node: ast.AST) -> float | int | None:
    """The value of a numeric literal, possibly negated (``-1.5`` parses as a unary minus)."""
    if is_number(node):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and is_number(node.operand):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return None


def number_node(value: float | int) -> ast.expr:
    """A literal for ``value``; a negative value becomes a unary minus, because a negative
    ``Constant`` is unparsed without parentheses (``-0.3 ** 2`` means ``-(0.3 ** 2)``)."""
    if value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


def top_level_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    return []


def loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def stored_names(nodes: Sequence[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def bindings(body: Sequence[ast.stmt]) -> dict[str, int]:
    """Index of the statement that last binds each top-level name."""
    return {name: i for i, stmt in enumerate(body) for name in top_level_names(stmt)}


def reachable(body: Sequence[ast.stmt], roots: Sequence[str]) -> set[int]:
    """Indices of the statements that define ``roots`` and what they use, transitively."""
    bound = bindings(body)
    todo = [bound[r] for r in roots if r in bound]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo += [bound[n] for n in loaded_names(body[i]) if n in bound]
    return seen


def params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]


def same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


class Renamer(ast.NodeTransformer):
    """Renames names, parameters and function names consistently."""

    def __init__(self, mapping: Mapping[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... whichever is first not in ``taken``."""
    if base not in taken:
        return base
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


# ----------------------------------------------------------------------------------------
# Splicing functions from another program.

def _docstring_and_rest(fn: ast.FunctionDef) -> tuple[list[ast.stmt], list[ast.stmt]]:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[:1], body[1:]
    return [], body


def _straight_line(fn: ast.FunctionDef) -> tuple[list[ast.stmt], ast.Dict] | None:
    """(assignments, returned dict) when ``fn`` is assignments followed by ``return {...}``."""
    _, body = _docstring_and_rest(fn)
    if not body or not (isinstance(body[-1], ast.Return) and isinstance(body[-1].value, ast.Dict)):
        return None
    if not all(isinstance(s, (ast.Assign, ast.AnnAssign)) for s in body[:-1]):
        return None
    return body[:-1], body[-1].value


def dict_keys(d: ast.Dict | None) -> list[str]:
    if d is None:
        return []
    return [k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def returned_state_keys(fn: ast.FunctionDef) -> list[str]:
    found = _straight_line(fn)
    return dict_keys(found[1]) if found else []


def merge_state_init(ours: ast.FunctionDef, theirs: ast.FunctionDef,
                     taken: set[str]) -> tuple[list[ast.stmt], list[str]]:
    """One state initialiser creating the keys of both: ``ours`` keeps its keys (the
    parent's other rules may read them), ``theirs`` adds its own (the spliced rules need
    them) and wins a clash.

    Where both are assignments followed by ``return {...}``, the bodies are concatenated
    (``theirs``'s parameters renamed to ``ours``'s, clashing locals renamed) and the dicts
    merged. Otherwise each becomes a helper and the initialiser returns
    ``{**ours_part(...), **theirs_part(...)}``.

    Returns the statements replacing ``ours`` and the keys ``theirs`` adds.
    """
    theirs = copy.deepcopy(theirs)
    Renamer(dict(zip(params(theirs), params(ours)))).visit(theirs)
    mine, other = _straight_line(ours), _straight_line(theirs)
    added = [k for k in returned_state_keys(theirs) if k not in returned_state_keys(ours)]
    if mine is not None and other is not None:
        our_names = stored_names(mine[0]) | loaded_names(ours) | set(params(ours))
        clash = sorted(stored_names(other[0]) & our_names)
        if clash:
            mapping = {n: fresh_name(n, our_names | taken | loaded_names(theirs)) for n in clash}
            Renamer(mapping).visit(theirs)
            other = _straight_line(theirs)
        their_keys = set(dict_keys(other[1]))
        keep = [(k, v) for k, v in zip(mine[1].keys, mine[1].values)
                if not (isinstance(k, ast.Constant) and k.value in their_keys)]
        merged = copy.deepcopy(ours)
        docstring, _ = _docstring_and_rest(merged)
        merged_dict = ast.Dict([k for k, _ in keep] + list(other[1].keys),
                               [v for _, v in keep] + list(other[1].values))
        merged.body = docstring + copy.deepcopy(mine[0]) + list(other[0]) + [ast.Return(merged_dict)]
        return [merged], added
    names = []
    for base in (f"_{ours.name}_kept", f"_{ours.name}_added"):
        names.append(fresh_name(base, taken))
        taken = taken | {names[-1]}
    parts = []
    for fn, name in zip((copy.deepcopy(ours), theirs), names):
        fn.name = name
        for attr in (_TEXT, _GAP, _DUMP):
            if hasattr(fn, attr):
                delattr(fn, attr)
        parts.append(fn)
    combined = copy.deepcopy(ours)
    args = [ast.Name(p, ast.Load()) for p in params(ours)]
    combined.body = [ast.Return(ast.Dict(
        [None, None], [ast.Call(ast.Name(n, ast.Load()), list(args), []) for n in names]))]
    return parts + [combined], added


def drop_unused(body: list[ast.stmt], keep: set[str], outside: ast.Module) -> list[ast.stmt]:
    """Removes top-level functions and call-free constants nothing uses any more (after a
    splice replaced the only function that used them), so later edits do not waste time
    on dead code."""
    outside_uses = loaded_names(outside)
    changed = True
    while changed:
        changed = False
        for i, stmt in enumerate(body):
            names = top_level_names(stmt)
            removable = (isinstance(stmt, ast.FunctionDef) or
                         (isinstance(stmt, ast.Assign) and not any(isinstance(n, ast.Call) for n in ast.walk(stmt))))
            if not removable or not names or set(names) & keep:
                continue
            used = outside_uses.union(*(loaded_names(s) for j, s in enumerate(body) if j != i))
            if not set(names) & used:
                del body[i]
                changed = True
                break
    return body


@dataclasses.dataclass(frozen=True)
class Splice:
    """The result of ``splice``: the new block body, the functions replaced and the
    state keys added."""

    body: list[ast.stmt]
    replaced: list[str]
    state_keys: list[str]


def splice(program: Program, units: Sequence[ast.stmt], replace_names: Sequence[str],
           keep: Sequence[str], state_init: str) -> Splice | None:
    """The program's block with the functions ``replace_names`` taken from ``units``.

    Constants, helpers and imports in ``units`` come along: an identical definition already
    in the program is reused, one that clashes with a different definition of the same name
    is renamed (the program's other functions may rely on the original). A ``state_init``
    function in ``units`` is merged into the program's (``merge_state_init``). Top-level
    definitions nothing uses afterwards are dropped, except ``keep``.

    Returns None when no function changes and no state key is added.
    """
    body = copy_body(program)
    units = [copy.deepcopy(u) for u in units]
    existing = {n: s for s in (*program.outside.body, *body) for n in top_level_names(s)}
    taken = set(existing) | set(bindings(units))

    def is_support(unit: ast.stmt) -> bool:
        names = top_level_names(unit)
        return (bool(names) and not isinstance(unit, (ast.Import, ast.ImportFrom))
                and not any(n in replace_names or n == state_init for n in names))

    renames: dict[str, str] = {}
    for unit in filter(is_support, units):
        for n in top_level_names(unit):
            if n in existing and not same(existing[n], unit):
                renames[n] = fresh_name(n, taken | set(renames.values()))
    if renames:
        units = [Renamer(renames).visit(u) for u in units]
    support = [u for u in units if is_support(u) and not all(
        n in existing and same(existing[n], u) for n in top_level_names(u))]

    replaced = []
    for unit in units:
        if not (isinstance(unit, ast.FunctionDef) and unit.name in replace_names):
            continue
        index = bindings(body).get(unit.name)
        if index is None:
            body.append(unit)
        elif not same(body[index], unit):
            body[index] = unit
        else:
            continue
        replaced.append(unit.name)

    added: list[str] = []
    their_init = next((u for u in units if isinstance(u, ast.FunctionDef) and u.name == state_init), None)
    if their_init is not None:
        index = bindings(body).get(state_init)
        if index is None:
            body.insert(0, their_init)
            added = returned_state_keys(their_init)
        else:
            merged, added = merge_state_init(body[index], their_init, taken)
            if not (len(merged) == 1 and same(merged[0], body[index])):
                body[index:index + 1] = merged
    if not replaced and not added:
        return None

    # Imports first; constants before the first definition; helpers before their first user.
    present = {ast.dump(s) for s in (*body, *program.outside.body) if isinstance(s, (ast.Import, ast.ImportFrom))}
    body[0:0] = [u for u in units if isinstance(u, (ast.Import, ast.ImportFrom)) and ast.dump(u) not in present]
    for unit in support:
        first_def = next((i for i, s in enumerate(body) if is_def(s)), len(body))
        if isinstance(unit, ast.FunctionDef):
            users = [i for i, s in enumerate(body) if unit.name in loaded_names(s)]
            body.insert(min(users) if users else first_def, unit)
        else:
            body.insert(first_def, unit)
    return Splice(drop_unused(body, set(keep), program.outside), replaced, added)
