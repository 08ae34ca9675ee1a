"""The cfr_variants score: anytime exploitability relative to CFR+.

A candidate's score on one game is

    score = mean over c in C of log10( max(e_ref(c), 1e-15) / max(e(c), 1e-15) ),

where ``e(c)`` is the exploitability of the candidate's average policy after ``c``
iterations, ``e_ref(c)`` the same for CFR+ (Tammelin 2014; the ``cfr_plus`` seed) on the
same game and backend, and ``C`` are the log-spaced checkpoints ``log_checkpoints(iterations)``
(4 per decade) from iteration ``SCORE_START`` = 10 on (for 1000 iterations: 10, 18, 32, 56,
100, 178, 316, 562, 1000). So 0 means "as good as CFR+", +1 means ten times less exploitable
at every checkpoint on (geometric) average, and being good early counts as much as being
good late. Iterations below 10 are left out: there every method is still close to the
uniform policy and the ratios are noise.

The formula, the fitness over games and the reference-curve cache are the game-space
family's (``search_spaces.game_space``); the CFR+ curve is keyed by the backend too,
because the engine's summation order changes late exploitabilities by percents, and the
CFR+ seed must score exactly 0.
"""

from __future__ import annotations

from search_spaces.game_space import (  # noqa: F401  (the space's score, re-exported)
    EXPLOITABILITY_FLOOR, GAIN_CAP, balanced_fitness, balanced_fitness_doc, relative_score)
from search_spaces.game_space import score_checkpoints as _score_checkpoints

SCORE_START = 10           # first checkpoint that counts


def score_checkpoints(iterations: int) -> list[int]:
    """The checkpoints the score averages over: ``log_checkpoints(iterations)`` from
    ``SCORE_START`` on (just ``[iterations]`` if ``iterations < SCORE_START``)."""
    return _score_checkpoints(iterations, SCORE_START)
