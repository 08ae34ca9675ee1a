"""The cfr_variants search space: evolve the update rules of counterfactual regret minimisation.

A candidate defines four functions (``docs/cfr_candidate_api.md``; the text the mutator
reads is ``DOC``): ``init_state``, ``update_regret``, ``derive_policy``, ``update_average``.
They are run by the vectorised CFR engine (``evaluators.cfr.run_cfr``) on OpenSpiel games
and scored by their anytime exploitability relative to CFR+ (``scoring``). Seeds are the
published algorithms in ``seeds/cfr_variants``: CFR, CFR+, Linear CFR, DCFR, PCFR+, PDCFR+
and VAD-CFR.

The train and held-out games follow Li, Schultz, Hennes & Lanctot, "Discovering Multiagent
Learning Algorithms with Large Language Models" (2026, arXiv:2602.16928).

Example::

    from search_spaces.cfr_variants import SPACE
    result = SPACE.evaluate(SPACE.seeds()["dcfr"], "leduc_poker")
    result.metrics["score"], result.metrics["final_exploitability"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from discover.program import load_functions
from discover.space import CPU, jax_device
from evaluators.cfr import InvalidCandidate, run_cfr
from search_spaces.cfr_variants.adapter import EXPORT
from search_spaces.cfr_variants.contract import DOC, FITNESS_DOC
from search_spaces.cfr_variants.mechanisms import MECHANISMS
from search_spaces.cfr_variants.probe import RULE_NAMES, fingerprint
from search_spaces.cfr_variants.scoring import SCORE_START, score_checkpoints
from search_spaces.game_space import (GOOFSPIEL_4, GOOFSPIEL_5, HELD_OUT_GAMES, TRAIN_GAMES, GameRun, GameSpace,
                                      balanced_fitness, relative_score, task_label)

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "cfr_variants"
REFERENCE_SEED = "cfr_plus"
DEFAULT_ITERATIONS = 1000

TRAIN_TASKS = TRAIN_GAMES
HELD_OUT_TASKS = HELD_OUT_GAMES
# 1.8 million nodes: evaluated only where time allows.
OPTIONAL_HELD_OUT_TASKS = ("leduc_poker(players=3)",)

__all__ = ["CfrVariantsSpace", "SPACE", "DOC", "MECHANISMS", "SCORE_START", "TRAIN_TASKS",
           "HELD_OUT_TASKS", "OPTIONAL_HELD_OUT_TASKS", "GOOFSPIEL_4", "GOOFSPIEL_5", "load_rules",
           "score_checkpoints", "relative_score", "balanced_fitness", "task_label"]


def load_rules(source: str) -> tuple[dict[str, Callable] | None, list[str]]:
    """Executes ``source`` in a fresh namespace; returns (functions by name, missing names)
    (``discover.program.load_functions``)."""
    return load_functions(source, RULE_NAMES)


class CfrVariantsSpace(GameSpace):
    """Evolve CFR's regret accumulation, policy derivation and policy averaging; the
    game-space harness (``search_spaces.game_space``) with the vectorised CFR engine as
    its ``run``.

    Attributes (beyond ``GameSpace``):
      optional_held_out_tasks: held-out games too large to evaluate routinely.

    Example::

        result = SPACE.evaluate(SPACE.seeds()["dcfr"], "leduc_poker", iterations=100, backend="numpy")
        result.metrics["score"], result.metrics["final_exploitability"], result.metrics["backend"]
    """

    name = "cfr_variants"
    doc = DOC
    fitness_doc = FITNESS_DOC
    export_adapter = EXPORT
    required_functions = RULE_NAMES
    signatures = {
        "init_state": "def init_state(num_infosets: int, num_actions: int, xp) -> dict",
        "update_regret": "def update_regret(cum_regret: Array[I, A], inst_regret: Array[I, A], t: float, state: dict, "
                         "xp) -> tuple[Array[I, A], dict]",
        "derive_policy": "def derive_policy(cum_regret: Array[I, A], inst_regret: Array[I, A], legal: Array[I, A], "
                         "t: float, state: dict, xp) -> tuple[Array[I, A], dict]",
        "update_average": "def update_average(cum_policy: Array[I, A], policy: Array[I, A], reach: Array[I], t: float, "
                          "state: dict, xp) -> tuple[Array[I, A], dict]",
    }
    seeds_dir = SEEDS_DIR
    optional_held_out_tasks = OPTIONAL_HELD_OUT_TASKS
    mechanisms = MECHANISMS
    reference_seed = REFERENCE_SEED
    score_start = SCORE_START
    iterations = DEFAULT_ITERATIONS
    reference_cache = "cfr_reference"
    engine_modules = ("evaluators.cfr", "evaluators.games", "evaluators.best_response")
    harness_modules = ("discover.space", "search_spaces.game_space", "search_spaces.cfr_variants.scoring",
                       *engine_modules)
    invalid_errors = (InvalidCandidate,)

    def run(self, functions: Mapping[str, Callable], task: str, iterations: int, checkpoints: Sequence[int],
            backend: str = "auto") -> GameRun:
        """CFR with the candidate's rules for ``iterations`` iterations.

        Args:
          backend: "auto" (JAX, NumPy if the candidate cannot be traced or NumPy is faster
            for the run), "jax", "numpy". The reference (CFR+) runs on the backend the
            candidate got, so both curves come from the same arithmetic.
        """
        run = run_cfr(dict(functions), task, iterations, checkpoints, backend=backend)
        return GameRun(curve=run.curve, same_path={"backend": run.backend}, metrics={"backend": run.backend},
                       device=CPU if run.backend == "numpy" else jax_device())

    def _reference_rules(self) -> tuple[dict[str, Callable], str]:
        return self.reference_functions()

    def probe(self, namespace: Mapping[str, Any]) -> np.ndarray:
        """The candidate's policies and average policies on fixed synthetic inputs (see
        ``search_spaces.cfr_variants.probe``), a flat float64 vector of 336 numbers.

        Raises:
          ValueError: a function is missing, or an output has the wrong shape or is NaN.
        """
        return fingerprint(namespace)


SPACE = CfrVariantsSpace()
