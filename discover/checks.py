"""Cheap static checks on candidate programs, run before anything executes them.

``static_check`` rejects, with one clear reason, a program that does not parse, lacks a
function the space requires (or defines it with the wrong number of parameters), or
reaches for capabilities a numerical rule never needs: imports outside a small allow-list,
``eval``/``exec``/``open`` and friends, dunder attributes, frame objects, file input/output.

These checks are a filter, not a sandbox: they catch the common ways a mutated program
goes wrong in milliseconds and keep obviously hostile code away from the workers.
Isolation (separate processes, time and memory limits) is the executor's job.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from typing import Any, Mapping

from discover.program import parse_python, split_evolve_block

# Top-level modules a candidate may import (numerical libraries only).
ALLOWED_MODULES = frozenset({"math", "numpy", "jax", "functools", "__future__"})

# Names a candidate may not mention at all: code execution, introspection of scopes,
# files, interactive input, and the modules that give processes, sockets or raw memory.
FORBIDDEN_NAMES = frozenset({
    "__import__", "eval", "exec", "compile", "open", "input", "breakpoint", "globals",
    "locals", "vars", "setattr", "delattr", "exit", "quit", "help", "memoryview",
    "os", "sys", "subprocess", "socket", "ctypes", "importlib", "builtins", "shutil",
    "pathlib", "pickle", "marshal", "signal", "threading", "multiprocessing",
})

# Attribute names that lead to those capabilities from allowed modules (numpy's file I/O
# and FFI, JAX host callbacks) or out of the restricted world (frame and code objects).
FORBIDDEN_ATTRIBUTES = frozenset({
    "os", "sys", "subprocess", "socket", "ctypes", "ctypeslib", "importlib", "builtins",
    "shutil", "pathlib", "pickle", "f2py", "distutils", "testing", "system", "popen",
    "spawn", "fork", "exec", "eval", "compile", "open",
    "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt",
    "fromfile", "tofile", "dump", "memmap", "fromregex", "DataSource",
    "pure_callback", "io_callback", "debug_callback", "callback",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "f_globals", "f_locals",
    "f_builtins", "f_back", "f_code", "tb_frame", "tb_next",
})

# Calls that take an attribute name as a string: allowed only with a literal, harmless name.
_ATTRIBUTE_BY_NAME = frozenset({"getattr", "hasattr"})


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of ``static_check``: ``ok``, or not with a one-sentence ``reason``."""

    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _fail(reason: str) -> CheckResult:
    return CheckResult(False, reason)


def _is_dunder(name: str) -> bool:
    return name.startswith("__")


def _forbidden_construct(tree: ast.AST, allowed_modules: frozenset[str]) -> str | None:
    """The first forbidden construct in ``tree`` as a reason, or None."""
    allowed = ", ".join(sorted(allowed_modules - {"__future__"}))
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}: "
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, *rest = alias.name.split(".")
                if top not in allowed_modules:
                    return where + f"import of {alias.name!r} is not allowed (allowed: {allowed})."
                bad = [p for p in rest if p in FORBIDDEN_ATTRIBUTES or _is_dunder(p)]
                if bad:
                    return where + f"import of {alias.name!r} is not allowed ({bad[0]!r} is forbidden)."
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return where + "relative imports are not allowed."
            module = node.module or ""
            top, *rest = module.split(".")
            if top not in allowed_modules:
                return where + f"import from {module!r} is not allowed (allowed: {allowed})."
            bad = [p for p in rest if p in FORBIDDEN_ATTRIBUTES or _is_dunder(p)]
            if bad:
                return where + f"import from {module!r} is not allowed ({bad[0]!r} is forbidden)."
            for alias in node.names:
                if alias.name == "*":
                    return where + f"'from {module} import *' is not allowed: import names explicitly."
                if alias.name in FORBIDDEN_ATTRIBUTES or _is_dunder(alias.name):
                    return where + f"importing {alias.name!r} from {module!r} is not allowed."
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES:
                return where + f"the name {node.id!r} is not allowed in a candidate."
            if _is_dunder(node.id):
                return where + f"dunder names such as {node.id!r} are not allowed."
            if node.id in _ATTRIBUTE_BY_NAME and not getattr(node, "_checked_call", False):
                return where + f"{node.id!r} may only be called directly with a literal attribute name."
        elif isinstance(node, ast.Attribute):
            if _is_dunder(node.attr):
                return where + f"dunder attributes such as {node.attr!r} are not allowed."
            if node.attr in FORBIDDEN_ATTRIBUTES:
                return where + f"the attribute {node.attr!r} is not allowed in a candidate."
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _ATTRIBUTE_BY_NAME:
                attr = node.args[1] if len(node.args) >= 2 else None
                if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
                    return where + f"{func.id}() needs a literal attribute name, not a computed one."
                if _is_dunder(attr.value) or attr.value in FORBIDDEN_ATTRIBUTES:
                    return where + f"{func.id}() on {attr.value!r} is not allowed."
                func._checked_call = True  # ast.walk reaches the Name after its Call
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if _is_dunder(node.name):
                return where + f"defining dunder names such as {node.name!r} is not allowed."
        elif isinstance(node, ast.arg):
            if _is_dunder(node.arg):
                return where + f"dunder parameter names such as {node.arg!r} are not allowed."
        elif isinstance(node, ast.alias):
            if node.asname and (_is_dunder(node.asname) or node.asname in FORBIDDEN_NAMES):
                return where + f"importing under the name {node.asname!r} is not allowed."
        elif isinstance(node, ast.Global):
            return where + ("'global' is not allowed: rules are pure functions and keep "
                            "what they remember in their state dict.")
    return None


