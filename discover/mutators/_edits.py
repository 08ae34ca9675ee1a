"""The edits the offline mutator makes within one program: where each kind of edit can
apply (its *sites*), and applying one. ``discover.mutators.offline`` picks a kind and a
site, and adds the edits that take a second program (splice, crossover); its docstring
describes every kind.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import math
import random
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from discover.knobs import is_structural
from discover.mutators._syntax import (Program, ancestors, annotate_parents, call_name, copy_body, is_number,
                                       loaded_names, number_node, params, reachable, replace, signed_value)

KINDS = ("perturb", "power", "swap", "floor", "splice", "crossover")

_DEFAULT_WEIGHTS = MappingProxyType({
    "perturb": 3.0, "power": 1.5, "swap": 0.5, "floor": 0.5, "splice": 3.0, "crossover": 2.5,
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
      min_relative_change: a perturbed value differs from the old one by at least this
        fraction (smaller changes rarely change behaviour and waste an evaluation).
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
    min_relative_change: float = 0.05
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


def _fmt(value: float | int) -> str:
    return repr(value)


def _round(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _exponent_node(k: float) -> ast.Constant:
    """An exponent literal, written as an integer where it is one (``t ** 2``)."""
    return ast.Constant(int(k) if float(k).is_integer() else float(k))


def _power(base: ast.expr, k: float) -> ast.expr:
    return base if k == 1 else ast.BinOp(base, ast.Pow(), _exponent_node(k))


def _named_constants(body: Sequence[ast.stmt]) -> dict[str, float | int]:
    """Top-level ``NAME = <number>`` assignments."""
    out = {}
    for stmt in body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and signed_value(stmt.value) is not None):
            out[stmt.targets[0].id] = signed_value(stmt.value)
    return out


def _is_positive(node: ast.expr, positive: set[str], constants: Mapping[str, float]) -> bool:
    """True when ``node`` is positive whatever the arrays hold: positive literals, names
    known positive (the iteration counter, positive named constants), and sums, products,
    quotients of them and powers of a positive base."""
    if is_number(node):
        return node.value > 0
    if isinstance(node, ast.Name):
        return node.id in positive or constants.get(node.id, 0) > 0
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            return _is_positive(node.left, positive, constants)
        if isinstance(node.op, (ast.Add, ast.Mult, ast.Div)):
            return _is_positive(node.left, positive, constants) and _is_positive(node.right, positive, constants)
    if isinstance(node, ast.Call) and call_name(node) == "exp":
        return True
    return False


def _is_nonnegative(node: ast.expr, positive: set[str], constants: Mapping[str, float]) -> bool:
    """Positive, or clipped at a non-negative floor (``xp.maximum(x, 0.0)``), or a magnitude."""
    if isinstance(node, ast.Call) and call_name(node) in ("abs", "square"):
        return True
    if isinstance(node, ast.Call) and call_name(node) == "maximum" and len(node.args) == 2:
        floor = signed_value(node.args[1])
        return floor is not None and floor >= 0
    return _is_positive(node, positive, constants)


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
        return set(params(fn)) & set(self.config.positive_names)


def _scope(body: list[ast.stmt], roots: Sequence[str], config: OfflineMutatorConfig) -> _Scope:
    used = reachable(body, roots)
    for stmt in body:
        annotate_parents(stmt)
    functions = [s for i, s in enumerate(body) if i in used and isinstance(s, ast.FunctionDef)]
    constants = _named_constants(body)
    assigns = [s for i, s in enumerate(body) if i in used and isinstance(s, ast.Assign)
               and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
               and s.targets[0].id in constants]
    return _Scope(body, functions, assigns, constants, config)


def _is_structural(const: ast.Constant) -> bool:
    """Whether a literal is an index, axis, shape or count rather than a tuning constant
    (``discover.knobs``, the rule ``discover tune`` uses too)."""
    return is_structural(const, lambda node: getattr(node, "_parent", None))


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
            if abs(new / value - 1.0) < config.min_relative_change:
                continue
        if new != value and new != 0:
            return new
    return value + (1 if value >= 0 else -1)


def _is_counter_weight(node: ast.AST, positive: set[str]) -> bool:
    """``t`` used as a factor (``t * reach``), where a power of it is another weighting
    schedule. Not ``t`` inside a ratio such as ``(t - 1) / t``: changing one side of a
    discount ratio lets it exceed 1, and a running sum multiplied by it then overflows."""
    parent = getattr(node, "_parent", None)
    return (isinstance(node, ast.Name) and node.id in positive and isinstance(node.ctx, ast.Load)
            and isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Mult))


def _perturb_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    config = scope.config
    sites: list[_Site] = []

    for assign in scope.assigns:  # named constants are tuning constants by intent
        name = assign.targets[0].id
        old = scope.constants[name]

        def apply(r, assign=assign, name=name, old=old):
            new = _perturb_value(old, isinstance(old, int), r, config)
            assign.value = number_node(new)
            return f"{name}: constant {_fmt(old)} → {_fmt(new)}"
        sites.append(_Site(2.0, apply))

    for fn in scope.functions:
        positive = scope.positive(fn)
        for node in ast.walk(fn):
            if is_number(node) and node.value != 0 and not _is_structural(node):
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
            elif _is_counter_weight(node, positive):
                # t is t ** 1: perturbing that exponent moves along the weighting schedules.
                def apply(r, node=node, fn=fn):
                    k = _perturb_value(1.0, False, r, config)
                    replace(node, _power(ast.Name(node.id, ast.Load()), k))
                    return f"{fn.name}: {node.id} → {node.id} ** {_fmt(k)}"
                sites.append(_Site(1.0, apply))
    return sites


def _accumulations(fn: ast.FunctionDef) -> list[tuple[ast.BinOp, str]]:
    """``acc + term`` (either order) where ``acc`` is the function's first parameter: the
    running sums (cumulative regret, average-policy numerator). Returns (node, term field)."""
    names = params(fn)
    if not names:
        return []
    acc = names[0]
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
            if _is_counter_weight(node, positive):
                def apply(r, node=node, fn=fn):
                    k = r.choice(exponents)
                    replace(node, _power(ast.Name(node.id, ast.Load()), k))
                    return f"{fn.name}: {node.id} → {node.id} ** {_fmt(_exponent_node(k).value)}"
                sites.append(_Site(1.0, apply))
            # t ** c → t ** c' or t
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
                  and _is_nonnegative(node.left, positive, scope.constants)):
                old = signed_value(node.right)
                if old is not None:
                    def apply(r, node=node, fn=fn, old=old):
                        k = r.choice([e for e in (1.0,) + exponents if e != old])
                        before = ast.unparse(node)
                        new = _power(node.left, k)
                        replace(node, new)
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
            elif (isinstance(node, ast.Call) and call_name(node) == "maximum" and len(node.args) == 2
                  and signed_value(node.args[1]) == 0
                  and not (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Pow))):
                stmt = next((p for _, p in ancestors(node) if isinstance(p, ast.stmt)), None)
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id not in _directly_returned_names(fn)):
                    def apply(r, node=node, fn=fn):
                        k = r.choice([e for e in exponents if e != 1.0])
                        before = ast.unparse(node)
                        new = _power(copy.deepcopy(node), k)
                        replace(node, new)
                        return f"{fn.name}: {before} → {ast.unparse(new)}"
                    sites.append(_Site(0.5, apply))
        # acc + term → acc + t ** k * term (weights iteration t's contribution)
        for node, field in _accumulations(fn):
            term = getattr(node, field)
            if positive & loaded_names(term):
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
            if isinstance(node, ast.Call) and call_name(node) in FUNCTION_SWAPS:
                def apply(r, node=node, fn=fn):
                    old = call_name(node)
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
                    if (loaded_names(weight) & positive and _is_positive(weight, positive, {})
                            and not is_number(other)):
                        def apply(r, node=node, weight=weight, other=other, fn=fn):
                            before = ast.unparse(node)
                            new = ast.BinOp(other, ast.Div(), weight)
                            replace(node, new)
                            return f"{fn.name}: {before} → {ast.unparse(new)}"
                        sites.append(_Site(1.0, apply))
                        break
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and is_number(node.right)
                  and node.right.value > 0):
                def apply(r, node=node, fn=fn):  # x / c → x * c: the same scale, inverted
                    before = ast.unparse(node)
                    node.op = ast.Mult()
                    return f"{fn.name}: {before} → {ast.unparse(node)}"
                sites.append(_Site(0.5, apply))
    return sites


def _floor_sites(scope: _Scope, rng: random.Random) -> list[_Site]:
    sites: list[_Site] = []
    for fn in scope.functions:
        if "xp" not in params(fn):
            continue
        for value in _returned_first(fn):
            if (isinstance(value, ast.Call) and call_name(value) == "maximum" and len(value.args) == 2
                    and signed_value(value.args[1]) == 0):
                def apply(r, value=value, fn=fn):
                    replace(value, value.args[0])
                    return f"{fn.name}: floor at 0 removed"
                sites.append(_Site(1.0, apply))
            elif isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Sub)):
                def apply(r, value=value, fn=fn):
                    floored = ast.Call(ast.Attribute(ast.Name("xp", ast.Load()), "maximum", ast.Load()),
                                       [value, ast.Constant(0.0)], [])
                    replace(value, floored)
                    return f"{fn.name}: floor at 0 added (xp.maximum(·, 0.0))"
                sites.append(_Site(1.0, apply))
    return sites


_SITE_FINDERS: Mapping[str, Callable[[_Scope, random.Random], list[_Site]]] = MappingProxyType({
    "perturb": _perturb_sites, "power": _power_sites, "swap": _swap_sites, "floor": _floor_sites,
})


def _site_edit(kind: str, program: Program, roots: Sequence[str], config: OfflineMutatorConfig,
               rng: random.Random) -> _Edit | None:
    body = copy_body(program)
    sites = _SITE_FINDERS[kind](_scope(body, roots, config), rng)
    if not sites:
        return None
    site = rng.choices(sites, weights=[s.weight for s in sites])[0]
    return _Edit(body, site.apply(rng))
