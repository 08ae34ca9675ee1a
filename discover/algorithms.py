"""Installed algorithms: programs exported by `discover export`, found by name.

An exported package registers its algorithm under the ``discover.algorithms`` entry-point
group (``<name> = <module>:ALGORITHM``); ``load_algorithm(name)`` finds and loads it. The
object is an ``Algorithm``: the program's source, the space it was evolved in, and the
metadata written at export (scores, lineage, versions, code hash). A run can start from an
installed algorithm as a seed (``algorithm.source`` in ``algorithm.space``).

For CFR variants (space ``cfr_variants``) the adapter ``CfrSolver`` runs the program's rules
as an OpenSpiel-style solver on any sequential OpenSpiel game::

    import pyspiel
    from open_spiel.python.algorithms import exploitability
    from discover import load_algorithm

    algo = load_algorithm("my_cfr")
    game = pyspiel.load_game("leduc_poker")
    solver = algo.solver(game)
    for _ in range(100):
        solver.evaluate_and_update_policy()
    exploitability.exploitability(game, solver.average_policy())
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "discover.algorithms"
CFR_SPACE = "cfr_variants"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownAlgorithm(KeyError):
    """No installed algorithm has the requested name; the message lists the installed ones."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


def normalize_name(name: str) -> str:
    """The canonical form of an algorithm name: lower case, ``-`` and ``.`` read as ``_``.

    Raises:
      ValueError: the name is empty or has characters other than letters, digits, ``_``,
        ``-`` and ``.``, or does not start with a letter.
    """
    if not isinstance(name, str):
        raise ValueError(f"an algorithm name is a string, got {type(name).__name__}")
    out = re.sub(r"[-.]+", "_", name.strip().lower())
    if not _NAME.match(out):
        raise ValueError(f"invalid algorithm name {name!r}: use letters, digits, '_' or '-', starting with a letter")
    return out


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """An evolved program, packaged.

    Attributes:
      name: the entry-point name (``normalize_name`` form).
      space: the search space it was evolved in (e.g. ``"cfr_variants"``).
      source: the program's source, verbatim as it was evaluated.
      metadata: what ``discover export`` recorded (``metadata.json``): scores on the train
        and held-out tasks, lineage, library versions, code hash.
    """

    name: str
    space: str
    source: str
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def namespace(self) -> dict[str, Any]:
        """The program's module namespace (the source executed in a fresh dict)."""
        namespace: dict[str, Any] = {"__name__": f"discover_algorithm_{self.name}"}
        exec(compile(self.source, f"<algorithm {self.name}>", "exec"), namespace)  # noqa: S102 - our own export
        return namespace

    def functions(self, names: tuple[str, ...]) -> dict[str, Callable]:
        """The named top-level functions of the program.

        Raises:
          ValueError: one of them is missing.
        """
        ns = self.namespace()
        missing = [n for n in names if not callable(ns.get(n))]
        if missing:
            raise ValueError(f"algorithm {self.name!r} does not define {', '.join(missing)}")
        return {n: ns[n] for n in names}

    def solver(self, game, backend: str = "auto") -> "CfrSolver":
        """An OpenSpiel-style solver running this CFR variant on ``game`` (see ``CfrSolver``).

        Raises:
          ValueError: the algorithm is not a CFR variant.
        """
        if self.space != CFR_SPACE:
            raise ValueError(f"algorithm {self.name!r} was evolved in space {self.space!r}; "
                             f"only {CFR_SPACE!r} algorithms are CFR solvers")
        return CfrSolver(game, self.source, backend=backend)


def available_algorithms() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed algorithms by name (entry points of ``discover.algorithms``), not loaded."""
    out = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            out[normalize_name(ep.name)] = ep
        except ValueError:
            continue   # a malformed third-party name cannot be asked for anyway
    return out


def load_algorithm(name: str) -> Algorithm:
    """The installed algorithm called ``name`` (``-`` and ``_`` are the same).

    Raises:
      UnknownAlgorithm: none is installed under that name (the message lists those that are).
      TypeError: the entry point's object is not an ``Algorithm``.
    """
    try:
        key = normalize_name(name)
    except ValueError as e:
        raise UnknownAlgorithm(str(e)) from None
    found = available_algorithms()
    ep = found.get(key)
    if ep is None:
        listed = ", ".join(sorted(found)) or "none"
        raise UnknownAlgorithm(f"no installed algorithm named {name!r} (entry-point group "
                               f"{ENTRY_POINT_GROUP!r}); installed: {listed}")
    obj = ep.load()
    if not isinstance(obj, Algorithm):
        # A plug-in built against another copy of this module: accept the same fields.
        fields = ("name", "space", "source", "metadata")
        if all(hasattr(obj, f) for f in fields):
            return Algorithm(**{f: getattr(obj, f) for f in fields})
        raise TypeError(f"entry point {ep.value!r} is a {type(obj).__name__}, not a discover Algorithm")
    return obj


# ----------------------------------------------------------------------------- CFR adapter
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
            rules = Algorithm("program", CFR_SPACE, program).functions(RULE_NAMES)
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
