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
