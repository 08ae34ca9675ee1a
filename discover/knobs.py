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
"""

from __future__ import annotations

import ast
from typing import Callable

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
