"""Finding search spaces by name.

A space is found, in this order, as:

1. ``"module.path:ATTR"``: the attribute ``ATTR`` of an importable module. This is how a
   space defined outside any package (a test's toy space, a user's script) reaches an
   executor's worker processes, which resolve spaces by name in a fresh interpreter;
2. a space registered in this process with ``register_space`` (visible to this process
   only, so not to executor workers: use form 1 or an entry point for those);
3. an entry point named ``name`` in the ``discover.spaces`` group, whose object is the
   space (``cfr_variants = "search_spaces.cfr_variants:SPACE"``): how installed packages,
   third-party ones included, add spaces;
4. ``search_spaces.<name>.SPACE``, so that a source checkout works before ``pip install``.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

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


def available_spaces() -> dict[str, Space]:
    """Every space that ``get_space`` can find by plain name, by name. A space whose
    package fails to load is left out with a warning (``get_space`` raises its error)."""
    found: dict[str, Space] = {}
    for name in _builtin_names():
        try:
            space = _from_builtin(name)
        except Exception as e:  # noqa: BLE001 - one broken space must not hide the others
            warnings.warn(f"space {name!r} could not be loaded: {e}", stacklevel=2)
            continue
        if space is not None:
            found[name] = space
    for name, ep in _entry_points().items():
        try:
            found[name] = _checked(ep.load(), f"entry point {name!r}")
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"space {name!r} could not be loaded: {e}", stacklevel=2)
    found.update(_registered)
    return found


def get_space(name: str) -> Space:
    """The space called ``name`` (or referenced as ``"module.path:ATTR"``).

    Raises:
      UnknownSpace: no space has that name; the message lists the available ones.
    """
    if not isinstance(name, str) or not name:
        raise UnknownSpace(f"unknown space {name!r}; a space name is a non-empty string")
    if ":" in name:
        return _from_reference(name)
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if ep is not None:
        return _checked(ep.load(), f"entry point {name!r}")
    space = _from_builtin(name)
    if space is not None:
        return space
    available = ", ".join(sorted(available_spaces())) or "none"
    raise UnknownSpace(f"unknown space {name!r}; available: {available}")
