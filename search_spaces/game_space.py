"""The family of game spaces: a candidate's rules run by an exact solver on OpenSpiel games,
scored by anytime exploitability relative to a reference seed.

The harness is written once here; a leaf space (``cfr_variants``, ``psro_meta_solvers``)
fills one hook, ``run``, and declares its functions, reference seed and cache folder.
Evaluating one candidate on one game (``GameSpace.evaluate``):

1. execute the source in a fresh namespace and fetch the required functions (a missing
   one is an ``invalid`` result naming it);
2. run the leaf's solver with them for T iterations (``run``), recording the
   exploitability of its output at the log-spaced checkpoints ``log_checkpoints(T)``; a
   contract violation (``invalid_errors``) is an ``invalid`` result with its reason;
3. take the reference seed's curve on the same game, iterations and arithmetic (the run's
   ``same_path``, e.g. the CFR backend), computed once and cached on disk;
4. score = mean over the checkpoints from ``score_start`` on of
   log10(max(e_ref, 1e-15) / max(e, 1e-15)) (``relative_score``): 0 matches the
   reference, +1 is ten times less exploitable.

A program's fitness over its games is ``balanced_fitness``: each game's gain capped at one
decade, plus the weakest game; the prompt's paragraph about it is rendered from the same
constants (``balanced_fitness_doc``).

The train and held-out games follow Li, Schultz, Hennes & Lanctot, "Discovering Multiagent
Learning Algorithms with Large Language Models" (2026, arXiv:2602.16928).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from discover.program import load_functions
from discover.space import CPU, INVALID, OK, Space, TaskResult

GOOFSPIEL_4 = "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=4,points_order=descending))"
GOOFSPIEL_5 = "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=5,points_order=descending))"
TRAIN_GAMES = ("kuhn_poker(players=3)", "leduc_poker", GOOFSPIEL_4, "liars_dice(numdice=1,dice_sides=5)")
HELD_OUT_GAMES = ("kuhn_poker(players=4)", GOOFSPIEL_5, "liars_dice(numdice=1,dice_sides=6)")
TRAIN_GAME_NAMES = ("3-player Kuhn poker, Leduc poker, 4-card imperfect-information Goofspiel (turn-based), "
                    "Liar's Dice with one 5-sided die")

GAIN_CAP = 1.0                # decades of improvement a single game can contribute to the fitness
EXPLOITABILITY_FLOOR = 1e-15  # exploitabilities are floored here before taking ratios


# ----------------------------------------------------------------------------- scores
def score_checkpoints(iterations: int, start: int) -> list[int]:
    """The checkpoints a score averages over: ``log_checkpoints(iterations)`` from ``start``
    on (just ``[iterations]`` if ``iterations < start``)."""
    from evaluators.cfr import log_checkpoints
    first = min(int(start), int(iterations))
    return [c for c in log_checkpoints(iterations) if c >= first]


def relative_score(curve: Sequence[Sequence[float]], reference: Sequence[Sequence[float]],
                   checkpoints: Sequence[int]) -> float:
    """Mean over ``checkpoints`` of log10(reference / candidate exploitability).

    Args:
      curve, reference: ``[(iteration, exploitability), ...]`` containing every checkpoint.
      checkpoints: the iterations to average over (non-empty).

    Raises:
      ValueError: a checkpoint is missing from either curve, or there are none.
    """
    if not checkpoints:
        raise ValueError("relative_score needs at least one checkpoint.")
    ours = {int(t): float(e) for t, e in curve}
    theirs = {int(t): float(e) for t, e in reference}
    missing = [c for c in checkpoints if c not in ours or c not in theirs]
    if missing:
        raise ValueError(f"checkpoints {missing} are missing from a curve.")
    terms = [math.log10(max(theirs[c], EXPLOITABILITY_FLOOR) / max(ours[c], EXPLOITABILITY_FLOOR))
             for c in checkpoints]
    return sum(terms) / len(terms)


def balanced_fitness(game_scores: Sequence[float]) -> float:
    """The program's fitness from its per-game scores ``s_g``:

        mean_g min(s_g, GAIN_CAP) + min_g s_g

    Why not the plain mean: the train games differ wildly in how far below the reference a
    rule can push exploitability (on 4-card Goofspiel predictive CFR rules reach 1e-15,
    eleven decades under CFR+, and PSRO solves it exactly, while Leduc moves by fractions
    of a decade), so a mean is ruled by the smallest games. Capping each game's gain at one
    decade and adding the weakest game makes the fitness prefer rules that beat the
    reference everywhere. It is 0 for the reference itself, and -inf when any game is -inf.
    """
    scores = [float(s) for s in game_scores]
    if not scores or any(math.isnan(s) for s in scores):
        return -math.inf
    return sum(min(s, GAIN_CAP) for s in scores) / len(scores) + min(scores)


def balanced_fitness_doc(games: str, reference: str) -> str:
    """The paragraph the mutator reads about ``balanced_fitness``, rendered from its
    constants, so the prompt and the score cannot drift apart. ``games`` names the
    training games, ``reference`` the program a game score of 0 matches."""
    intro = textwrap.fill(f"The program's fitness combines the game scores s_g of the training games "
                          f"({games}) so that only a robust improvement wins:", 92)
    outro = textwrap.fill(f"A game's gain counts up to {GAIN_CAP:g} decade(s) (being 10^10 times better on a "
                          "tiny game buys nothing more), and the weakest game counts twice: a program that is "
                          f"worse than {reference} on any game pays for it directly. A program that fails on "
                          "any game has fitness -infinity.", 92)
    return (f"{intro}\n\n    fitness = mean over games of min(s_g, {GAIN_CAP:g})  +  min over games of s_g"
            f"\n\n{outro}")


def task_label(task: str) -> str:
    """``kuhn_poker(players=3)`` → ``kuhn-3p``, the Goofspiel wrapper → ``goofspiel-4``,
    ``liars_dice(numdice=1,dice_sides=5)`` → ``liars_dice-5``."""
    params = dict(re.findall(r"(\w+)=(\w+)", task))
    if "goofspiel" in task:
        return f"goofspiel-{params.get('num_cards', '?')}"
    base = re.sub(r"\(.*", "", task).replace("_poker", "")
    if "players" in params:
        return f"{base}-{params['players']}p"
    if base == "liars_dice":
        return f"liars_dice-{params.get('dice_sides', '6')}"
    return base


# ----------------------------------------------------------------------------- cached curves
def read_cached_curve(path: Path, key: dict) -> list[tuple[int, float]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != key:
        return None
    return [(int(t), float(e)) for t, e in data["curve"]]


def write_cached_curve(path: Path, key: dict, curve: Sequence[tuple[int, float]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "curve": [[t, e] for t, e in curve]}, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    except OSError:
        pass  # a read-only cache only costs recomputing the curve next time


# ----------------------------------------------------------------------------- the family
@dataclasses.dataclass(frozen=True)
class GameRun:
    """What a leaf's ``run`` returns.

    Attributes:
      curve: ``[(iteration, exploitability), ...]`` at the checkpoints, the last at T.
      same_path: keyword options that make another program's run take the same arithmetic
        (the CFR backend); the reference curve is computed with them and keyed by them.
      metrics: extra metrics of the evaluation (e.g. the backend, solver seconds).
      device: where it computed (``discover.space.describe_device``).
    """

    curve: Sequence[tuple[int, float]]
    same_path: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    device: str = CPU


class GameSpace(Space):
    """Base of the game spaces (module docstring). A leaf sets ``name``, ``doc``,
    ``required_functions``, ``seeds_dir``, ``reference_seed``, ``score_start``,
    ``reference_cache``, ``engine_modules`` and ``invalid_errors``, and implements ``run``.

    Attributes:
      score_start: the first checkpoint that counts in the score.
      reference_cache: the folder, beside the game arrays' cache, of the cached reference curves.
      engine_modules: names of the modules whose source produces the curves; their digest is
        part of the cache key (a change in summation order changes late exploitabilities).
      invalid_errors: the exceptions ``run`` raises for a contract violation.
      iterations, task_iterations: T by default, and per game where it differs.
    """

    train_tasks = TRAIN_GAMES
    held_out_tasks = HELD_OUT_GAMES
    stochastic = False
    score_start: int = 10
    reference_cache: str = "reference"
    engine_modules: tuple[str, ...] = ("evaluators.games", "evaluators.best_response")
    invalid_errors: tuple[type[BaseException], ...] = ()
    iterations: int = 100
    task_iterations: Mapping[str, int] = {}
    _curves: ClassVar[dict[str, list[tuple[int, float]]]] = {}

    # -- the hook
    def run(self, functions: Mapping[str, Callable], task: str, iterations: int, checkpoints: Sequence[int],
            **options: Any) -> GameRun:
        """Runs the leaf's solver with ``functions`` on game ``task``."""
        raise NotImplementedError

    def default_iterations(self, task: str) -> int:
        """T on ``task`` unless the evaluation sets it: ``task_iterations``, else ``iterations``."""
        return int(self.task_iterations.get(task, self.iterations))

    # -- the harness
    def evaluate(self, source: str, task: str, seed: int = 0, iterations: int | None = None,
                 **options: Any) -> TaskResult:
        """Runs the candidate on the game ``task`` and scores it against the reference seed.

        Args:
          source: the candidate module's text.
          task: an OpenSpiel game string.
          seed: unused (the solvers are deterministic); kept for the interface.
          iterations: T (default ``default_iterations(task)``); the checkpoints are
            ``log_checkpoints(T)``.
          options: the leaf's ``run`` options (an unknown one is an error).

        Returns:
          ``TaskResult(status="ok", metrics={"score", "final_exploitability",
          "<reference>_final_exploitability", ...the run's metrics}, curve=[[t, e], ...])``;
          ``status="invalid"`` with the reason when the candidate lacks a function or breaks
          the contract while running. Other exceptions (syntax errors, exceptions the
          candidate raises) propagate.
        """
        del seed
        begin = time.perf_counter()
        functions, missing = load_functions(source, self.required_functions)
        if functions is None:
            return TaskResult.failure(INVALID, f"the candidate does not define {', '.join(missing)}",
                                      time.perf_counter() - begin)
        iterations = self.default_iterations(task) if iterations is None else int(iterations)
        from evaluators.cfr import log_checkpoints
        checkpoints = log_checkpoints(iterations)
        try:
            run = self.run(functions, task, iterations, checkpoints, **options)
        except self.invalid_errors as e:
            return TaskResult.failure(INVALID, str(e), time.perf_counter() - begin)
        reference = self.reference_curve(task, iterations, checkpoints, run.same_path)
        metrics = {
            "score": relative_score(run.curve, reference, score_checkpoints(iterations, self.score_start)),
            "final_exploitability": float(run.curve[-1][1]),
            f"{self.reference_seed}_final_exploitability": float(reference[-1][1]),
            **run.metrics,
        }
        return TaskResult(status=OK, metrics=metrics, curve=[[int(t), float(e)] for t, e in run.curve],
                          wall_time=time.perf_counter() - begin, device=run.device)

    def score(self, results: Sequence[TaskResult]) -> float:
        """The program's fitness over its games: ``balanced_fitness`` of the per-game scores;
        -inf if any game failed."""
        from discover.space import aggregate_score
        if not math.isfinite(aggregate_score(results)):
            return -math.inf
        return balanced_fitness([r.metrics["score"] for r in results])

    def task_label(self, task: str) -> str:
        return task_label(task)

    # -- the reference
    def reference_functions(self) -> tuple[dict[str, Callable], str]:
        """The reference seed's functions and source."""
        source = (Path(self.seeds_dir) / f"{self.reference_seed}.py").read_text()
        functions, missing = load_functions(source, self.required_functions)
        if functions is None:
            raise RuntimeError(f"the reference seed {self.reference_seed!r} lacks {missing}")
        return functions, source

    def reference_dir(self) -> Path:
        from evaluators.games import cache_dir
        return cache_dir().parent / self.reference_cache

    def _engine_digest(self) -> str:
        import importlib
        digest = hashlib.sha256()
        for name in self.engine_modules:
            digest.update(Path(importlib.import_module(name).__file__).read_bytes())
        return digest.hexdigest()

    def reference_curve(self, task: str, iterations: int, checkpoints: Sequence[int],
                        same_path: Mapping[str, Any] | None = None) -> list[tuple[int, float]]:
        """The reference seed's exploitability curve on ``task``, computed once per (game,
        iterations, checkpoints, arithmetic, OpenSpiel version, reference source, engine
        source) and cached in this process and on disk (``reference_dir()``)."""
        import pyspiel

        from evaluators.games import canonical_game_string
        same_path = dict(same_path or {})
        functions, source = self.reference_functions()
        key = {"space": self.name, "game": canonical_game_string(task), "iterations": int(iterations),
               "checkpoints": [int(c) for c in checkpoints], **{k: same_path[k] for k in sorted(same_path)},
               "openspiel": pyspiel.__version__,
               "reference_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
               "engine_sha256": self._engine_digest()}
        memo = json.dumps(key, sort_keys=True)
        if memo in self._curves:
            return self._curves[memo]
        path = self.reference_dir() / f"{hashlib.sha256(memo.encode()).hexdigest()[:24]}.json"
        curve = read_cached_curve(path, key)
        if curve is None:
            run = self.run(functions, task, iterations, checkpoints, **same_path)
            curve = [(int(t), float(e)) for t, e in run.curve]
            write_cached_curve(path, key, curve)
        self._curves[memo] = curve
        return curve
