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

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from discover.program import load_functions
from discover.space import CPU, INVALID, OK, Space, TaskResult, jax_device
from evaluators.cfr import InvalidCandidate, log_checkpoints, run_cfr
from search_spaces.cfr_variants.adapter import EXPORT
from search_spaces.cfr_variants.contract import DOC, FITNESS_DOC
from search_spaces.cfr_variants.mechanisms import MECHANISMS
from search_spaces.cfr_variants.probe import RULE_NAMES, fingerprint
from search_spaces.cfr_variants.scoring import (
    SCORE_START, balanced_fitness, reference_curve, relative_score, score_checkpoints)

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "cfr_variants"
REFERENCE_SEED = "cfr_plus"
DEFAULT_ITERATIONS = 1000

GOOFSPIEL_4 = "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=4,points_order=descending))"
GOOFSPIEL_5 = "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=5,points_order=descending))"

TRAIN_TASKS = (
    "kuhn_poker(players=3)",
    "leduc_poker",
    GOOFSPIEL_4,
    "liars_dice(numdice=1,dice_sides=5)",
)
HELD_OUT_TASKS = (
    "kuhn_poker(players=4)",
    GOOFSPIEL_5,
    "liars_dice(numdice=1,dice_sides=6)",
)
# 1.8 million nodes: evaluated only where time allows.
OPTIONAL_HELD_OUT_TASKS = ("leduc_poker(players=3)",)

__all__ = ["CfrVariantsSpace", "SPACE", "DOC", "MECHANISMS", "SCORE_START", "TRAIN_TASKS",
           "HELD_OUT_TASKS", "OPTIONAL_HELD_OUT_TASKS", "load_rules", "score_checkpoints",
           "relative_score"]


def load_rules(source: str) -> tuple[dict[str, Callable] | None, list[str]]:
    """Executes ``source`` in a fresh namespace; returns (functions by name, missing names)
    (``discover.program.load_functions``)."""
    return load_functions(source, RULE_NAMES)


class CfrVariantsSpace(Space):
    """Evolve CFR's regret accumulation, policy derivation and policy averaging.

    Attributes (beyond ``discover.space.Space``):
      optional_held_out_tasks: held-out games too large to evaluate routinely.
      reference_seed: the seed every score is relative to (CFR+).
    """

    name = "cfr_variants"
    doc = DOC
    fitness_doc = FITNESS_DOC
    export_adapter = EXPORT
    required_functions = RULE_NAMES
    seeds_dir = SEEDS_DIR
    train_tasks = TRAIN_TASKS
    held_out_tasks = HELD_OUT_TASKS
    optional_held_out_tasks = OPTIONAL_HELD_OUT_TASKS
    stochastic = False
    mechanisms = MECHANISMS
    reference_seed = REFERENCE_SEED

    def _reference_rules(self) -> tuple[dict[str, Callable], str]:
        source = (Path(self.seeds_dir) / f"{self.reference_seed}.py").read_text()
        rules, missing = load_rules(source)
        if rules is None:
            raise RuntimeError(f"the reference seed {self.reference_seed!r} lacks {missing}")
        return rules, source

    def evaluate(self, source: str, task: str, seed: int = 0, iterations: int = DEFAULT_ITERATIONS,
                 backend: str = "auto", **options: Any) -> TaskResult:
        """Runs the candidate for ``iterations`` CFR iterations on the game ``task``.

        Args:
          source: the candidate module's text.
          task: an OpenSpiel game string.
          seed: unused (CFR here is deterministic); kept for the interface.
          iterations: CFR iterations (the score's checkpoints scale with it).
          backend: "auto" (JAX, NumPy if the candidate cannot be traced), "jax", "numpy".

        Returns:
          ``TaskResult(status="ok", metrics={"score", "final_exploitability",
          "cfr_plus_final_exploitability", "backend"}, curve=[[t, exploitability], ...])``
          on ``log_checkpoints(iterations)``; ``status="invalid"`` with the reason when the
          candidate lacks a function or breaks the contract while running.
          Other exceptions (syntax errors, exceptions the candidate raises) propagate.
        """
        del seed, options
        begin = time.perf_counter()
        rules, missing = load_rules(source)
        if rules is None:
            return TaskResult.failure(
                INVALID, f"the candidate does not define {', '.join(missing)}",
                time.perf_counter() - begin)
        checkpoints = log_checkpoints(iterations)
        try:
            run = run_cfr(rules, task, iterations, checkpoints, backend=backend)
        except InvalidCandidate as e:
            return TaskResult.failure(INVALID, str(e), time.perf_counter() - begin)
        ref_rules, ref_source = self._reference_rules()
        reference = reference_curve(ref_rules, ref_source, task, iterations, checkpoints, run.backend)
        score = relative_score(run.curve, reference, score_checkpoints(iterations))
        metrics = {
            "score": score,
            "final_exploitability": float(run.curve[-1][1]),
            "cfr_plus_final_exploitability": float(reference[-1][1]),
            "backend": run.backend,
        }
        return TaskResult(status=OK, metrics=metrics,
                          curve=[[int(t), float(e)] for t, e in run.curve],
                          wall_time=time.perf_counter() - begin,
                          device=CPU if run.backend == "numpy" else jax_device())

    def probe(self, namespace: Mapping[str, Any]) -> np.ndarray:
        """The candidate's policies and average policies on fixed synthetic inputs (see
        ``search_spaces.cfr_variants.probe``), a flat float64 vector of 336 numbers.

        Raises:
          ValueError: a function is missing, or an output has the wrong shape or is NaN.
        """
        return fingerprint(namespace)

    def score(self, results) -> float:
        """The program's fitness over its tasks: ``scoring.balanced_fitness`` of the
        per-game scores; -inf if any task failed."""
        from discover.space import aggregate_score
        if not math.isfinite(aggregate_score(results)):
            return -math.inf
        return balanced_fitness([r.metrics["score"] for r in results])

    def task_label(self, task: str) -> str:
        """``kuhn_poker(players=3)`` → ``kuhn-3p``, the Goofspiel wrapper → ``goofspiel-4``,
        ``liars_dice(numdice=1,dice_sides=5)`` → ``liars_dice-5``."""
        return task_label(task)


def task_label(task: str) -> str:
    import re
    params = dict(re.findall(r"(\w+)=(\w+)", task))
    if "goofspiel" in task:
        return f"goofspiel-{params.get('num_cards', '?')}"
    base = re.sub(r"\(.*", "", task).replace("_poker", "")
    if "players" in params:
        return f"{base}-{params['players']}p"
    if base == "liars_dice":
        return f"liars_dice-{params.get('dice_sides', '6')}"
    return base


SPACE = CfrVariantsSpace()
