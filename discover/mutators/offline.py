"""The offline mutator: syntax-tree edits inside the evolve block, no network, no model.

``OfflineMutator.propose`` makes children of a parent program with six kinds of edit, each
confined to the evolve block and each described in one line:

- ``perturb``: multiply a numeric constant by a log-normal factor (a named top-level
  constant such as ``GAMMA = 2.0``, a literal inside a rule, or the implicit exponent 1 of
  the iteration counter, ``t → t ** 1.3``). Signs are kept; integers that are exponents or
  thresholds stay integers; 0 and ±1 inside expressions are structural and left alone
  (almost always), as are axes, indices and shapes.
- ``power``: change how a rule depends on the iteration counter or on a non-negative
  quantity: ``t ↔ t ** k``, ``t ** k → t ** k'``, weight the new term of a running sum by
  ``t ** k`` (CFR → linear / quadratic averaging, the weighting of Linear CFR and DCFR,
  Brown & Sandholm 2019), or raise a clipped regret to a power (power regret matching).
- ``swap``: swap a function for a neighbour with the same domain (``sqrt → log1p``,
  ``tanh ↔ arctan``, ``abs ↔ square``), or a multiplication by a positive weight for a
  division. Swaps that usually destroy a rule (``maximum ↔ minimum``, ``+ ↔ −`` in an
  accumulation) are not offered.
- ``floor``: add or remove ``xp.maximum(·, 0.0)`` around the value a rule returns (the
  difference between CFR and CFR+'s regret matching+, Tammelin 2014).
- ``splice``: replace rule functions with a mechanism from ``space.mechanisms`` (complete
  function definitions); its constants and helpers come along (renamed where they clash)
  and its ``init_state`` keys are merged into the parent's, so spliced rules find their state.
- ``crossover``: take some rule functions from an inspiration and the rest from the
  parent, with the same merging.

Each child is re-checked with ``discover.checks.static_check``; an edit that gives an
invalid child, or one whose normalised code equals the parent's (or an earlier child's),
is retried a bounded number of times. Functions the edit did not touch keep their text
(comments included), so a child's diff shows only the edit.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import math
import random
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from discover.checks import static_check
from discover.mutators.base import MutationContext, Parent, Proposal
from discover.program import join_evolve_block, normalized_code, split_evolve_block

KINDS = ("perturb", "power", "swap", "floor", "splice", "crossover")

_DEFAULT_WEIGHTS = MappingProxyType({
    "perturb": 3.0, "power": 2.0, "swap": 0.5, "floor": 0.5, "splice": 3.0, "crossover": 2.0,
})


@dataclasses.dataclass(frozen=True)
class OfflineMutatorConfig:
    """Settings of the offline mutator.

    Attributes:
      weights: relative probability of each edit kind (``KINDS``); a kind with weight 0
        is never used, a kind with no site in the parent is skipped.
      max_attempts: edits tried per proposal before giving up on it.
      log_sigma: standard deviation of the log of the multiplicative perturbation.
      zero_scale: scale of the additive perturbation of a named constant equal to 0.
      unit_constant_prob: probability that a literal ±1 inside an expression is offered
        for perturbation (they are usually structural: ``t - 1``, ``x + 1.0``).
      exponents: the powers tried by ``power`` edits.
      significant_digits: perturbed values are rounded to this many digits, so edits read
        ``1.5 → 1.83`` rather than ``1.5 → 1.8314159``.
      positive_names: parameter names known to be positive (the iteration counter);
        powers and divisions are only built on these.
      state_init: the name of the function that creates the rules' state dict.
    """

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: _DEFAULT_WEIGHTS)
    max_attempts: int = 12
    log_sigma: float = 0.35
    zero_scale: float = 0.5
    unit_constant_prob: float = 0.05
    exponents: tuple[float, ...] = (0.5, 1.5, 2.0, 3.0)
    significant_digits: int = 3
    positive_names: frozenset[str] = frozenset({"t"})
    state_init: str = "init_state"

    def __post_init__(self):
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown edit kinds {sorted(unknown)}; the kinds are {list(KINDS)}.")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError("edit weights must be non-negative with at least one positive.")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")


# ----------------------------------------------------------------------------------------
# The parsed program and its rendering.

_ORIGIN = "_discover_origin"  # index of the parent statement a (copied) statement came from


@dataclasses.dataclass(frozen=True)
class _Program:
    """A program split around its evolve block, with the block's top-level statements and
    the exact text of each (``gaps``: the comment and blank lines before it)."""

    prefix: str
    suffix: str
    body: tuple[ast.stmt, ...]
    gaps: tuple[tuple[str, ...], ...]
    texts: tuple[tuple[str, ...], ...]
    dumps: tuple[str, ...]
    tail: tuple[str, ...]
    outside: ast.Module  # prefix and suffix, parsed (names the block may rely on)


def _parse_program(source: str) -> _Program:
    prefix, block, suffix = split_evolve_block(source)
    try:
        module = ast.parse(block)
        outside = ast.parse(prefix + "\n" + suffix)
    except SyntaxError as e:
        raise ValueError(f"the parent's evolve block does not parse: {e.msg} (line {e.lineno}).") from e
    lines = block.splitlines(keepends=True)
    gaps, texts, previous_end = [], [], 0
    for stmt in module.body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        gaps.append(tuple(lines[previous_end:start - 1]))
        texts.append(tuple(lines[start - 1:stmt.end_lineno]))
        previous_end = stmt.end_lineno
    return _Program(prefix, suffix, tuple(module.body), tuple(gaps), tuple(texts),
                    tuple(ast.dump(s) for s in module.body), tuple(lines[previous_end:]), outside)


def _copy_body(program: _Program) -> list[ast.stmt]:
    body = []
    for i, stmt in enumerate(program.body):
        clone = copy.deepcopy(stmt)
        setattr(clone, _ORIGIN, i)
        body.append(clone)
    return body


def _is_def(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))


def _with_newline(lines: Sequence[str]) -> list[str]:
    lines = list(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _render(program: _Program, body: Sequence[ast.stmt]) -> str:
    """The block text for ``body``: statements unchanged since the parent keep their text
    (and the comments above them); changed or new ones are written by ``ast.unparse``."""
    out: list[str] = []
    for k, stmt in enumerate(body):
        origin = getattr(stmt, _ORIGIN, None)
        gap = list(program.gaps[origin]) if origin is not None else []
        if k > 0:  # PEP 8 spacing: two blank lines around top-level definitions
            wanted = 2 if _is_def(stmt) or _is_def(body[k - 1]) else 0
            blank = next((i for i, line in enumerate(gap) if line.strip()), len(gap))
            gap = ["\n"] * max(0, wanted - blank) + gap
        if origin is not None and ast.dump(stmt) == program.dumps[origin]:
            text = list(program.texts[origin])
        else:
            text = ast.unparse(stmt).splitlines(keepends=True)
        out += _with_newline(gap) + _with_newline(text)
    return "".join(out + list(program.tail))


def _child_source(program: _Program, body: Sequence[ast.stmt]) -> str:
    return join_evolve_block(program.prefix, _render(program, body), program.suffix)


# ----------------------------------------------------------------------------------------
# Small syntax-tree utilities.

def _annotate_parents(root: ast.AST) -> None:
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            for child in (value if isinstance(value, list) else [value]):
                if isinstance(child, ast.AST):
                    child._parent, child._field = parent, field


def _replace(node: ast.AST, new: ast.AST) -> None:
    """Puts ``new`` where ``node`` is in its (annotated) parent."""
    parent, field = node._parent, node._field
    value = getattr(parent, field)
    if isinstance(value, list):
        value[next(i for i, v in enumerate(value) if v is node)] = new
    else:
        setattr(parent, field, new)
    new._parent, new._field = parent, field


def _ancestors(node: ast.AST):
    while hasattr(node, "_parent"):
        yield node, node._parent
        node = node._parent


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_number(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool))


def _signed_value(node: ast.AST) -> float | int | None:
    """The value of a numeric literal, possibly negated (``-1.5`` parses as a unary minus)."""
    if _is_number(node):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and _is_number(node.operand):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return None


def _number_node(value: float | int) -> ast.expr:
    """A literal for ``value``; negative values become a unary minus, because a negative
    ``Constant`` is unparsed without parentheses (``-0.3 ** 2`` would mean ``-(0.3 ** 2)``)."""
    if value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


def _fmt(value: float | int) -> str:
    return repr(value)


def _round(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _exponent_node(k: float) -> ast.expr:
    return ast.Constant(int(k) if float(k).is_integer() else float(k))


def _power(base: ast.expr, k: float) -> ast.expr:
    return base if k == 1 else ast.BinOp(base, ast.Pow(), _exponent_node(k))


def _top_level_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    return []


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bindings(body: Sequence[ast.stmt]) -> dict[str, int]:
    """Index of the statement that last binds each top-level name."""
    return {name: i for i, stmt in enumerate(body) for name in _top_level_names(stmt)}


def _reachable(body: Sequence[ast.stmt], roots: Sequence[str]) -> set[int]:
    """Indices of the statements the functions named ``roots`` depend on, transitively."""
    bound = _bindings(body)
    todo = [bound[r] for r in roots if r in bound]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo += [bound[n] for n in _loaded_names(body[i]) if n in bound]
    return seen


def _named_constants(body: Sequence[ast.stmt]) -> dict[str, float | int]:
    """Top-level ``NAME = <number>`` assignments."""
    out = {}
    for stmt in body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and _signed_value(stmt.value) is not None):
            out[stmt.targets[0].id] = _signed_value(stmt.value)
    return out


def _params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]


def _is_positive(node: ast.expr, positive: set[str], constants: Mapping[str, float]) -> bool:
    """True when ``node`` is positive whatever the arrays hold: positive literals, names
    known positive (the iteration counter, positive named constants), and sums, products,
    quotients of them and powers of a positive base."""
    if _is_number(node):
        return node.value > 0
    if isinstance(node, ast.Name):
        return node.id in positive or constants.get(node.id, 0) > 0
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            return _is_positive(node.left, positive, constants)
        if isinstance(node.op, (ast.Add, ast.Mult, ast.Div)):
            return _is_positive(node.left, positive, constants) and _is_positive(node.right, positive, constants)
    if isinstance(node, ast.Call) and _call_name(node) == "exp":
        return True
    return False


def _is_nonnegative(node: ast.expr, positive: set[str], constants: Mapping[str, float]) -> bool:
    """Positive, or clipped at a non-negative floor (``xp.maximum(x, 0.0)``), or a magnitude."""
    if isinstance(node, ast.Call) and _call_name(node) in ("abs", "square"):
        return True
    if isinstance(node, ast.Call) and _call_name(node) == "maximum" and len(node.args) == 2:
        floor = _signed_value(node.args[1])
        return floor is not None and floor >= 0
    return _is_positive(node, positive, constants)


class _Renamer(ast.NodeTransformer):
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


def _fresh_name(base: str, taken: set[str]) -> str:
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


# ----------------------------------------------------------------------------------------
# Edits that change one site of the syntax tree: perturb, power, swap, floor.

@dataclasses.dataclass(frozen=True)
class _Edit:
    body: list[ast.stmt]
    description: str
    parents: tuple[int, ...] = ()
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Site:
    weight: float
    apply: Callable[[random.Random], str]  # edits the copied body, returns the description


@dataclasses.dataclass(frozen=True)
class _Scope:
    """What site finders need to know about the copied block."""

    body: list[ast.stmt]
    functions: list[ast.FunctionDef]          # reachable top-level functions
    assigns: list[ast.Assign]                  # reachable top-level numeric constants
    constants: Mapping[str, float | int]
    config: OfflineMutatorConfig

    def positive(self, fn: ast.FunctionDef) -> set[str]:
        return set(_params(fn)) & set(self.config.positive_names)


def _scope(program: _Program, body: list[ast.stmt], roots: Sequence[str],
           config: OfflineMutatorConfig) -> _Scope:
    used = _reachable(body, roots)
    for stmt in body:
        _annotate_parents(stmt)
    functions = [s for i, s in enumerate(body) if i in used and isinstance(s, ast.FunctionDef)]
    constants = _named_constants(body)
    assigns = [s for i, s in enumerate(body) if i in used and isinstance(s, ast.Assign)
               and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
               and s.targets[0].id in constants]
    return _Scope(body, functions, assigns, constants, config)


# Calls whose numeric arguments are shapes, axes, counts or shifts, never tuning constants.
_STRUCTURAL_CALLS = frozenset({
    "zeros", "ones", "empty", "full", "reshape", "arange", "eye", "identity", "range", "tile",
    "repeat", "broadcast_to", "expand_dims", "squeeze", "transpose", "swapaxes", "moveaxis",
    "take", "take_along_axis", "concatenate", "stack", "split", "roll", "pad", "astype", "len",
})
# Reductions: their second positional argument (or first, as a method) is an axis.
_AXIS_CALLS = frozenset({
    "sum", "mean", "max", "min", "amax", "amin", "prod", "argmax", "argmin", "cumsum",
    "cumprod", "std", "var", "any", "all", "norm", "logsumexp", "softmax", "sort", "argsort",
    "median", "nansum", "nanmean", "average", "nanmax", "nanmin",
})
_STRUCTURAL_KEYWORDS = frozenset({
    "axis", "axes", "keepdims", "dtype", "shape", "ndim", "ord", "size", "newshape",
    "repeats", "reps", "shift", "k", "order", "num",
})
_MODULE_NAMES = frozenset({"xp", "np", "jnp", "numpy", "math", "jax", "lax"})


def _is_structural(const: ast.Constant) -> bool:
    """Whether a literal is an index, axis, shape or count rather than a tuning constant."""
    for child, parent in _ancestors(const):
        if isinstance(parent, ast.stmt):
            return False
        if isinstance(parent, ast.Subscript) and child._field == "slice":
            return True
        if isinstance(parent, ast.keyword) and parent.arg in _STRUCTURAL_KEYWORDS:
            return True
        if isinstance(parent, ast.Call) and child._field == "args":
            name = _call_name(parent)
            if name in _STRUCTURAL_CALLS:
                return True
            if name in _AXIS_CALLS:
                position = next(i for i, a in enumerate(parent.args) if a is child)
                f = parent.func
                is_function = (isinstance(f, ast.Name) or
                               (isinstance(f, ast.Attribute) and isinstance(f.value, (ast.Name, ast.Attribute))
                                and ast.unparse(f.value).split(".")[0] in _MODULE_NAMES))
                if position >= (1 if is_function else 0):
                    return True
    return False


def _keeps_int(const: ast.Constant, scope: _Scope, positive: set[str]) -> bool:
    """Integers stay integers where they are exponents of a base of any sign (a fractional
    power of a negative number is NaN) or thresholds in comparisons."""
    node, parent = const, const._parent
    while isinstance(parent, ast.UnaryOp):
        node, parent = parent, parent._parent
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Pow) and parent.right is node:
        return not _is_positive(parent.left, positive, scope.constants)
    return isinstance(parent, ast.Compare)


def _perturb_value(value: float | int, as_int: bool, rng: random.Random,
                   config: OfflineMutatorConfig) -> float | int:
    """A new value of the same sign: ``value · exp(N(0, σ²))``, rounded; a zero (only named
    constants reach here with 0) moves by ``N(0, zero_scale²)``."""
    for _ in range(100):
        if value == 0:
            new = (rng.choice((1, 2, 3)) if as_int
                   else _round(rng.gauss(0.0, config.zero_scale), config.significant_digits))
        elif as_int:
            new = int(round(value * math.exp(rng.gauss(0.0, config.log_sigma))))
            if new == value:
                new = value + rng.choice((-1, 1))
            if new == 0 or (new > 0) != (value > 0):
                new = value + (1 if value > 0 else -1)
        else:
            new = _round(value * math.exp(rng.gauss(0.0, config.log_sigma)), config.significant_digits)
        if new != value and new != 0:
            return new
    return value + (1 if value >= 0 else -1)


def _perturb_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    config = scope.config
    sites: list[_Site] = []

    for assign in scope.assigns:  # named constants are tuning constants by intent
        name = assign.targets[0].id
        old = scope.constants[name]

        def apply(r, assign=assign, name=name, old=old):
            new = _perturb_value(old, isinstance(old, int), r, config)
            assign.value = _number_node(new)
            return f"{name}: constant {_fmt(old)} → {_fmt(new)}"
        sites.append(_Site(2.0, apply))

    for fn in scope.functions:
        positive = scope.positive(fn)
        for node in ast.walk(fn):
            if _is_number(node) and node.value != 0 and not _is_structural(node):
                if abs(node.value) == 1 and rng.random() >= config.unit_constant_prob:
                    continue
                negated = isinstance(node._parent, ast.UnaryOp) and isinstance(node._parent.op, ast.USub)

                def apply(r, node=node, fn=fn, negated=negated, positive=positive):
                    old = node.value
                    as_int = isinstance(old, int) and _keeps_int(node, scope, positive)
                    new = _perturb_value(old, as_int, r, config)
                    node.value = new
                    sign = -1 if negated else 1
                    return f"{fn.name}: constant {_fmt(sign * old)} → {_fmt(sign * new)}"
                sites.append(_Site(1.0, apply))
            elif (isinstance(node, ast.Name) and node.id in positive and isinstance(node.ctx, ast.Load)
                  and isinstance(node._parent, ast.BinOp) and isinstance(node._parent.op, (ast.Mult, ast.Div))):
                # t is t ** 1: perturbing that exponent moves along the weighting schedules.
                def apply(r, node=node, fn=fn):
                    k = 1.0
                    while k == 1.0:
                        k = _round(math.exp(r.gauss(0.0, config.log_sigma)), config.significant_digits)
                    _replace(node, _power(ast.Name(node.id, ast.Load()), k))
                    return f"{fn.name}: {node.id} → {node.id} ** {_fmt(k)}"
                sites.append(_Site(1.0, apply))
    return sites


def _accumulations(fn: ast.FunctionDef) -> list[tuple[ast.BinOp, str]]:
    """``acc + term`` (either order) where ``acc`` is the function's first parameter: the
    running sums (cumulative regret, average-policy numerator). Returns (node, term field)."""
    params = _params(fn)
    if not params:
        return []
    acc = params[0]
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            if isinstance(node.left, ast.Name) and node.left.id == acc:
                out.append((node, "right"))
            elif isinstance(node.right, ast.Name) and node.right.id == acc:
                out.append((node, "left"))
    return out


def _weighted(term: ast.expr, weight: ast.expr) -> ast.expr:
    """``weight * term``, with the weight pushed to the front of a product so it reads
    ``t ** 2 * reach * policy`` rather than ``t ** 2 * (reach * policy)``."""
    if isinstance(term, ast.BinOp) and isinstance(term.op, ast.Mult):
        return ast.BinOp(_weighted(term.left, weight), ast.Mult(), term.right)
    return ast.BinOp(weight, ast.Mult(), term)


def _returned_first(fn: ast.FunctionDef) -> list[ast.expr]:
    """The first element of each value ``fn`` returns (the rules return ``(array, state)``)."""
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            out.append(value.elts[0] if isinstance(value, ast.Tuple) and value.elts else value)
    return out


def _directly_returned_names(fn: ast.FunctionDef) -> set[str]:
    return {v.id for v in _returned_first(fn) if isinstance(v, ast.Name)}


def _power_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    config = scope.config
    sites: list[_Site] = []
    exponents = tuple(config.exponents)
    for fn in scope.functions:
        positive = scope.positive(fn)
        if not positive:
            continue
        counter = sorted(positive)[0]
        for node in ast.walk(fn):
            parent = getattr(node, "_parent", None)
            # t → t ** k
            if (isinstance(node, ast.Name) and node.id in positive and isinstance(node.ctx, ast.Load)
                    and isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Mult, ast.Div))):
                def apply(r, node=node, fn=fn):
                    k = r.choice(exponents)
                    _replace(node, _power(ast.Name(node.id, ast.Load()), k))
                    return f"{fn.name}: {node.id} → {node.id} ** {_fmt(_exponent_node(k).value)}"
                sites.append(_Site(1.0, apply))
            # t ** c → t ** c' or t
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
                  and _is_nonnegative(node.left, positive, scope.constants)):
                old = _signed_value(node.right)
                if old is not None:
                    def apply(r, node=node, fn=fn, old=old):
                        k = r.choice([e for e in (1.0,) + exponents if e != old])
                        before = ast.unparse(node)
                        new = _power(node.left, k)
                        _replace(node, new)
                        return f"{fn.name}: {before} → {ast.unparse(new)}"
                    sites.append(_Site(1.0, apply))
                elif isinstance(node.right, ast.Name) and node.right.id in scope.constants:
                    name = node.right.id
                    assign = next((a for a in scope.assigns if a.targets[0].id == name), None)
                    if assign is not None:
                        def apply(r, assign=assign, name=name, fn=fn):
                            old = scope.constants[name]
                            k = r.choice([e for e in (1.0,) + exponents if e != old])
                            assign.value = _exponent_node(k)
                            return (f"{name}: {_fmt(old)} → {_fmt(assign.value.value)} "
                                    f"(an exponent in {fn.name})")
                        sites.append(_Site(1.0, apply))
            # xp.maximum(x, 0) → xp.maximum(x, 0) ** k, where the result is normalised later,
            # not fed back into a running sum (which would then grow without bound).
            elif (isinstance(node, ast.Call) and _call_name(node) == "maximum" and len(node.args) == 2
                  and _signed_value(node.args[1]) == 0
                  and not (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Pow))):
                stmt = next((p for _, p in _ancestors(node) if isinstance(p, ast.stmt)), None)
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id not in _directly_returned_names(fn)):
                    def apply(r, node=node, fn=fn):
                        k = r.choice([e for e in exponents if e != 1.0])
                        before = ast.unparse(node)
                        new = _power(copy.deepcopy(node), k)
                        _replace(node, new)
                        return f"{fn.name}: {before} → {ast.unparse(new)}"
                    sites.append(_Site(0.5, apply))
        # acc + term → acc + t ** k * term (weights iteration t's contribution)
        for node, field in _accumulations(fn):
            term = getattr(node, field)
            if positive & _loaded_names(term):
                continue

            def apply(r, node=node, field=field, fn=fn):
                k = r.choice((1.0,) + exponents)
                weight = _power(ast.Name(counter, ast.Load()), k)
                setattr(node, field, _weighted(getattr(node, field), weight))
                return f"{fn.name}: new term weighted by {ast.unparse(weight)}"
            sites.append(_Site(1.5, apply))
    return sites


# Function swaps that keep the domain (an argument valid for the old function is valid for
# the new one) and the rough shape (both sublinear, both squashing, both magnitudes).
FUNCTION_SWAPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "sqrt": ("log1p", "cbrt"),
    "log1p": ("sqrt",),
    "log": ("log1p",),
    "tanh": ("arctan",),
    "arctan": ("tanh",),
    "abs": ("square",),
    "square": ("abs",),
})


def _swap_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    sites: list[_Site] = []
    for fn in scope.functions:
        positive = scope.positive(fn)
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _call_name(node) in FUNCTION_SWAPS:
                def apply(r, node=node, fn=fn):
                    old = _call_name(node)
                    new = r.choice(FUNCTION_SWAPS[old])
                    if isinstance(node.func, ast.Attribute):
                        node.func.attr = new
                    else:
                        node.func.id = new
                    return f"{fn.name}: {old} → {new}"
                sites.append(_Site(1.0, apply))
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                # w * x → x / w for a weight w built only from the counter: bounded either way.
                for weight, other in ((node.left, node.right), (node.right, node.left)):
                    if (_loaded_names(weight) & positive and _is_positive(weight, positive, {})
                            and not _is_number(other)):
                        def apply(r, node=node, weight=weight, other=other, fn=fn):
                            before = ast.unparse(node)
                            new = ast.BinOp(other, ast.Div(), weight)
                            _replace(node, new)
                            return f"{fn.name}: {before} → {ast.unparse(new)}"
                        sites.append(_Site(1.0, apply))
                        break
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_number(node.right)
                  and node.right.value > 0):
                def apply(r, node=node, fn=fn):  # x / c → x * (1/c): same-size steps, other side
                    before = ast.unparse(node)
                    node.op = ast.Mult()
                    return f"{fn.name}: {before} → {ast.unparse(node)}"
                sites.append(_Site(0.5, apply))
    return sites


def _floor_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    sites: list[_Site] = []
    for fn in scope.functions:
        if "xp" not in _params(fn):
            continue
        for value in _returned_first(fn):
            if (isinstance(value, ast.Call) and _call_name(value) == "maximum" and len(value.args) == 2
                    and _signed_value(value.args[1]) == 0):
                def apply(r, value=value, fn=fn):
                    _replace(value, value.args[0])
                    return f"{fn.name}: floor at 0 removed"
                sites.append(_Site(1.0, apply))
            elif isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Sub)):
                def apply(r, value=value, fn=fn):
                    floored = ast.Call(ast.Attribute(ast.Name("xp", ast.Load()), "maximum", ast.Load()),
                                       [value, ast.Constant(0.0)], [])
                    _replace(value, floored)
                    return f"{fn.name}: floor at 0 added (xp.maximum(·, 0.0))"
                sites.append(_Site(1.0, apply))
    return sites


_SITE_FINDERS: Mapping[str, Callable[[_Scope, random.Random], list[_Site]]] = MappingProxyType({
    "perturb": _perturb_sites, "power": _power_sites, "swap": _swap_sites, "floor": _floor_sites,
})


def _site_edit(kind: str, program: _Program, roots: Sequence[str], config: OfflineMutatorConfig,
               rng: random.Random) -> _Edit | None:
    body = _copy_body(program)
    sites = _SITE_FINDERS[kind](_scope(program, body, roots, config), rng)
    if not sites:
        return None
    site = rng.choices(sites, weights=[s.weight for s in sites])[0]
    return _Edit(body, site.apply(rng))


# ----------------------------------------------------------------------------------------
# Splice and crossover: replace whole functions, carry their dependencies, merge state.

def _single_returned_dict(fn: ast.FunctionDef) -> ast.Dict | None:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # docstring
    if len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Dict):
        return body[0].value
    return None


def _dict_keys(d: ast.Dict) -> list[str]:
    return [k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def _merge_state_init(parent: ast.FunctionDef, mechanism: ast.FunctionDef,
                      taken: set[str]) -> tuple[list[ast.stmt], list[str]]:
    """One ``init_state`` creating the keys of both: the parent's keys are kept (its other
    rules may read them), the mechanism's are added (its rules need them) and win a clash.

    Where both return a dict literal the literals are merged; otherwise each body becomes a
    helper and ``init_state`` returns ``{**parent_part(...), **mechanism_part(...)}``.
    Returns the statements replacing the parent's ``init_state`` and the added keys.
    """
    ours, theirs = _single_returned_dict(parent), _single_returned_dict(mechanism)
    if ours is not None and theirs is not None:
        theirs = copy.deepcopy(theirs)
        _Renamer(dict(zip(_params(mechanism), _params(parent)))).visit(theirs)
        their_keys = set(_dict_keys(theirs))
        keep = [(k, v) for k, v in zip(ours.keys, ours.values)
                if not (isinstance(k, ast.Constant) and k.value in their_keys)]
        merged = copy.deepcopy(parent)
        _single_returned_dict(merged).keys = [k for k, _ in keep] + list(theirs.keys)
        _single_returned_dict(merged).values = [v for _, v in keep] + list(theirs.values)
        added = [k for k in _dict_keys(theirs) if k not in _dict_keys(ours)]
        return [merged], added
    names = []
    for base in (f"{parent.name}_parent", f"{parent.name}_mechanism"):
        names.append(_fresh_name(base, taken))
        taken.add(names[-1])
    parts = [copy.deepcopy(parent), copy.deepcopy(mechanism)]
    for part, name in zip(parts, names):
        part.name = name
        for attr in (_ORIGIN,):
            if hasattr(part, attr):
                delattr(part, attr)
    args = [ast.Name(p, ast.Load()) for p in _params(parent)]
    combined = ast.parse(f"def {parent.name}(): pass").body[0]
    combined.args = copy.deepcopy(parent.args)
    combined.body = [ast.Return(ast.Dict(
        [None, None], [ast.Call(ast.Name(n, ast.Load()), list(args), []) for n in names]))]
    if hasattr(parent, _ORIGIN):
        setattr(combined, _ORIGIN, getattr(parent, _ORIGIN))
    theirs_keys = _dict_keys(theirs) if theirs is not None else []
    return parts + [combined], theirs_keys


def _drop_unused(body: list[ast.stmt], keep: set[str], outside: ast.Module) -> list[ast.stmt]:
    """Removes top-level helpers and constants nothing uses any more (after a splice has
    replaced the only function that used them), so later edits do not waste time on them."""
    outside_uses = _loaded_names(outside)
    changed = True
    while changed:
        changed = False
        for i, stmt in enumerate(body):
            names = _top_level_names(stmt)
            removable = (isinstance(stmt, ast.FunctionDef) or
                         (isinstance(stmt, ast.Assign) and not any(isinstance(n, ast.Call) for n in ast.walk(stmt))))
            if not removable or not names or set(names) & keep:
                continue
            used = outside_uses.union(*(_loaded_names(s) for j, s in enumerate(body) if j != i))
            if not set(names) & used:
                del body[i]
                changed = True
                break
    return body


def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


def _splice_body(program: _Program, units: Sequence[ast.stmt], replace: Sequence[str],
                 required: Sequence[str], config: OfflineMutatorConfig
                 ) -> tuple[list[ast.stmt], list[str], list[str]] | None:
    """The parent's block with the functions ``replace`` taken from ``units`` (a parsed
    mechanism), their constants, helpers and imports added (renamed where a different
    definition of the same name exists) and ``init_state`` merged.

    Returns (body, replaced function names, added state keys), or None if nothing changes.
    """
    body = _copy_body(program)
    units = [copy.deepcopy(u) for u in units]
    module_names = set(_bindings(body)) | set(_bindings(program.outside.body))
    unit_names = set(_bindings(units))
    state_init = config.state_init

    # Constants and helpers: reuse an identical definition, rename one that clashes with a
    # different definition of the same name (the parent's other rules may rely on it).
    existing = {name: stmt for stmt in (*program.outside.body, *body) for name in _top_level_names(stmt)}

    def is_support(unit: ast.stmt) -> bool:
        names = _top_level_names(unit)
        return (bool(names) and not isinstance(unit, (ast.Import, ast.ImportFrom))
                and not any(n in replace or n == state_init for n in names))

    renames: dict[str, str] = {}
    for unit in filter(is_support, units):
        for n in _top_level_names(unit):
            if n in existing and not _same(existing[n], unit):
                renames[n] = _fresh_name(n, module_names | unit_names | set(renames.values()))
    if renames:
        units = [_Renamer(renames).visit(u) for u in units]
    support = [u for u in units if is_support(u) and not all(
        n in existing and _same(existing[n], u) for n in _top_level_names(u))]
    new_functions = {u.name: u for u in units if isinstance(u, ast.FunctionDef) and u.name in replace}
    mechanism_init = next((u for u in units if isinstance(u, ast.FunctionDef) and u.name == state_init), None)

    replaced = []
    for name, fn in new_functions.items():
        index = _bindings(body).get(name)
        if index is None:
            body.append(fn)
        elif not _same(body[index], fn):
            body[index] = fn  # no origin: the comments above the old function described it
        else:
            continue
        replaced.append(name)

    added_keys: list[str] = []
    if mechanism_init is not None:
        index = _bindings(body).get(state_init)
        if index is None:
            body.insert(0, mechanism_init)
            added_keys = _dict_keys(_single_returned_dict(mechanism_init) or ast.Dict([], []))
        else:
            merged, added_keys = _merge_state_init(body[index], mechanism_init, module_names | unit_names)
            if not (len(merged) == 1 and _same(merged[0], body[index])):
                body[index:index + 1] = merged

    # Imports go first; constants before the first definition; helpers before their first user.
    present = {ast.dump(s) for s in body + list(program.outside.body) if isinstance(s, (ast.Import, ast.ImportFrom))}
    imports = [u for u in units if isinstance(u, (ast.Import, ast.ImportFrom)) and ast.dump(u) not in present]
    body[0:0] = imports
    for unit in support:
        first_def = next((i for i, s in enumerate(body) if _is_def(s)), len(body))
        if isinstance(unit, ast.FunctionDef):
            users = [i for i, s in enumerate(body) if unit.name in _loaded_names(s)]
            body.insert(min(users) if users else first_def, unit)
        else:
            body.insert(first_def, unit)

    if not replaced and not added_keys:
        return None
    body = _drop_unused(body, set(required), program.outside)
    return body, replaced, added_keys


def _splice_edit(program: _Program, context: MutationContext, config: OfflineMutatorConfig,
                 rng: random.Random) -> _Edit | None:
    mechanisms = dict(getattr(context.space, "mechanisms", None) or {})
    required = tuple(context.space.required_functions)
    parent_norm = normalized_code(context.parent.source)
    names = sorted(mechanisms)
    rng.shuffle(names)
    for name in names:
        try:
            units = ast.parse(mechanisms[name]).body
        except SyntaxError:
            continue  # a broken library entry must not stop the others
        replace = [u.name for u in units if isinstance(u, ast.FunctionDef)
                   and u.name in required and u.name != config.state_init]
        result = _splice_body(program, units, replace, required, config)
        if result is None:
            continue
        body, replaced, added = result
        if normalized_code(_child_source(program, body)) == parent_norm:
            continue
        description = f"splice {name}: {', '.join(replaced) or 'state'}"
        if added:
            description += f"; state keys added: {', '.join(added)}"
        return _Edit(body, description, meta={"mechanism": name, "functions": replaced, "state_keys": added})
    return None


def _crossover_edit(program: _Program, context: MutationContext, config: OfflineMutatorConfig,
                    rng: random.Random) -> _Edit | None:
    parent = context.parent
    required = tuple(context.space.required_functions)
    rules = [r for r in required if r != config.state_init]
    ours = {s.name: s for s in program.body if isinstance(s, ast.FunctionDef)}
    partners = list(context.inspirations)
    rng.shuffle(partners)
    for partner in partners:
        try:
            other = _parse_program(partner.source)
        except ValueError:
            continue
        theirs = {s.name: s for s in other.body if isinstance(s, ast.FunctionDef)}
        differing = [r for r in rules if r in ours and r in theirs and not _same(ours[r], theirs[r])]
        if not differing:
            continue
        k = 1 if len(differing) == 1 else rng.randint(1, len(differing) - 1)
        taken = sorted(rng.sample(differing, k), key=rules.index)
        roots = taken + ([config.state_init] if config.state_init in theirs else [])
        needed = sorted(_reachable(other.body, roots))
        units = [other.body[i] for i in needed]
        result = _splice_body(program, units, taken, required, config)
        if result is None:
            continue
        body, replaced, added = result
        kept = [r for r in rules if r not in taken]
        description = (f"crossover with #{partner.id}: {', '.join(taken)} from #{partner.id}"
                       + (f", {', '.join(kept)} from #{parent.id}" if kept else ""))
        if added:
            description += f"; state keys added: {', '.join(added)}"
        return _Edit(body, description, parents=(parent.id, partner.id),
                     meta={"from_inspiration": taken, "inspiration": partner.id, "state_keys": added})
    return None


# ----------------------------------------------------------------------------------------
# The mutator.

class OfflineMutator:
    """Syntax-tree mutator needing no network: see the module docstring for the edits.

    Deterministic: the proposals are a function of ``seed``, ``config`` and the context
    (its ``rng_seed`` in particular); no global random state is read or changed.

    Example::

        mutator = OfflineMutator(seed=0)
        context = MutationContext(space, Parent(1, source, score=None), rng_seed=7)
        for p in mutator.propose(context, n=8):
            print(p.kind, p.edit)
    """

    name = "offline"

    def __init__(self, seed: int = 0, config: OfflineMutatorConfig | None = None):
        self.seed = int(seed)
        self.config = config or OfflineMutatorConfig()

    def _rng(self, context: MutationContext) -> random.Random:
        mask = (1 << 64) - 1
        entropy = np.random.SeedSequence(
            [self.seed & mask, int(context.rng_seed) & mask, int(context.parent.id) & mask])
        return random.Random(int(entropy.generate_state(1, dtype=np.uint64)[0]))

    def propose(self, context: MutationContext, n: int) -> list[Proposal]:
        """Up to ``n`` distinct children of ``context.parent`` that pass ``static_check``.

        Raises:
          ValueError: ``n`` is negative or the parent's evolve block does not parse.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        program = _parse_program(context.parent.source)
        rng = self._rng(context)
        config = self.config
        required = tuple(context.space.required_functions)
        roots = required or tuple(s.name for s in program.body if isinstance(s, ast.FunctionDef))
        weights = {k: config.weights.get(k, 0.0) for k in KINDS}
        if not context.inspirations:
            weights["crossover"] = 0.0
        if not getattr(context.space, "mechanisms", None):
            weights["splice"] = 0.0
        seen = {normalized_code(context.parent.source)}
        proposals: list[Proposal] = []
        for _ in range(n):
            for _attempt in range(config.max_attempts):
                kinds = [k for k in KINDS if weights[k] > 0]
                if not kinds:
                    return proposals
                kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
                if kind == "splice":
                    edit = _splice_edit(program, context, config, rng)
                elif kind == "crossover":
                    edit = _crossover_edit(program, context, config, rng)
                else:
                    edit = _site_edit(kind, program, roots, config, rng)
                if edit is None:  # no site for this kind in this parent
                    weights[kind] = 0.0
                    continue
                source = _child_source(program, edit.body)
                key = normalized_code(source)
                if key in seen or not static_check(source, context.space).ok:
                    continue
                seen.add(key)
                proposals.append(Proposal(source=source, edit=edit.description,
                                          parents=edit.parents or (context.parent.id,),
                                          kind=kind, meta=dict(edit.meta)))
                break
        return proposals
