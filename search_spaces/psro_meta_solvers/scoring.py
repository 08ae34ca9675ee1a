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

The formula, the fitness over games and the reference-curve cache are the game-space
family's (``search_spaces.game_space``).
"""

from __future__ import annotations

from search_spaces.game_space import (  # noqa: F401  (the space's score, re-exported)
    EXPLOITABILITY_FLOOR, relative_score)
from search_spaces.game_space import score_checkpoints as _score_checkpoints

SCORE_START = 5

__all__ = ["SCORE_START", "EXPLOITABILITY_FLOOR", "score_checkpoints", "relative_score"]


def score_checkpoints(iterations: int) -> list[int]:
    """The checkpoints the score averages over: ``log_checkpoints(iterations)`` from
    ``SCORE_START`` on (just ``[iterations]`` if ``iterations < SCORE_START``)."""
    return _score_checkpoints(iterations, SCORE_START)
