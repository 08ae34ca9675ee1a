"""Finding search spaces by name.

A space is found, in this order, as:

1. ``"module.path:ATTR"``: the attribute ``ATTR`` of an importable module. This is how a
   space defined outside any package (a test's toy space, a user's script) reaches an
   executor's worker processes, which resolve spaces by name in a fresh interpreter;
2. a space registered in this process with ``register_space`` (visible to this process
   only, so not to executor workers: use form 1 or an entry point for those);
3. an entry point named ``name`` in the ``discover.spaces`` group, whose object is the
   space (``cfr_variants = "search_spaces.cfr_variants:SPACE"``): how installed packages,
   third-party ones included, add spaces. An entry point names the optional extras its
   space needs (``ppo_objectives = "search_spaces.ppo_objectives:SPACE [rl]"``); where one
   is not installed, the space is listed (``space_catalogue``) but not imported, and
   ``get_space`` raises ``discover.extras.MissingExtra``, one line naming the extra;
4. ``search_spaces.<name>.SPACE``, so that a source checkout works before ``pip install``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import warnings
from typing import Callable

from discover import extras
from discover.extras import MissingExtra
from discover.space import Space

ENTRY_POINT_GROUP = "discover.spaces"

_registered: dict[str, Space] = {}


class UnknownSpace(KeyError):
    """No space has the requested name; the message lists the available ones."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


def register_space(space: Space) -> None:
    """Makes ``space`` findable by ``get_space(space.name)`` in this process."""
    if not isinstance(space, Space):
        raise TypeError(f"register_space needs a Space, got {type(space).__name__}")
    if not space.name:
        raise ValueError("a space needs a non-empty name to be registered")
    _registered[space.name] = space


def unregister_space(name: str) -> None:
    """Forgets a space registered with ``register_space`` (no-op when there is none)."""
    _registered.pop(name, None)


def _entry_points() -> dict:
    import importlib.metadata  # ~50 ms to import: only when a plain name is looked up

    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _builtin_names() -> list[str]:
    """Packages under ``search_spaces`` (present in a source checkout)."""
    try:
        pkg = importlib.import_module("search_spaces")
    except ImportError:
        return []
    return [m.name for m in pkgutil.iter_modules(getattr(pkg, "__path__", []))]


