"""The cfr_variants score: anytime exploitability relative to CFR+, and its reference curves.

A candidate's score on one game is

    score = mean over c in C of log10( max(e_ref(c), 1e-15) / max(e(c), 1e-15) ),

where ``e(c)`` is the exploitability of the candidate's average policy after ``c``
iterations, ``e_ref(c)`` the same for CFR+ (Tammelin 2014; the ``cfr_plus`` seed) on the
same game, and ``C`` are the log-spaced checkpoints ``log_checkpoints(iterations)``
(4 per decade) from iteration ``SCORE_START`` = 10 on (for 1000 iterations: 10, 18, 32, 56,
100, 178, 316, 562, 1000). So 0 means "as good as CFR+", +1 means ten times less exploitable
at every checkpoint on (geometric) average, and being good early counts as much as being
good late. Iterations below 10 are left out: there every method is still close to the
uniform policy and the ratios are noise.

The CFR+ curve is computed once per (game, iterations, checkpoints, backend, OpenSpiel
version, CFR+ source, engine source) and cached in this process and on disk next to the game
arrays (``evaluators.games.cache_dir()/../cfr_reference``). The engine's source is part of
the key because a change in its summation order changes late exploitabilities by percents
(rounding differences grow chaotically), and the CFR+ seed must score exactly 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pyspiel

import evaluators.best_response
import evaluators.cfr
import evaluators.games
from evaluators.cfr import log_checkpoints, run_cfr
from evaluators.games import cache_dir, canonical_game_string

SCORE_START = 10           # first checkpoint that counts
GAIN_CAP = 1.0             # decades of improvement a single game can contribute to the fitness
EXPLOITABILITY_FLOOR = 1e-15  # exploitabilities are floored here before taking ratios

_REFERENCE: dict[tuple, list[tuple[int, float]]] = {}


def score_checkpoints(iterations: int) -> list[int]:
    """The checkpoints the score averages over: ``log_checkpoints(iterations)`` from
    ``SCORE_START`` on (just ``[iterations]`` if ``iterations < SCORE_START``)."""
    start = min(SCORE_START, int(iterations))
    return [c for c in log_checkpoints(iterations) if c >= start]


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


def _reference_dir() -> Path:
    return cache_dir().parent / "cfr_reference"


def _engine_digest() -> str:
    """SHA-256 of the evaluator modules whose arithmetic produces the curves."""
    digest = hashlib.sha256()
    for module in (evaluators.cfr, evaluators.games, evaluators.best_response):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _reference_key(game: str, iterations: int, checkpoints: Sequence[int], backend: str,
                   source: str) -> dict:
    return {
        "game": canonical_game_string(game),
        "iterations": int(iterations),
        "checkpoints": [int(c) for c in checkpoints],
        "backend": backend,
        "openspiel": pyspiel.__version__,
        "cfr_plus_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
        "engine_sha256": _engine_digest(),
    }


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


def reference_curve(rules: Mapping[str, Callable], source: str, game: str, iterations: int,
                    checkpoints: Sequence[int], backend: str) -> list[tuple[int, float]]:
    """The exploitability curve of the reference ``rules`` (CFR+) on ``game``, cached.

    Args:
      rules: the reference candidate's four functions; ``source`` is its text (part of the
        cache key, so editing the seed invalidates old curves).
      backend: the backend to run it on ("jax" or "numpy"), normally the candidate's, so
        that both curves come from the same arithmetic.
    """
    key = _reference_key(game, iterations, checkpoints, backend, source)
    memo = json.dumps(key, sort_keys=True)
    if memo in _REFERENCE:
        return _REFERENCE[memo]
    path = _reference_dir() / f"{hashlib.sha256(memo.encode()).hexdigest()[:24]}.json"
    curve = read_cached_curve(path, key)
    if curve is None:
        run = run_cfr(rules, game, iterations, checkpoints, backend=backend)
        curve = [(int(t), float(e)) for t, e in run.curve]
        write_cached_curve(path, key, curve)
    _REFERENCE[memo] = curve
    return curve


def balanced_fitness_doc(games: str, reference: str) -> str:
    """The paragraph the mutator reads about ``balanced_fitness``, rendered from its
    constants, so the prompt and the score cannot drift apart. ``games`` names the
    training games, ``reference`` the program a game score of 0 matches."""
    import textwrap
    intro = textwrap.fill(f"The program's fitness combines the game scores s_g of the training games "
                          f"({games}) so that only a robust improvement wins:", 92)
    outro = textwrap.fill(f"A game's gain counts up to {GAIN_CAP:g} decade(s) (being 10^10 times better on a "
                          "tiny game buys nothing more), and the weakest game counts twice: a program that is "
                          f"worse than {reference} on any game pays for it directly. A program that fails on "
                          "any game has fitness -infinity.", 92)
    return (f"{intro}\n\n    fitness = mean over games of min(s_g, {GAIN_CAP:g})  +  min over games of s_g"
            f"\n\n{outro}")


def balanced_fitness(game_scores: Sequence[float]) -> float:
    """The program's fitness from its per-game scores ``s_g``:

        mean_g min(s_g, GAIN_CAP) + min_g s_g

    Why not the plain mean: the train games differ wildly in how far below CFR+ a rule can
    push exploitability (on 4-card Goofspiel predictive rules reach 1e-15, eleven decades
    under CFR+, while Leduc moves by fractions of a decade), so a mean is ruled by the
    smallest games and rewards rules that are worse than CFR+ on Leduc. Capping each game's
    gain at one decade and adding the weakest game makes the fitness prefer rules that
    beat CFR+ everywhere. It is 0 for CFR+ itself, and -inf when any game is -inf.
    """
    scores = [float(s) for s in game_scores]
    if not scores or any(math.isnan(s) for s in scores):
        return -math.inf
    return sum(min(s, GAIN_CAP) for s in scores) / len(scores) + min(scores)
