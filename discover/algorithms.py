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

For PSRO meta-solvers (space ``psro_meta_solvers``) the adapter ``MetaSolver`` is a
callable from a payoff tensor to one mixture per player that keeps the solver's state
between calls; its ``openspiel_meta_strategy`` is a meta-strategy method for OpenSpiel's
``psro_v2.PSROSolver``::

    meta = load_algorithm("my_psro").meta_solver("eval")
    meta(payoffs)              # payoffs [n_1, ..., n_P, P] -> [mixture_1, ..., mixture_P]

For policy objectives (spaces ``ppo_objectives``, ``temporal_objectives``)
``Algorithm.policy_loss()`` is a JAX policy loss for the user's own PPO loop, and for
advantage rules (``advantage_rules``) ``Algorithm.advantage_fn()`` the rule itself::

    loss = load_algorithm("my_objective").policy_loss()
    loss(log_prob, old_log_prob, advantages)         # -mean(r·Â − D(r, Â)), a scalar

JAX is imported only by those two (and by the CFR solver's JAX backend).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # NumPy is imported where it is used, as JAX is
    import numpy as np

ENTRY_POINT_GROUP = "discover.algorithms"
CFR_SPACE = "cfr_variants"
PSRO_SPACE = "psro_meta_solvers"
# The drift spaces and the arguments their candidates' ``drift`` takes.
DRIFT_SPACES: Mapping[str, tuple[str, ...]] = {
    "ppo_objectives": ("ratio", "advantage"),
    "temporal_objectives": ("ratio", "advantage", "progress", "horizon"),
}
ADVANTAGE_SPACE = "advantage_rules"
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

    def meta_solver(self, kind: str = "eval") -> "MetaSolver":
        """A fresh ``MetaSolver`` running this program's training (``kind="train"``) or
        evaluation (``kind="eval"``, PSRO's output) meta-strategy solver.

        Raises:
          ValueError: the algorithm is not a PSRO meta-solver, or ``kind`` is neither.
        """
        self._require((PSRO_SPACE,), "PSRO meta-solvers")
        return MetaSolver(self.source, kind=kind, name=self.name)

    def drift(self) -> Callable:
        """The program's drift, as it defines it: ``drift(ratio, advantage)`` for
        ``ppo_objectives``, ``drift(ratio, advantage, progress, horizon)`` for
        ``temporal_objectives`` (docs/spaces/policy_objectives.md). JAX-traceable.

        Raises:
          ValueError: the algorithm is not a drift.
        """
        self._require(tuple(DRIFT_SPACES), "drifts")
        return self.functions(("drift",))["drift"]

    def policy_loss(self) -> Callable:
        """A drop-in JAX policy loss with this program's drift (see ``drift_policy_loss``)::

            loss(log_prob, old_log_prob, advantages, *, progress=None, horizon=None,
                 normalize=True) -> scalar

        ``-mean(r·Â − D(r, Â[, progress, horizon]))`` with ``r = exp(log_prob − old_log_prob)``
        and ``Â`` the advantages standardised over the batch (unless ``normalize=False``),
        exactly as ``evaluators.ppo``'s trainer computes its policy loss. ``progress`` (n/N)
        and ``horizon`` (N) are required for ``temporal_objectives`` and ignored otherwise.

        Raises:
          ValueError: the algorithm is not a drift.
        """
        self._require(tuple(DRIFT_SPACES), "policy objectives")
        drift4 = _drift4(self.drift(), self.space)
        temporal = len(DRIFT_SPACES[self.space]) == 4
        name = self.name

        def loss(log_prob, old_log_prob, advantages, *, progress=None, horizon=None, normalize=True):
            if temporal and (progress is None or horizon is None):
                raise ValueError(f"algorithm {name!r} is a temporally aware objective: pass progress "
                                 "(n/N, the fraction of training done) and horizon (N, the number of updates)")
            return drift_policy_loss(drift4, log_prob, old_log_prob, advantages,
                                     progress=0.0 if progress is None else progress,
                                     horizon=1.0 if horizon is None else horizon, normalize=normalize)

        loss.__doc__ = f"The policy loss of algorithm {name!r} (discover.algorithms.Algorithm.policy_loss)."
        return loss

    def advantage_fn(self) -> Callable:
        """The program's advantage rule,
        ``advantages(rewards, values, dones, last_value, gamma, lam) -> (advantages, targets)``
        on time-major ``[T, E]`` arrays (``last_value`` ``[E]``); JAX-traceable, with
        ``gamma`` and ``lam`` Python floats (docs/spaces/policy_objectives.md).

        Raises:
          ValueError: the algorithm is not an advantage rule.
        """
        self._require((ADVANTAGE_SPACE,), "advantage rules")
        return self.functions(("advantages",))["advantages"]

    def _require(self, spaces: tuple[str, ...], what: str) -> None:
        if self.space not in spaces:
            listed = " and ".join(repr(s) for s in spaces)
            raise ValueError(f"algorithm {self.name!r} was evolved in space {self.space!r}; "
                             f"only {listed} algorithms are {what}")


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


# ----------------------------------------------------------------------------- PSRO adapter
META_SOLVER_FUNCTIONS: Mapping[str, str] = {"train": "train_meta_solver", "eval": "eval_meta_solver"}


def as_payoff_tensor(payoffs) -> np.ndarray:
    """A meta-game in any of the accepted forms, as the payoff tensor ``[n_1, ..., n_P, P]``
    (float64) that the space's solvers take.

    Accepted forms:
      - the tensor itself, a NumPy array ``[n_1, ..., n_P, P]`` with ``P ≥ 2``
        (``payoffs[j_1, ..., j_P, q]``: player q's payoff when every player p plays its
        ``j_p``-th policy);
      - a list (or tuple) of P per-player tables ``[n_1, ..., n_P]``, the form of OpenSpiel's
        ``PSROSolver.get_meta_game()``; for two players a pair of matrices
        ``(row_payoffs, column_payoffs)``;
      - one matrix ``[n_1, n_2]`` as a NumPy array: a two-player zero-sum meta-game with the
        row player's payoffs, the column player's being their negation (OpenSpiel's
        ``meta_strategies`` read a meta-game that is not a list this way).

    Raises:
      ValueError: the input is none of these, or has NaN or infinite payoffs.
    """
    import numpy as np

    if isinstance(payoffs, (list, tuple)):
        try:
            tables = [np.asarray(t, dtype=np.float64) for t in payoffs]
        except (TypeError, ValueError) as e:
            raise ValueError(f"a list of per-player payoff tables must hold numeric arrays ({e})") from None
        players = len(tables)
        if players < 2 or any(t.ndim != players or t.shape != tables[0].shape for t in tables):
            shapes = ", ".join(str(t.shape) for t in tables) or "none"
            raise ValueError(f"a list meta-game must hold one payoff table [n_1, ..., n_P] per player "
                             f"(P ≥ 2 tables of P dimensions and equal shapes), got shapes {shapes}; "
                             "pass a payoff tensor [n_1, ..., n_P, P] as a NumPy array")
        tensor = np.stack(tables, axis=-1)
    else:
        try:
            x = np.asarray(payoffs, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"payoffs must be numeric, got {type(payoffs).__name__} ({e})") from None
        if x.ndim == 2:
            tensor = np.stack([x, -x], axis=-1)
        elif x.ndim >= 3 and x.shape[-1] == x.ndim - 1:
            tensor = x
        else:
            raise ValueError(f"a payoff tensor has shape [n_1, ..., n_P, P] with P ≥ 2 players, got shape "
                             f"{x.shape}")
    if 0 in tensor.shape:
        raise ValueError(f"every player needs at least one policy, got a meta-game of shape {tensor.shape[:-1]}")
    if not np.all(np.isfinite(tensor)):
        raise ValueError("the meta-game has NaN or infinite payoffs")
    return tensor


def joint_strategy(mixtures) -> np.ndarray:
    """The product distribution of per-player mixtures, flattened with player 0's index
    slowest: ``[n_1·...·n_P]`` (the order of OpenSpiel's
    ``meta_strategies.get_joint_strategy_from_marginals``)."""
    import numpy as np

    joint = np.ones(1)
    for m in mixtures:
        joint = np.multiply.outer(joint, np.asarray(m, dtype=np.float64)).reshape(-1)
    return joint


class MetaSolver:
    """A PSRO meta-strategy solver of the ``psro_meta_solvers`` space as a plain callable.

    ``meta(payoffs)`` returns one mixture (a float64 probability vector) per player. The
    object owns what PSRO would thread through the solver: its ``state`` dict (``{}`` at
    first) and the PSRO iteration ``t`` it is told, by default a counter of calls (1, 2,
    ...). So call it once per PSRO iteration: the training solver on the populations
    before the new best responses (n = t policies each), the evaluation solver after them
    (n = t + 1), as ``evaluators.psro.run_psro`` does. ``reset()`` starts over.

    In OpenSpiel's PSRO, pass ``meta.openspiel_meta_strategy`` as
    ``psro_v2.PSROSolver(..., meta_strategy_method=...)``. PSROSolver calls it once when it
    is built (one policy per player) and once per ``iteration()``, so the counter equals the
    population size there, the convention of ``train_meta_solver``.

    Args:
      program: the program's source, or its two solver functions by name.
      kind: "train" (``train_meta_solver``, whose mixtures the next best responses answer)
        or "eval" (``eval_meta_solver``, the mixtures PSRO outputs).
      name: the algorithm's name, for messages.

    Raises:
      ValueError: ``kind`` is neither, or the program lacks the solver. Calls raise
        ``ValueError`` for a meta-game in no accepted form (``as_payoff_tensor``) and for
        output that breaks the space's contract (a pair ``(mixtures, dict)``, one finite,
        non-negative vector per player of its population's length, summing to 1 within
        1e-6; entries down to −1e-9 are read as 0 and the mixtures renormalised, as in
        ``evaluators.psro.check_mixtures``).
    """

    def __init__(self, program: str | Mapping[str, Callable], kind: str = "eval", name: str = "program"):
        if kind not in META_SOLVER_FUNCTIONS:
            raise ValueError(f"kind must be 'train' or 'eval', got {kind!r}")
        function = META_SOLVER_FUNCTIONS[kind]
        if isinstance(program, str):
            solver = Algorithm(name, PSRO_SPACE, program).functions((function,))[function]
        else:
            solver = program.get(function)
            if not callable(solver):
                raise ValueError(f"the meta-solver program {name!r} does not define {function}")
        self._solver = solver
        self.kind = kind
        self.name = name
        self.reset()

    def reset(self) -> None:
        """Forgets the state and the iteration count (a new PSRO run)."""
        self._state: dict = {}
        self._iteration = 0

    @property
    def state(self) -> dict:
        """The solver's state after its last call (``{}`` before the first)."""
        return self._state

    @property
    def iteration(self) -> int:
        """The PSRO iteration of the last call (0 before the first)."""
        return self._iteration

    def __call__(self, payoffs, iteration: int | None = None) -> list:
        """One mixture per player for the meta-game ``payoffs`` (any form of
        ``as_payoff_tensor``) at PSRO iteration ``iteration`` (default: one more than the
        last call's). The state is kept only if the output is valid.

        Returns:
          ``[x_1, ..., x_P]``, ``x_p`` a float64 vector of length ``n_p``, ``x_p ≥ 0``,
          ``sum(x_p) = 1``.
        """
        import numpy as np

        from evaluators.psro import InvalidCandidate, check_mixtures

        tensor = as_payoff_tensor(payoffs)
        t = self._iteration + 1 if iteration is None else int(iteration)
        if t < 1:
            raise ValueError(f"the PSRO iteration counts from 1, got {iteration!r}")
        who = META_SOLVER_FUNCTIONS[self.kind]
        with np.errstate(all="ignore"):  # the output is judged, not the arithmetic on the way
            out = self._solver(tensor.copy(), t, self._state)
        try:
            mixtures, state = check_mixtures(who, out, tensor.shape[:-1])
        except InvalidCandidate as e:
            raise ValueError(f"meta-solver {self.name!r}: {e}") from None
        self._state, self._iteration = state, t
        return mixtures

    def openspiel_meta_strategy(self, solver, return_joint: bool = False):
        """A meta-strategy method for OpenSpiel's PSRO (``psro_v2.PSROSolver`` or any
        ``AbstractMetaTrainer``): reads ``solver.get_meta_game()`` (one payoff table per
        player) and returns the mixtures, and with ``return_joint`` also their joint
        (product) distribution, as OpenSpiel's ``meta_strategies`` methods do."""
        mixtures = self(solver.get_meta_game())
        return (mixtures, joint_strategy(mixtures)) if return_joint else mixtures


# ----------------------------------------------------------------------------- policy objectives
def _drift4(drift: Callable, space: str) -> Callable:
    """The trainer's form ``D(ratio, advantage, progress, horizon)`` of a space's drift."""
    if len(DRIFT_SPACES[space]) == 4:
        return drift
    return lambda ratio, advantage, progress, horizon: drift(ratio, advantage)


def drift_policy_loss(drift4: Callable, log_prob, old_log_prob, advantages, *, progress=0.0, horizon=1.0,
                      normalize: bool = True):
    """Mirror learning's policy loss with drift ``drift4`` (Kuba et al., ICML 2022; Lu et
    al., "Discovered Policy Optimisation", NeurIPS 2022), as ``evaluators.ppo``'s trainer
    computes it in ``make_train``'s ``loss_fn``::

        r = exp(log_prob − old_log_prob)
        Â = (A − mean(A)) / (std(A) + 1e-8)           (if normalize)
        L = −mean(r·Â − D(r, Â, progress, horizon))

    Args:
      drift4: ``D(ratio, advantage, progress, horizon)``, elementwise, JAX-traceable.
      log_prob: ``log π(a|s)`` of the sampled actions under the policy being trained, any
        shape (e.g. ``[B]``); gradients flow through it.
      old_log_prob: ``log π_old(a|s)`` from the rollout, same shape.
      advantages: same shape; used as data (stop their gradient yourself if they depend on
        parameters). Standardised over all their elements when ``normalize``.
      progress, horizon: ``n/N`` and ``N``, float32 scalars as in the trainer (only
        temporally aware drifts read them).

    Returns:
      A scalar. PPO's clipped surrogate ``−mean(min(r·Â, clip(r, 1−ε, 1+ε)·Â))`` is the
      drift ``ReLU((r − clip(r, 1−ε, 1+ε))·Â)``.

    Raises:
      ValueError: the three arrays differ in shape.
    """
    import jax.numpy as jnp

    log_prob, old_log_prob, advantages = (jnp.asarray(x) for x in (log_prob, old_log_prob, advantages))
    if not (log_prob.shape == old_log_prob.shape == advantages.shape):
        raise ValueError(f"log_prob, old_log_prob and advantages must have one shape, got {log_prob.shape}, "
                         f"{old_log_prob.shape} and {advantages.shape}")
    from evaluators.ppo import drift_policy_loss as trainer_loss

    loss, _, _ = trainer_loss(drift4, log_prob, old_log_prob, advantages, jnp.asarray(progress, jnp.float32),
                              jnp.asarray(horizon, jnp.float32), normalize)
    return loss