def _top_level_bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    """The statement that last binds each name at the top level of a module."""
    bound: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        bound[node.id] = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                bound[(alias.asname or alias.name).split(".")[0]] = stmt
    return bound


def _positional_range(fn: ast.FunctionDef) -> tuple[int, float, list[str]]:
    """(fewest, most) positional arguments ``fn`` accepts, and its required keyword-only names."""
    args = fn.args
    positional = len(args.posonlyargs) + len(args.args)
    fewest = positional - len(args.defaults)
    most = float("inf") if args.vararg else positional
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return fewest, most, required_kw


def _parameters_from_source(source: str) -> dict[str, tuple[str, ...]]:
    tree = parse_python(source)
    return {name: tuple(a.arg for a in (*stmt.args.posonlyargs, *stmt.args.args))
            for name, stmt in _top_level_bindings(tree).items()
            if isinstance(stmt, ast.FunctionDef)}


@functools.lru_cache(maxsize=64)
def _signatures_from_seeds(space: Any) -> Mapping[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for seed_name, source in space.seeds().items():
        for name, params in _parameters_from_source(source).items():
            if name not in space.required_functions:
                continue
            if name in found and len(found[name]) != len(params):
                raise ValueError(
                    f"space {space.name!r}: the seeds disagree on the number of parameters of "
                    f"{name!r} ({len(found[name])} vs {len(params)} in seed {seed_name!r}); "
                    "declare Space.signatures.")
            found.setdefault(name, params)
    return found


def declared_parameters(signature: str) -> tuple[str, ...]:
    """The parameter names of a declared signature (``"def f(a: int, b) -> float"``)."""
    tree = parse_python(signature.rstrip().rstrip(":") + ": ...")      # under the AST lock
    fn = tree.body[0]
    if not isinstance(fn, ast.FunctionDef):
        raise ValueError(f"a signature is a def line, got {signature!r}")
    return tuple(a.arg for a in (*fn.args.posonlyargs, *fn.args.args))


def expected_signatures(space: Any) -> Mapping[str, tuple[str, ...]]:
    """Parameter names of each required function: from ``space.signatures`` where the
    space declares them, otherwise read from the seed programs (the first seed defining it)."""
    declared = getattr(space, "signatures", None)
    if declared:
        return {name: declared_parameters(text) for name, text in declared.items()}
    return _signatures_from_seeds(space)


def static_check(source: str, space: Any = None) -> CheckResult:
    """Checks ``source`` without running it.

    Args:
      source: the whole program text (the evolve block and what surrounds it).
      space: a ``discover.space.Space``; its ``required_functions`` must be defined at top
        level as plain functions accepting the expected number of positional arguments
        (``expected_signatures``). Where the space has ``allowed_modules``, those replace
        ``ALLOWED_MODULES``. ``None`` checks syntax and safety only.

    Returns:
      ``CheckResult(True)``, or ``CheckResult(False, reason)`` naming the first problem.
    """
    try:
        split_evolve_block(source)
    except ValueError as e:
        return _fail(f"evolve-block markers: {e}")
    try:
        tree = parse_python(source)
    except SyntaxError as e:
        return _fail(f"syntax error at line {e.lineno}: {e.msg}.")
    except ValueError as e:  # e.g. null bytes in the source
        return _fail(f"the source cannot be parsed: {e}.")
    allowed = frozenset(getattr(space, "allowed_modules", None) or ALLOWED_MODULES)
    reason = _forbidden_construct(tree, allowed)
    if reason:
        return _fail(reason)
    if space is None:
        return CheckResult(True)
    bindings = _top_level_bindings(tree)
    signatures = expected_signatures(space)
    for name in space.required_functions:
        stmt = bindings.get(name)
        if stmt is None:
            return _fail(f"the required function {name!r} is not defined at top level.")
        if not isinstance(stmt, ast.FunctionDef):
            return _fail(f"{name!r} must be a plain 'def' function at top level "
                         f"(line {stmt.lineno} binds it otherwise).")
        if name in signatures:
            expected = signatures[name]
            fewest, most, required_kw = _positional_range(stmt)
            if not fewest <= len(expected) <= most or required_kw:
                return _fail(f"{name!r} must accept {len(expected)} positional parameters "
                             f"({', '.join(expected)}), line {stmt.lineno} defines "
                             f"{name}({ast.unparse(stmt.args)}).")
    return CheckResult(True)


def load_candidate(source: str, filename: str = "<candidate>") -> dict[str, Any]:
    """Executes ``source`` in a fresh module namespace and returns that namespace.

    This runs the program's top level (imports, constants, function definitions) in the
    calling process with normal builtins: call it on programs that passed ``static_check``,
    inside the executor's isolated worker where the program is untrusted.
    """
    namespace: dict[str, Any] = {"__name__": "discover_candidate"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the point of this function
    return namespace

