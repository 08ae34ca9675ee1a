"""The engine's import graph has no cycle, counting imports made inside functions."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the project modules it imports (anywhere in its file). Importing a
    submodule is not counted as importing its parent packages."""
    base = ROOT / package
    files = {}
    for path in base.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                origin = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    origin = ".".join(up + ([origin] if origin else []))
                subs = [f"{origin}.{a.name}" for a in node.names if f"{origin}.{a.name}" in files]
                targets = subs if len(subs) == len(node.names) else [origin, *subs]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_engine():
    graph = import_graph("discover")
    assert "discover.spaces" in graph["discover.isolation.executor"]     # an import inside a function counts too
    assert cycles(graph) == []


def test_engine_files_stay_small_and_long_files_elsewhere_say_why():
    too_long = [str(p.relative_to(ROOT)) for p in (ROOT / "discover").rglob("*.py")
                if len(p.read_text().splitlines()) > 500]
    assert too_long == []
    unexplained = []
    for folder in ("evaluators", "search_spaces", "seeds", "tests", "benchmarks", "scripts"):
        for p in (ROOT / folder).rglob("*.py"):
            if len(p.read_text().splitlines()) > 400:
                doc = ast.get_docstring(ast.parse(p.read_text())) or ""
                if "Why one file:" not in doc:
                    unexplained.append(str(p.relative_to(ROOT)))
    assert unexplained == []
