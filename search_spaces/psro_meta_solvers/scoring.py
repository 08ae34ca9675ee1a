"""The psro_meta_solvers score: anytime exploitability relative to uniform (fictitious play).

A candidate's score on one game is

    score = mean over c in C of log10( max(e_ref(c), 1e-15) / max(e(c), 1e-15) ),

where ``e(c)`` is the exploitability of the candidate's evaluation mixtures after PSRO
iteration ``c``, ``e_ref(c)`` the same for the ``uniform`` seed (uniform mixtures for
training and evaluation: extensive-form fictitious play, the seed Li et al. 2026 evolve
from) on the same game, and ``C`` the log-spaced checkpoints ``log_checkpoints(T)`` from
iteration ``SCORE_START`` = 5 on (for T = 100: 6, 10, 18, 32, 56, 100). Iterations 1 to 3
are left out: with two to four policies per player every meta-solver is close to every
other and the ratios mostly reflect which best response happened to come first.

The reference curve is computed once per (game, iterations, checkpoints, OpenSpiel version,
uniform seed source, engine source) and cached in this process and on disk beside the game
arrays (``evaluators.games.cache_dir()/../psro_reference``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import pyspiel

import evaluators.best_response
import evaluators.games
import evaluators.psro
from evaluators.cfr import log_checkpoints
from evaluators.games import cache_dir, canonical_game_string
from evaluators.psro import MetaSolver, run_psro
from search_spaces.cfr_variants.scoring import (
    EXPLOITABILITY_FLOOR, read_cached_curve, relative_score, write_cached_curve)

SCORE_START = 5

_REFERENCE: dict[str, list[tuple[int, float]]] = {}

__all__ = ["SCORE_START", "EXPLOITABILITY_FLOOR", "score_checkpoints", "relative_score",
           "reference_curve"]


def score_checkpoints(iterations: int) -> list[int]:
    """The checkpoints the score averages over: ``log_checkpoints(iterations)`` from
    ``SCORE_START`` on (just ``[iterations]`` if ``iterations < SCORE_START``)."""
    start = min(SCORE_START, int(iterations))
    return [c for c in log_checkpoints(iterations) if c >= start]


def _reference_dir() -> Path:
    return cache_dir().parent / "psro_reference"


def _engine_digest() -> str:
    """SHA-256 of the evaluator modules whose arithmetic produces the curves."""
    digest = hashlib.sha256()
    for module in (evaluators.psro, evaluators.games, evaluators.best_response):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _key(game: str, iterations: int, checkpoints: Sequence[int], source: str) -> dict:
    return {
        "game": canonical_game_string(game),
        "iterations": int(iterations),
        "checkpoints": [int(c) for c in checkpoints],
        "openspiel": pyspiel.__version__,
        "reference_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
        "engine_sha256": _engine_digest(),
    }


def reference_curve(train: MetaSolver, evaluate: MetaSolver, source: str, game: str,
                    iterations: int, checkpoints: Sequence[int]) -> list[tuple[int, float]]:
    """The exploitability curve of the reference solvers on ``game``, cached.

    Args:
      train, evaluate: the reference's two meta-solvers; ``source`` is its text (part of
        the cache key, so editing the seed invalidates old curves).
    """
    key = _key(game, iterations, checkpoints, source)
    memo = json.dumps(key, sort_keys=True)
    if memo in _REFERENCE:
        return _REFERENCE[memo]
    path = _reference_dir() / f"{hashlib.sha256(memo.encode()).hexdigest()[:24]}.json"
    curve = read_cached_curve(path, key)
    if curve is None:
        run = run_psro(train, evaluate, game, iterations, checkpoints)
        curve = [(int(t), float(e)) for t, e in run.curve]
        write_cached_curve(path, key, curve)
    _REFERENCE[memo] = curve
    return curve