def _from_reference(ref: str) -> Space:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise UnknownSpace(f"unknown space {ref!r}; a reference must read 'module.path:ATTR'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownSpace(f"unknown space {ref!r}: cannot import {module_name!r} ({e})") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UnknownSpace(f"unknown space {ref!r}: {module_name!r} has no attribute {attr!r}") from None
    return _checked(obj, ref)


def _checked(obj, where: str) -> Space:
    if not isinstance(obj, Space):
        raise TypeError(f"{where} is a {type(obj).__name__}, not a discover.space.Space")
    return obj


def _from_builtin(name: str) -> Space | None:
    try:
        module = importlib.import_module(f"search_spaces.{name}")
    except ModuleNotFoundError as e:
        if e.name in ("search_spaces", f"search_spaces.{name}"):
            return None
        raise
    space = getattr(module, "SPACE", None)
    return None if space is None else _checked(space, f"search_spaces.{name}.SPACE")


@dataclasses.dataclass(frozen=True)
class SpaceEntry:
    """One space ``discover spaces`` lists, loadable or not.

    Attributes:
      name: the space's name.
      space: the space, or None where it cannot be loaded here.
      needs_extra: the optional extra (of ``distribution``) whose packages are missing, if
        that is why it cannot be loaded; read from the entry point, without importing it.
      distribution: the installed distribution that registers it ("" for one found only in
        a source checkout or registered in this process).
      error: why it cannot be loaded, one line (None when it can).
    """

    name: str
    space: Space | None
    needs_extra: str | None = None
    distribution: str = ""
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.space is not None


def _entry_point_extra(name: str, ep) -> MissingExtra | None:
    """The first extra named on ``ep`` (``module:ATTR [rl]``) whose packages are missing."""
    dist = getattr(getattr(ep, "dist", None), "name", None) or extras.DISTRIBUTION
    for extra in ep.extras:
        missing = extras.missing_packages(extra, dist)
        if missing:
            return MissingExtra(f"space {name}", extra, dist, missing)
    return None


def _load_entry_point(name: str, ep) -> Space:
    problem = _entry_point_extra(name, ep)
    if problem is not None:
        raise problem
    return _checked(ep.load(), f"entry point {name!r}")


def space_catalogue() -> list[SpaceEntry]:
    """Every space findable by plain name, loadable or not, sorted by name. A space that
    needs a missing extra is listed with that extra and not imported."""
    found: dict[str, SpaceEntry] = {}
    eps = _entry_points()
    for name in _builtin_names():
        if name in eps:
            continue                      # the installed entry point says what it needs
        try:
            space = _from_builtin(name)
        except Exception as e:  # noqa: BLE001 - one broken space must not hide the others
            found[name] = SpaceEntry(name, None, error=_one_line(e))
            continue
        if space is not None:
            found[name] = SpaceEntry(name, space)
    for name, ep in eps.items():
        dist = getattr(getattr(ep, "dist", None), "name", None) or ""
        problem = _entry_point_extra(name, ep)
        if problem is not None:
            found[name] = SpaceEntry(name, None, problem.extra, dist, str(problem))
            continue
        try:
            found[name] = SpaceEntry(name, _checked(ep.load(), f"entry point {name!r}"), distribution=dist)
        except Exception as e:  # noqa: BLE001
            found[name] = SpaceEntry(name, None, distribution=dist, error=_one_line(e))
    for name, space in _registered.items():
        found[name] = SpaceEntry(name, space)
    return [found[n] for n in sorted(found)]


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def available_spaces() -> dict[str, Space]:
    """Every space that ``get_space`` can find by plain name and load here, by name. A
    space whose package fails to load is left out with a warning (``get_space`` raises its
    error); one that needs a missing extra is left out silently (``space_catalogue`` lists it)."""
    out = {}
    for entry in space_catalogue():
        if entry.space is not None:
            out[entry.name] = entry.space
        elif entry.needs_extra is None:
            warnings.warn(f"space {entry.name!r} could not be loaded: {entry.error}", stacklevel=2)
    return out


def get_space(name: str) -> Space:
    """The space called ``name`` (or referenced as ``"module.path:ATTR"``).

    Raises:
      UnknownSpace: no space has that name; the message lists the available ones.
      MissingExtra: the space needs an optional extra that is not installed.
    """
    if not isinstance(name, str) or not name:
        raise UnknownSpace(f"unknown space {name!r}; a space name is a non-empty string")
    if ":" in name:
        return _from_reference(name)
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if ep is not None:
        return _load_entry_point(name, ep)
    space = _from_builtin(name)
    if space is not None:
        return space
    available = ", ".join(e.name for e in space_catalogue()) or "none"
    raise UnknownSpace(f"unknown space {name!r}; available: {available}")


def default_space_name(accept: Callable[[Space], bool] = lambda space: True) -> str:
    """The space a command uses when none is named: the first one, in the registry's order
    (entry points as their distributions list them, then the source checkout's packages),
    that loads here and that ``accept`` takes.

    Raises:
      UnknownSpace: none does.
    """
    for name, ep in _entry_points().items():
        if _entry_point_extra(name, ep) is not None:
            continue
        try:
            space = _checked(ep.load(), f"entry point {name!r}")
        except Exception:  # noqa: BLE001 - a broken space is not a default
            continue
        if accept(space):
            return name
    for name in _builtin_names():
        try:
            space = _from_builtin(name)
        except Exception:  # noqa: BLE001
            continue
        if space is not None and accept(space):
            return name
    raise UnknownSpace("no installed search space fits; see `discover spaces`")
