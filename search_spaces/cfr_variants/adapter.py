"""Using a cfr_variants program outside discover: an OpenSpiel-style solver.

``CfrSolver`` is what ``discover export`` packages offer as ``Solver(game)`` and what
``discover.load_algorithm(name).solver(game)`` returns for a program of this space
(``EXPORT``, declared on the space)::

    import pyspiel
    from open_spiel.python.algorithms import exploitability
    from discover import load_algorithm

    solver = load_algorithm("my_cfr").solver(pyspiel.load_game("leduc_poker"))
    for _ in range(100):
        solver.evaluate_and_update_policy()
    exploitability.exploitability(solver.game, solver.average_policy())
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from discover.program import load_functions
from discover.space import ExportAdapter

HERE = Path(__file__).resolve().parent


class CfrSolver:
    """A CFR variant as an OpenSpiel-style solver.

    Mirrors ``open_spiel.python.algorithms.cfr.CFRSolver``: each call of
    ``evaluate_and_update_policy()`` is one CFR iteration with alternating updates (every
    player in turn), and ``average_policy()`` is an OpenSpiel ``policy.TabularPolicy`` for
    the game it was given, so ``exploitability.exploitability(game, solver.average_policy())``
    works. The iterations run on the vectorised engine (``evaluators.cfr``) with the
    program's four rules (docs/cfr_candidate_api.md): the same arithmetic as
    ``discover eval`` and the search, so the same program gives the same exploitability.

    Args:
      game: a ``pyspiel.Game`` (sequential; wrap simultaneous-move games with
        ``pyspiel.load_game_as_turn_based``) or a game string.
      program: the CFR variant, as source text or as its rule functions by name.
      backend: "auto" (JAX, NumPy for rules JAX cannot trace), "jax" or "numpy".

    Raises:
      ValueError: the game is simultaneous-move or not a game.
      evaluators.cfr.InvalidCandidate: the rules break the contract (when compiled, or at
        the iteration where they do).
    """

    def __init__(self, game, program: str | Mapping[str, Callable], backend: str = "auto"):
        import pyspiel

        from evaluators.cfr import RULE_NAMES, compile_cfr
        from evaluators.games import load_game, load_game_arrays

        if isinstance(game, str):
            game = load_game(game)
        if not isinstance(game, pyspiel.Game):
            raise ValueError(f"game must be a pyspiel.Game or a game string, got {type(game).__name__}")
        if game.get_type().dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
            raise ValueError(f"game {str(game)!r} is not sequential; load it with "
                             "pyspiel.load_game_as_turn_based(...) first")
        if isinstance(program, str):
            rules, missing = load_functions(program, RULE_NAMES)
            if rules is None:
                raise ValueError(f"the CFR program does not define {', '.join(missing)}")
        else:
            rules = dict(program)
        self._game = game
        self._arrays = load_game_arrays(str(game))
        self._engine = compile_cfr(rules, self._arrays, backend)
        self._state = self._engine.start()
        self._template = None
        self._rows = None

    @property
    def game(self):
        return self._game

    @property
    def backend(self) -> str:
        """The engine actually used: "jax" or "numpy"."""
        return self._engine.backend

    @property
    def iteration(self) -> int:
        """Iterations done so far."""
        return int(self._state.iteration)

    def evaluate_and_update_policy(self) -> None:
        """One CFR iteration (every player updates once, in turn)."""
        self._state = self._engine.advance(self._state, self._state.iteration + 1)

    def run(self, iterations: int) -> "CfrSolver":
        """``iterations`` more CFR iterations in one call (faster than a Python loop of
        ``evaluate_and_update_policy``; the result is the same)."""
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        self._state = self._engine.advance(self._state, self._state.iteration + int(iterations))
        return self

    def _tabular(self, policies):
        from open_spiel.python import policy as policy_lib

        import numpy as np

        if self._template is None:
            self._template = policy_lib.TabularPolicy(self._game)
            lookup = self._template.state_lookup
            self._rows = [np.asarray([lookup[k] for k in keys], dtype=np.int64) for keys in self._arrays.infoset_keys]
        out = self._template.__copy__(copy_action_probability_array=True)
        for rows, pi in zip(self._rows, policies):
            if rows.size:
                out.action_probability_array[rows] = pi
        return out

    def average_policy(self):
        """The average policy so far, as an OpenSpiel ``policy.TabularPolicy`` (uniform over
        legal actions where the program has not added anything yet)."""
        return self._tabular(self._engine.average_policy(self._state))

    def current_policy(self):
        """The policy the next iteration plays, as an OpenSpiel ``policy.TabularPolicy``."""
        return self._tabular(self._engine.current_policy(self._state))

    def exploitability(self) -> float:
        """Exploitability (NashConv / players) of the average policy, by the engine's exact
        vectorised best response (agrees with OpenSpiel's to ~1e-12)."""
        return float(self._engine.exploitability(self._state))


EXPORT = ExportAdapter(
    code=HERE / "cfr_adapter.py.tmpl", tests=HERE / "test_cfr.py.tmpl", doc_usage=HERE / "cfr_usage.txt.tmpl",
    readme_usage=HERE / "cfr_usage.md.tmpl",
    score_note=(" For `cfr_variants`, 0 means as good as CFR+ and +1 ten times less exploitable, on average "
                "over log-spaced checkpoints (Tammelin 2014 for CFR+)."),
    methods={"solver": lambda algorithm, game, backend="auto": CfrSolver(game, algorithm.source, backend=backend)})
