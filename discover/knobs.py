"""Which number literal in a program is a knob: the one rule the offline mutator (which
perturbs knobs) and ``discover tune`` (which tunes them) share.

A literal is *structural*, never a knob, where numbers are shapes, axes, indices or counts:

- inside a subscript's index (``x[:, 0]``, ``state["n"][1]``);
- as the value of a keyword that names a shape, axis, count or type (``axis=1``,
  ``keepdims=True``, ``dtype=...``, ``STRUCTURAL_KEYWORDS``);
- an integer among the arguments of a call that builds or rearranges arrays or counts
  (``range(3)``, ``xp.zeros((n, 2))``, ``reshape(-1, 4)``, ``SHAPE_CALLS``); a float there
  (the fill value of ``xp.full(shape, 0.5)``) is a knob;
- the axis of a reduction: the second positional argument of a module function
  (``xp.sum(x, 1)``) or the first of a method (``x.sum(1)``), ``AXIS_CALLS``.

Everything else is a knob, subject to each caller's own taste (the mutator skips ±1 most
of the time; tune skips the algebra's identities 0 and ±1 written inline).

``tunable_constants(source)`` lists a program's knobs with their exact positions,
``search_range`` gives each a range to search, and ``substitute`` writes new values in
their place and nothing else (``discover tune``).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import tokenize
from typing import Any, Callable, Mapping, Sequence

from discover.program import parse_python, split_evolve_block

INT, FLOAT = "int", "float"

STRUCTURAL_KEYWORDS = frozenset({
    "axis", "axes", "keepdims", "shape", "newshape", "size", "ndim", "ndmin", "dim", "dims", "dtype",
    "num", "k", "n", "ord", "order", "decimals", "repeats", "reps", "indices", "seed", "key", "shift",
})
SHAPE_CALLS = frozenset({
    "range", "arange", "zeros", "ones", "empty", "full", "eye", "identity", "reshape", "broadcast_to",
    "tile", "repeat", "expand_dims", "squeeze", "transpose", "swapaxes", "moveaxis", "take",
    "take_along_axis", "roll", "split", "concatenate", "stack", "linspace", "tril", "triu", "diag",
    "round", "PRNGKey", "fold_in", "enumerate", "zip", "islice", "pad", "astype", "len",
})
AXIS_CALLS = frozenset({
    "sum", "mean", "max", "min", "amax", "amin", "prod", "argmax", "argmin", "cumsum",
    "cumprod", "std", "var", "any", "all", "norm", "logsumexp", "softmax", "sort", "argsort",
    "median", "nansum", "nanmean", "average", "nanmax", "nanmin",
})
MODULE_NAMES = frozenset({"xp", "np", "jnp", "numpy", "math", "jax", "lax"})


def call_name(call: ast.Call) -> str | None:
    """``f`` for ``f(...)`` and ``xp.f(...)``; None for anything else."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_module_function(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Name) or (isinstance(f, ast.Attribute) and isinstance(f.value, (ast.Name, ast.Attribute))
                                       and ast.unparse(f.value).split(".")[0] in MODULE_NAMES)


def is_structural(node: ast.AST, parent_of: Callable[[ast.AST], ast.AST | None], is_int: bool | None = None) -> bool:
    """Whether the number literal ``node`` (a constant, or its negation) sits where numbers
    are shapes, axes, indices or counts (module docstring).

    Args:
      parent_of: the syntax tree's parent of a node (None at the top).
      is_int: whether the literal is an integer (default: read off ``node``).
    """
    if is_int is None:
        inner = node.operand if isinstance(node, ast.UnaryOp) else node
        is_int = isinstance(getattr(inner, "value", None), int) and not isinstance(inner.value, bool)
    child, parent = node, parent_of(node)
    while parent is not None:
        if isinstance(parent, ast.Subscript) and child is parent.slice:
            return True
        if isinstance(parent, ast.keyword) and parent.arg in STRUCTURAL_KEYWORDS:
            return True
        if isinstance(parent, ast.Call) and child is not parent.func:
            name = call_name(parent)
            if is_int and name in SHAPE_CALLS:
                return True
            if name in AXIS_CALLS and child in parent.args:
                if parent.args.index(child) >= (1 if _is_module_function(parent) else 0):
                    return True
        if isinstance(parent, (ast.stmt, ast.Lambda)):
            return False
        child, parent = parent, parent_of(parent)
    return False


