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

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from discover.checks import ALLOWED_MODULES
from discover.program import load_functions
from evaluators.psro import InvalidCandidate, run_psro
from search_spaces.game_space import GOOFSPIEL_4, GOOFSPIEL_5, HELD_OUT_GAMES, TRAIN_GAMES, GameRun, GameSpace
from search_spaces.psro_meta_solvers.adapter import EXPORT
from search_spaces.psro_meta_solvers.contract import DOC, FITNESS_DOC
from search_spaces.psro_meta_solvers.mechanisms import MECHANISMS
from search_spaces.psro_meta_solvers.probe import SOLVER_NAMES, fingerprint
from search_spaces.psro_meta_solvers.scoring import SCORE_START, relative_score, score_checkpoints

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "psro_meta_solvers"
REFERENCE_SEED = "uniform"
DEFAULT_ITERATIONS = 100

TRAIN_TASKS = TRAIN_GAMES
HELD_OUT_TASKS = HELD_OUT_GAMES
# PSRO iterations per game (others: DEFAULT_ITERATIONS). The payoff tables of the
# 3- and 4-player games grow as n^3 and n^4.
TASK_ITERATIONS: Mapping[str, int] = {
    "kuhn_poker(players=3)": 30,
    "kuhn_poker(players=4)": 12,
}

__all__ = ["PsroMetaSolversSpace", "SPACE", "DOC", "MECHANISMS", "SCORE_START", "TRAIN_TASKS",
           "HELD_OUT_TASKS", "TASK_ITERATIONS", "GOOFSPIEL_4", "GOOFSPIEL_5", "load_solvers", "iterations_for",
           "relative_score", "score_checkpoints"]


def iterations_for(task: str) -> int:
    """The default number of PSRO iterations on ``task``."""
    return TASK_ITERATIONS.get(task, DEFAULT_ITERATIONS)


def load_solvers(source: str) -> tuple[dict[str, Callable] | None, list[str]]:
    """Executes ``source`` in a fresh namespace; returns (functions by name, missing names)
    (``discover.program.load_functions``)."""
    return load_functions(source, SOLVER_NAMES)


class PsroMetaSolversSpace(GameSpace):
    """Evolve the training-time and evaluation-time meta-strategy solvers of exact PSRO; the
    game-space harness (``search_spaces.game_space``) with exact PSRO as its ``run``.

    Attributes (beyond ``GameSpace``):
      allowed_modules: the modules a candidate may import (the defaults plus scipy, for
        linear programs).

    Why the fitness is ``balanced_fitness`` rather than the plain mean: PSRO solves the
    small games exactly (exploitability 0 at 4-card Goofspiel), which the 1e-15 floor
    turns into +10 decades or more; a mean is then ruled by who solves Goofspiel first,
    whatever happens on Leduc poker or Liar's Dice.
    """

    name = "psro_meta_solvers"
    doc = DOC
    fitness_doc = FITNESS_DOC
    export_adapter = EXPORT
    required_functions = SOLVER_NAMES
    signatures = {
        "train_meta_solver": "def train_meta_solver(payoffs: Array[n_1, ..., n_P, P], iteration: int, state: dict)"
                             " -> tuple[list[Array[n_p]], dict]",
        "eval_meta_solver": "def eval_meta_solver(payoffs: Array[n_1, ..., n_P, P], iteration: int, state: dict)"
                            " -> tuple[list[Array[n_p]], dict]",
    }
    seeds_dir = SEEDS_DIR
    mechanisms = MECHANISMS
    allowed_modules = tuple(sorted(ALLOWED_MODULES | {"scipy"}))
    reference_seed = REFERENCE_SEED
    score_start = SCORE_START
    iterations = DEFAULT_ITERATIONS
    task_iterations = TASK_ITERATIONS
    reference_cache = "psro_reference"
    engine_modules = ("evaluators.psro", "evaluators.games", "evaluators.best_response")
    harness_modules = ("discover.space", "search_spaces.game_space", "search_spaces.psro_meta_solvers.scoring",
                       *engine_modules)
    invalid_errors = (InvalidCandidate,)

    def run(self, functions: Mapping[str, Callable], task: str, iterations: int,
            checkpoints: Sequence[int]) -> GameRun:
        """Exact PSRO with the candidate's two meta-solvers (NumPy: the device is the CPU)."""
        run = run_psro(functions["train_meta_solver"], functions["eval_meta_solver"], task, iterations,
                       checkpoints)
        return GameRun(curve=run.curve, metrics={"iterations": iterations,
                                                 "meta_solver_seconds": run.meta_solver_time})

    def probe(self, namespace: Mapping[str, Any]) -> np.ndarray:
        """The candidate's mixtures on fixed small payoff tensors (two and three players,
        several iterations; see ``search_spaces.psro_meta_solvers.probe``), a flat float64
        vector of 164 numbers.

        Raises:
          ValueError: a solver is missing or breaks the contract on the probe inputs.
        """
        return fingerprint(namespace)


SPACE = PsroMetaSolversSpace()
