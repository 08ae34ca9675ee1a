"""Installed algorithms: programs exported by `discover export`, found by name.

An exported package registers its algorithm under the ``discover.algorithms`` entry-point
group (``<name> = <module>:ALGORITHM``); ``load_algorithm(name)`` finds and loads it. The
object is an ``Algorithm``: the program's source, the space it was evolved in, and the
metadata written at export (scores, lineage, versions, code hash). A run can start from an
installed algorithm as a seed (``algorithm.source`` in ``algorithm.space``).

What an ``Algorithm`` offers beyond its source is declared by its space
(``discover.space.ExportAdapter.methods``) and reached as methods of the object, so a
third-party space brings its own. The built-in spaces offer, for example::

    solver = load_algorithm("my_cfr").solver(pyspiel.load_game("leduc_poker"))
    for _ in range(100):                        # an OpenSpiel-style CFR solver
        solver.evaluate_and_update_policy()
    meta = load_algorithm("my_psro").meta_solver("eval")
    meta(payoffs)                               # [n_1, ..., n_P, P] -> one mixture per player
    loss = load_algorithm("my_objective").policy_loss()
    loss(log_prob, old_log_prob, advantages)    # -mean(r·Â − D(r, Â)), a JAX scalar

(``search_spaces.cfr_variants.adapter``, ``search_spaces.psro_meta_solvers.adapter``,
``search_spaces.policy_adapter``). Nothing here imports a space until a method is asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import re
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "discover.algorithms"
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

    def __getattr__(self, name: str):
        """The methods the algorithm's space declares (``Space.export_adapter.methods``),
        bound to it: e.g. ``solver(game)`` for CFR variants, ``meta_solver(kind)`` for PSRO
        meta-solvers, ``policy_loss()`` for drifts (module docstring).

        Raises:
          AttributeError: the space declares no such method (the message lists those it does).
        """
        if name.startswith("_") or name in ("name", "space", "source", "metadata"):
            raise AttributeError(name)
        methods = self.methods()
        if name not in methods:
            offered = ", ".join(sorted(methods)) or "none"
            raise AttributeError(f"algorithm {self.name!r} was evolved in space {self.space!r}, whose programs "
                                 f"offer no {name}(); they offer: {offered}")
        return functools.partial(methods[name], self)

    def methods(self) -> Mapping[str, Callable]:
        """What the algorithm's space offers beyond the source, by name (unbound)."""
        from discover.spaces import get_space
        adapter = get_space(self.space).export_adapter
        return dict(adapter.methods) if adapter is not None else {}


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