# Inline values that are the algebra's identities and signs (x + 1.0, max(x, 0.0), -1.0 * x,
# the uniform fallback 1.0): changing them changes the formula, not a setting of it.
NEUTRAL_VALUES = frozenset({0.0, 1.0, -1.0})


# ----------------------------------------------------------------------------- constants
@dataclasses.dataclass(frozen=True)
class Constant:
    """One tunable numeric literal of a program.

    Attributes:
      index: its position among the program's tunable constants (source order).
      value: its value, the unary minus included (``BETA = -0.1`` gives -0.1).
      line: 1-based line of its first character in the whole source.
      col: 0-based character column of its first character (the minus, if any).
      text: the literal exactly as written, e.g. ``"1.5"``, ``"-0.1"``, ``"1e-6"``.
      kind: ``"int"`` or ``"float"`` (a float literal stays a float when substituted).
      name: what it is bound to: a variable (``ALPHA``), an element of a named tuple
        (``TRAIN_BLEND[1]``), a parameter default or keyword argument (``eps``), a dict key;
        for an inline literal, the enclosing function and line (``update_regret:44``).
      bound: True when the literal is bound to a name (see ``tunable_constants``).
    """

    index: int
    value: int | float
    line: int
    col: int
    text: str
    kind: str
    name: str
    bound: bool

    @property
    def param(self) -> str:
        """Its parameter name in the Optuna study, e.g. ``c0:ALPHA``: unique and stable for
        a given source."""
        return f"c{self.index}:{self.name}"


