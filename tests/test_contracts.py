"""Every registered space tells the mutator how its score works in words that match what
its score computes."""

import math
import re

import numpy as np
import pytest

from discover.space import TaskResult
from discover.spaces import space_catalogue

SPACES = [e.space for e in space_catalogue() if e.space is not None]


def expected_fitness(text: str, scores: list[float]) -> float:
    """The fitness the paragraph describes, computed from its own words."""
    capped = re.search(r"fitness = mean over games of min\(s_g, ([0-9.]+)\)  \+  min over games of s_g", text)
    if capped:
        cap = float(capped.group(1))
        return sum(min(s, cap) for s in scores) / len(scores) + min(scores)
    if "fitness is the mean of its tasks' scores" in text:
        return sum(scores) / len(scores)
    raise AssertionError(f"the fitness paragraph names no formula this test knows: {text!r}")


@pytest.mark.parametrize("space", SPACES, ids=[s.name for s in SPACES])
def test_the_fitness_the_prompt_describes_is_the_one_the_space_computes(space):
    assert space.fitness_doc and space.fitness_doc in space.doc
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = [float(x) for x in rng.normal(0.0, 2.0, len(space.train_tasks))]
        results = [TaskResult(status="ok", metrics={"score": s}) for s in scores]
        assert space.score(results) == pytest.approx(expected_fitness(space.fitness_doc, scores), abs=1e-12)
    failed = [TaskResult(status="ok", metrics={"score": 0.5})] * (len(space.train_tasks) - 1) + [
        TaskResult.failure("error", "boom")]
    assert space.score(failed) == -math.inf and "-infinity" in space.fitness_doc


def test_the_engine_names_no_space():
    """No string in discover/ is a built-in space's name (docstrings and --help examples
    mention them inside longer text), so a third-party space is the engine's equal."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    names = {p.name for p in (root / "search_spaces").iterdir() if (p / "__init__.py").exists()}
    assert {"cfr_variants", "psro_meta_solvers"} <= names
    found = []
    for path in sorted((root / "discover").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.value!r}")
    assert not found


def test_defaults_come_from_the_registry_in_its_order():
    from discover.studies.meta_train import is_drift_space
    from discover.spaces import _entry_points, default_space_name, get_space
    order = list(_entry_points())
    assert default_space_name() == order[0]
    drift = default_space_name(is_drift_space)
    assert is_drift_space(get_space(drift))
    assert all(not is_drift_space(get_space(n)) for n in order[:order.index(drift)])
