"""Using a psro_meta_solvers program outside discover: a meta-solver callable.

``MetaSolver`` is what ``discover export`` packages offer and what
``discover.load_algorithm(name).meta_solver(kind)`` returns for a program of this space
(``EXPORT``, declared on the space)::

    meta = load_algorithm("my_psro").meta_solver("eval")
    meta(payoffs)              # payoffs [n_1, ..., n_P, P] -> [mixture_1, ..., mixture_P]

and ``meta.openspiel_meta_strategy`` is a meta-strategy method for OpenSpiel's
``psro_v2.PSROSolver``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from discover.program import load_functions
from discover.space import ExportAdapter

if TYPE_CHECKING:
    import numpy as np

HERE = Path(__file__).resolve().parent


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
            functions, missing = load_functions(program, (function,))
            if functions is None:
                raise ValueError(f"the meta-solver program {name!r} does not define {function}")
            solver = functions[function]
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


EXPORT = ExportAdapter(
    code=HERE / "psro_adapter.py.tmpl", tests=HERE / "test_psro.py.tmpl", doc_usage=HERE / "psro_usage.txt.tmpl",
    readme_usage=HERE / "psro_usage.md.tmpl",
    score_note=(" For `psro_meta_solvers`, 0 means as good as uniform meta-strategies (fictitious play) and +1 "
                "ten times less exploitable, on average over log-spaced PSRO checkpoints."),
    methods={"meta_solver": lambda algorithm, kind="eval": MetaSolver(algorithm.source, kind=kind,
                                                                      name=algorithm.name)})