def _char_col(line_text: str, byte_col: int) -> int:
    # ast columns are UTF-8 byte offsets; a "ε" earlier on the line would shift them.
    return len(line_text.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _number_tokens(source: str) -> set[tuple[int, int]]:
    """(line, character column) of every NUMBER token: the literals the source spells out,
    as opposed to numbers ast folds or invents."""
    out = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NUMBER:
            out.add(tok.start)
    return out


def _parent_map(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_structural(node: ast.AST, is_int: bool, parents: Mapping[ast.AST, ast.AST]) -> bool:
    """Where a number is a shape, index, axis or count (``discover.knobs``, the rule the
    offline mutator uses too)."""
    return is_structural(node, parents.get, is_int)


def _defaults(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> dict[ast.AST, str]:
    a = fn.args
    positional = a.posonlyargs + a.args
    out = {d: arg.arg for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults)}
    out.update({d: arg.arg for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
    return out


def _binding(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> str | None:
    """The name ``node`` is bound to, or None for an inline literal."""
    parent = parents.get(node)
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        if isinstance(targets[0], ast.Name):
            return targets[0].id
    if isinstance(parent, (ast.Tuple, ast.List)):
        holder = parents.get(parent)
        if (isinstance(holder, (ast.Assign, ast.AnnAssign)) and holder.value is parent):
            targets = holder.targets if isinstance(holder, ast.Assign) else [holder.target]
            if isinstance(targets[0], ast.Name):
                return f"{targets[0].id}[{parent.elts.index(node)}]"
    if isinstance(parent, ast.keyword) and parent.arg is not None:
        return parent.arg
    if isinstance(parent, ast.arguments):
        fn = parents.get(parent)
        return _defaults(fn).get(node) if fn is not None else None
    if isinstance(parent, ast.Dict) and node in parent.values:
        key = parent.keys[parent.values.index(node)]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    return None


def _enclosing_function(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> str:
    p = parents.get(node)
    while p is not None:
        if isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return p.name
        p = parents.get(p)
    return "module"


def _block_lines(source: str) -> tuple[int, int]:
    """1-based (first, last) lines of the evolve block; the whole source if it has none."""
    prefix, block, _ = split_evolve_block(source)
    first = len(prefix.splitlines()) + 1
    return first, first + len(block.splitlines()) - 1


def tunable_constants(source: str) -> list[Constant]:
    """The numeric literals of ``source``'s evolve block (the whole source if it has none)
    that tuning may change, in source order.

    The rule. A candidate: an ``int`` or ``float`` literal written in the block (``True``,
    ``False``, complex numbers and numbers inside strings are not), with a unary minus
    folded in (``-0.1`` is one constant of value -0.1). Of those:

    1. Never tunable, whatever their value: literals where a number is structure, not a
       setting: inside a subscript (``x[0]``, ``x[:, None]``, ``ewma[-1]``), under a
       structural keyword (``axis=1``, ``keepdims=``, ``shape=``, ``dtype=``, ``num=``, ...,
       ``discover.knobs.STRUCTURAL_KEYWORDS``), and integers among the arguments of shape-like calls
       (``range(3)``, ``xp.zeros((n, 2))``, ``reshape(-1, 4)``, ``SHAPE_CALLS``), and reduction axes.
    2. Bound literals are tunable, whatever their value: the whole value of an assignment to
       a name (``ALPHA = 1.5``, ``BETA = 0.0``, ``WARMUP_ITERATIONS = 500``), an element of a
       tuple or list assigned to a name (``TRAIN_BLEND = (0.3, 0.05)``), a parameter default
       (``def f(x, eps=1e-8)``), a keyword argument (``softmax(x, temperature=0.5)``) or a
       value under a string key of a dict literal (``{"lr": 2.5e-4}``). Naming a number is
       how a program says it is a setting.
    3. Inline literals are tunable only if they are floats other than 0.0, 1.0 and -1.0
       (``xp.maximum(0.1, alpha)``, ``total > 1e-12``). Inline integers are counts,
       parities, powers and offsets (``t - 1``, ``x ** 2``, ``n // 2``) and 0.0 / ±1.0 are
       identities and signs (``t ** a + 1.0``, ``max(r, 0.0)``): changing them changes the
       formula rather than a setting of it. Write a number as a float or give it a name to
       make it tunable.

    Raises:
      ValueError: the source does not parse, or its evolve markers are malformed.
    """
    try:
        tree = parse_python(source)
    except SyntaxError as e:
        raise ValueError(f"the program does not parse: {e.msg} (line {e.lineno})") from None
    first, last = _block_lines(source)
    lines = source.splitlines()
    parents = _parent_map(tree)
    spelled = _number_tokens(source)
    found: list[tuple[int, int, Constant]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
            continue
        if not (first <= node.lineno <= last) or node.lineno != node.end_lineno:
            continue
        line_text = lines[node.lineno - 1]
        col = _char_col(line_text, node.col_offset)
        if (node.lineno, col) not in spelled:
            continue
        end = _char_col(line_text, node.end_col_offset)
        value: int | float = node.value
        outer: ast.AST = node
        parent = parents.get(node)
        if (isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub) and parent.lineno == node.lineno
                and parent.end_col_offset == node.end_col_offset):
            start = _char_col(line_text, parent.col_offset)
            if line_text[start] == "-" and not line_text[start + 1:col].strip():
                outer, value, col = parent, -node.value, start
        is_int = type(value) is int
        if _is_structural(outer, is_int, parents):
            continue
        name = _binding(outer, parents)
        if name is None and (is_int or float(value) in NEUTRAL_VALUES):
            continue
        label = name if name is not None else f"{_enclosing_function(outer, parents)}:{node.lineno}"
        found.append((node.lineno, col, Constant(index=0, value=value, line=node.lineno, col=col,
                                                 text=line_text[col:end], kind=INT if is_int else FLOAT,
                                                 name=label, bound=name is not None)))
    found.sort(key=lambda x: (x[0], x[1]))
    return [dataclasses.replace(c, index=i) for i, (_, _, c) in enumerate(found)]


# ----------------------------------------------------------------------------- ranges
@dataclasses.dataclass(frozen=True)
class SearchRange:
    """Where a constant is searched. Optuna samples ``low ≤ s ≤ high`` (log-uniformly when
    ``log``); the constant's value is ``-s`` when ``negate`` else ``s``.

    Attributes:
      kind: ``"int"`` or ``"float"``, as the constant.
    """

    low: float
    high: float
    log: bool
    negate: bool
    kind: str

    def value(self, sampled: float) -> int | float:
        v = -sampled if self.negate else sampled
        return int(v) if self.kind == INT else float(v)

    def sampled(self, value: int | float) -> int | float:
        """The inverse of ``value``: what Optuna stores for a constant's value."""
        s = -value if self.negate else value
        return int(s) if self.kind == INT else float(s)


def search_range(constant: Constant) -> SearchRange:
    """The search range of a constant.

    - float x ≠ 0: |x| log-uniform in [|x|/10, 10|x|], the sign kept. Scale-like settings
      (a learning rate, an ε, a temperature, an exponent) matter by ratio, and a factor of
      ten either way covers the usual reach of a paper's ablation (DCFR's α = 1.5 is searched
      in [0.15, 15]). A setting with a hard domain (a discount below 1) can leave it: such
      trials fail or score badly, and TPE learns to avoid them.
    - float 0: uniform in [-1, 1] (no scale to be relative to; DCFR's β = 0 explores the
      negative β the paper also studies).
    - int n ≠ 0: |n| log-uniform over the integers in [ceil(|n|/2), 2|n|] (halve to double:
      500 → [250, 1000], 2 → [1, 4]), the sign kept, so a count stays a count.
    - int 0: uniform over the integers in [-2, 2].
    """
    v = constant.value
    if constant.kind == INT:
        n = int(v)
        if n == 0:
            return SearchRange(-2, 2, log=False, negate=False, kind=INT)
        m = abs(n)
        return SearchRange((m + 1) // 2, 2 * m, log=True, negate=n < 0, kind=INT)
    x = float(v)
    if x == 0.0:
        return SearchRange(-1.0, 1.0, log=False, negate=False, kind=FLOAT)
    m = abs(x)
    return SearchRange(m / 10.0, min(m * 10.0, 1e308), log=True, negate=x < 0, kind=FLOAT)


# ----------------------------------------------------------------------------- substitution
def _as_list(constants: Sequence[Constant], values: Mapping[int, Any] | Sequence[Any]) -> list[Any]:
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(range(len(constants))))
        if unknown:
            raise ValueError(f"no tunable constant with index {unknown[0]!r}; the program has {len(constants)}")
        return [values.get(c.index, c.value) for c in constants]
    values = list(values)
    if len(values) != len(constants):
        raise ValueError(f"got {len(values)} values for {len(constants)} tunable constants; give one per constant")
    return values


def _binding_tight(source: str) -> set[tuple[int, int]]:
    """(line, character column) of the literals that bind tighter than a unary minus would:
    the base of ``**`` (``0.5 ** t``) and the object of an attribute, call or subscript.
    A negative value written there needs parentheses: ``-0.5 ** t`` is ``-(0.5 ** t)``."""
    lines = source.splitlines()
    out = set()
    for node in ast.walk(parse_python(source)):
        inner = (node.left if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
                 else node.value if isinstance(node, (ast.Attribute, ast.Subscript))
                 else node.func if isinstance(node, ast.Call) else None)
        if isinstance(inner, ast.UnaryOp):
            inner = inner.operand
        if isinstance(inner, ast.Constant):
            out.add((inner.lineno, _char_col(lines[inner.lineno - 1], inner.col_offset)))
    return out


def literal(c: Constant, value: Any, tight: bool = False) -> str:
    """The text that writes ``value`` in place of ``c`` (``tight``: see ``_binding_tight``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"constant {c.index} ({c.name}) needs a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"constant {c.index} ({c.name}) needs a finite number, got {value!r}")
    if c.kind == INT:
        if not x.is_integer():
            raise ValueError(f"constant {c.index} ({c.name}) is an integer, got {value!r}")
        text = str(int(value) if isinstance(value, int) else int(x))
    else:
        text = repr(x)       # the shortest text that reads back as exactly x
    if tight and text.startswith("-") and not c.text.startswith("-"):
        text = f"({text})"
    return text


def substitute(source: str, values: Mapping[int, Any] | Sequence[Any]) -> str:
    """``source`` with its tunable constants set to ``values``.

    Args:
      values: one value per constant (``tunable_constants`` order), or a mapping from
        constant index to value for the ones to change. A value equal to the constant's own
        leaves its text untouched, so the original values give back ``source`` exactly.

    Returns:
      The new source; only the literals that change are rewritten (floats as Python's
      shortest round-trip text; a negative value in parentheses where a bare minus would
      bind differently, as the base of ``**``), and it parses.

    Raises:
      ValueError: a value is not a finite number, an integer constant gets a fraction, an
        index is unknown, or the count of values is wrong.
    """
    constants = tunable_constants(source)
    new = _as_list(constants, values)
    tight = _binding_tight(source)
    edits = [(c, literal(c, v, (c.line, c.col) in tight)) for c, v in zip(constants, new)]
    edits = [(c, text) for (c, text), v in zip(edits, new) if float(v) != float(c.value)]
    lines = source.splitlines(keepends=True)
    for c, text in sorted(edits, key=lambda e: (e[0].line, e[0].col), reverse=True):
        line = lines[c.line - 1]
        lines[c.line - 1] = line[:c.col] + text + line[c.col + len(c.text):]
    out = "".join(lines)
    parse_python(out)  # a broken substitution is a bug here, not the candidate's fault
    return out
