"""The psro_meta_solvers search space: evolve PSRO's training- and evaluation-time
meta-strategy solvers on exact game arrays.

A candidate defines ``train_meta_solver`` and ``eval_meta_solver`` (payoff tensor
``[n_1, ..., n_P, P]`` in, one mixture per player out; the text the mutator reads is
``DOC``). They are run by the exact PSRO loop ``evaluators.psro.run_psro`` (exact payoffs,
exact best responses with uniform tie-breaking, exact exploitability) and scored by their
anytime exploitability relative to the uniform seed, i.e. fictitious play (``scoring``).
Seeds in ``seeds/psro_meta_solvers``: uniform, Nash by linear programming, regret
matching, projected replicator dynamics, α-Rank and SHOR-PSRO.

Games follow Li, Schultz, Hennes & Lanctot, "Discovering Multiagent Learning Algorithms
with Large Language Models" (2026, arXiv:2602.16928), who evolve the same two solvers and
report exploitability after 100 PSRO iterations. Iteration budgets per game
(``TASK_ITERATIONS``) keep one evaluation within seconds to tens of seconds on a CPU:
100 for the two-player games; 30 for 3-player Kuhn poker and 12 for 4-player Kuhn poker,
whose payoff tables hold n^3 and n^4 entries per player (31^3 and 13^4), which the solvers
iterate over thousands of times per call. 3-player Leduc poker (1.8 million nodes) is left
out: one best response there takes seconds.

Example::

    from search_spaces.psro_meta_solvers import SPACE
    result = SPACE.evaluate(SPACE.seeds()["nash"], "leduc_poker")
    result.metrics["score"], result.metrics["final_exploitability"]
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from discover.checks import ALLOWED_MODULES
from discover.program import load_functions
from discover.space import CPU, INVALID, OK, Space, TaskResult
from evaluators.psro import InvalidCandidate, log_checkpoints, run_psro
from search_spaces.cfr_variants import task_label as _game_label
from search_spaces.cfr_variants.scoring import balanced_fitness
from search_spaces.psro_meta_solvers.adapter import EXPORT
from search_spaces.psro_meta_solvers.contract import DOC, FITNESS_DOC
from search_spaces.psro_meta_solvers.mechanisms import MECHANISMS
from search_spaces.psro_meta_solvers.probe import SOLVER_NAMES, fingerprint
from search_spaces.psro_meta_solvers.scoring import (
    SCORE_START, reference_curve, relative_score, score_checkpoints)

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "psro_meta_solvers"
REFERENCE_SEED = "uniform"
DEFAULT_ITERATIONS = 100

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
# PSRO iterations per game (others: DEFAULT_ITERATIONS). The payoff tables of the
# 3- and 4-player games grow as n^3 and n^4.
TASK_ITERATIONS: Mapping[str, int] = {
    "kuhn_poker(players=3)": 30,
    "kuhn_poker(players=4)": 12,
}

__all__ = ["PsroMetaSolversSpace", "SPACE", "DOC", "MECHANISMS", "SCORE_START", "TRAIN_TASKS",
           "HELD_OUT_TASKS", "TASK_ITERATIONS", "load_solvers", "iterations_for"]


def iterations_for(task: str) -> int:
    """The default number of PSRO iterations on ``task``."""
    return TASK_ITERATIONS.get(task, DEFAULT_ITERATIONS)


def load_solvers(source: str) -> tuple[dict[str, Callable] | None, list[str]]:
    """Executes ``source`` in a fresh namespace; returns (functions by name, missing names)
    (``discover.program.load_functions``)."""
    return load_functions(source, SOLVER_NAMES)


class PsroMetaSolversSpace(Space):
    """Evolve the training-time and evaluation-time meta-strategy solvers of exact PSRO.

    Attributes (beyond ``discover.space.Space``):
      reference_seed: the seed every score is relative to (uniform, i.e. fictitious play).
      task_iterations: PSRO iterations per game where it differs from 100.
      allowed_modules: the modules a candidate may import (the defaults plus scipy, for
        linear programs).
    """

    name = "psro_meta_solvers"
    doc = DOC
    fitness_doc = FITNESS_DOC
    export_adapter = EXPORT
    required_functions = SOLVER_NAMES
    signatures = {"train_meta_solver": ("payoffs", "iteration", "state"),
                  "eval_meta_solver": ("payoffs", "iteration", "state")}
    seeds_dir = SEEDS_DIR
    train_tasks = TRAIN_TASKS
    held_out_tasks = HELD_OUT_TASKS
    stochastic = False
    mechanisms = MECHANISMS
    allowed_modules = tuple(sorted(ALLOWED_MODULES | {"scipy"}))
    reference_seed = REFERENCE_SEED
    task_iterations = TASK_ITERATIONS

    def _reference(self) -> tuple[dict[str, Callable], str]:
        source = (Path(self.seeds_dir) / f"{self.reference_seed}.py").read_text()
        solvers, missing = load_solvers(source)
        if solvers is None:
            raise RuntimeError(f"the reference seed {self.reference_seed!r} lacks {missing}")
        return solvers, source

    def evaluate(self, source: str, task: str, seed: int = 0, iterations: int | None = None,
                 **options: Any) -> TaskResult:
        """Runs exact PSRO with the candidate's solvers on the game ``task``.

        Args:
          source: the candidate module's text.
          task: an OpenSpiel game string.
          seed: unused (exact PSRO is deterministic); kept for the interface.
          iterations: PSRO iterations (default ``iterations_for(task)``); the checkpoints
            are ``log_checkpoints(iterations)``.

        Returns:
          ``TaskResult(status="ok", metrics={"score", "final_exploitability",
          "uniform_final_exploitability", "iterations", "meta_solver_seconds"},
          curve=[[t, exploitability], ...])``; ``status="invalid"`` with the reason when
          the candidate lacks a function or breaks the contract while running. Other
          exceptions (syntax errors, exceptions the candidate raises) propagate.
        """
        del seed, options
        begin = time.perf_counter()
        solvers, missing = load_solvers(source)
        if solvers is None:
            return TaskResult.failure(
                INVALID, f"the candidate does not define {', '.join(missing)}",
                time.perf_counter() - begin)
        iterations = int(iterations) if iterations is not None else iterations_for(task)
        checkpoints = log_checkpoints(iterations)
        try:
            run = run_psro(solvers["train_meta_solver"], solvers["eval_meta_solver"], task,
                           iterations, checkpoints)
        except InvalidCandidate as e:
            return TaskResult.failure(INVALID, str(e), time.perf_counter() - begin)
        ref, ref_source = self._reference()
        reference = reference_curve(ref["train_meta_solver"], ref["eval_meta_solver"],
                                    ref_source, task, iterations, checkpoints)
        score = relative_score(run.curve, reference, score_checkpoints(iterations))
        metrics = {
            "score": score,
            "final_exploitability": float(run.curve[-1][1]),
            "uniform_final_exploitability": float(reference[-1][1]),
            "iterations": iterations,
            "meta_solver_seconds": run.meta_solver_time,
        }
        return TaskResult(status=OK, metrics=metrics,
                          curve=[[int(t), float(e)] for t, e in run.curve],
                          wall_time=time.perf_counter() - begin, device=CPU)    # NumPy

    def probe(self, namespace: Mapping[str, Any]) -> np.ndarray:
        """The candidate's mixtures on fixed small payoff tensors (two and three players,
        several iterations; see ``search_spaces.psro_meta_solvers.probe``), a flat float64
        vector of 164 numbers.

        Raises:
          ValueError: a solver is missing or breaks the contract on the probe inputs.
        """
        return fingerprint(namespace)

    def score(self, results) -> float:
        """The program's fitness over its games: ``balanced_fitness`` of the per-game
        scores (each game's gain capped at one decade, plus the weakest game), as for
        ``cfr_variants``; -inf if any game failed.

        Why not the plain mean: PSRO solves the small games exactly (exploitability 0 at
        4-card Goofspiel), which the 1e-15 floor turns into +10 decades or more; a mean is
        then ruled by who solves Goofspiel first, whatever happens on Leduc poker or
        Liar's Dice.
        """
        from discover.space import aggregate_score
        if not math.isfinite(aggregate_score(results)):
            return -math.inf
        return balanced_fitness([r.metrics["score"] for r in results])

    def task_label(self, task: str) -> str:
        """``kuhn_poker(players=3)`` → ``kuhn-3p``, the Goofspiel wrapper → ``goofspiel-4``,
        ``liars_dice(numdice=1,dice_sides=5)`` → ``liars_dice-5``."""
        return _game_label(task)


SPACE = PsroMetaSolversSpace()
