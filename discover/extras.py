"""Optional extras: which one a feature needs, whether it is installed, and one line saying so.

The core install (``pip install -e .``) runs the game spaces and every command on them.
Heavier stacks are optional extras of the distribution (``rl``: flax, gymnax, evosax,
optax; ``llm``: litellm, openai; ``postgres``: psycopg; ``ray``; ``torch``), imported only
where they are used. Where a feature needs one, it asks ``require(extra, what)`` first, so
a missing stack is one line naming the extra, never an ``ImportError`` traceback.

What an extra contains is read from the distribution's metadata (its ``Requires-Dist``
lines with ``extra == "NAME"``), so ``pyproject.toml`` is the one place that lists it. A
space states the extras it needs on its ``discover.spaces`` entry point
(``ppo_objectives = "search_spaces.ppo_objectives:SPACE [rl]"``), which lets
``discover spaces`` tell what a space needs without importing it.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
from pathlib import Path
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement

DISTRIBUTION = "discover"


class MissingExtra(RuntimeError):
    """A feature needs an optional extra that is not installed; the message is one line
    with the command that installs it."""

    def __init__(self, what: str, extra: str, distribution: str = DISTRIBUTION, missing: Iterable[str] = ()):
        self.what, self.extra, self.distribution = what, extra, distribution
        self.missing = tuple(missing)
        super().__init__(f"{what} needs the {extra} extra: {install_hint(extra, distribution)}")


@functools.lru_cache(maxsize=None)
def _requirements(distribution: str) -> tuple[Requirement, ...]:
    try:
        lines = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return ()
    out = []
    for line in lines:
        try:
            out.append(Requirement(line))
        except InvalidRequirement:
            continue
    return tuple(out)


def extra_requirements(extra: str, distribution: str = DISTRIBUTION) -> tuple[Requirement, ...]:
    """The requirements that ``extra`` of ``distribution`` adds (empty where the
    distribution is not installed or has no such extra). Requirements that name the
    distribution itself (``discover[rl]`` inside another extra) are expanded."""
    out: list[Requirement] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for req in _requirements(distribution):
            if req.marker is None or not req.marker.evaluate({"extra": name}):
                continue
            if req.marker.evaluate({"extra": ""}):
                continue                      # a core requirement, true for every extra
            if _canonical(req.name) == _canonical(distribution):
                for sub in req.extras:
                    visit(sub)
            else:
                out.append(req)

    visit(extra)
    return tuple(out)


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed(req: Requirement) -> bool:
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(version, prereleases=True)


def missing_packages(extra: str, distribution: str = DISTRIBUTION) -> list[str]:
    """Requirements of ``extra`` that are not installed (or not at a matching version)."""
    return [_without_marker(r) for r in extra_requirements(extra, distribution) if not _installed(r)]


def _without_marker(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def installed(extra: str, distribution: str = DISTRIBUTION) -> bool:
    """Whether every requirement of ``extra`` is installed. An extra the metadata does not
    know (a source checkout that was never installed) counts as installed: the import
    itself then decides."""
    return not missing_packages(extra, distribution)


def require(extra: str, what: str, distribution: str = DISTRIBUTION) -> None:
    """Raises ``MissingExtra`` ("``what`` needs the ``extra`` extra: pip install ...") unless
    every package of ``extra`` is installed."""
    missing = missing_packages(extra, distribution)
    if missing:
        raise MissingExtra(what, extra, distribution, missing)


def install_hint(extra: str, distribution: str = DISTRIBUTION) -> str:
    """The command that installs ``extra``: ``pip install -e '.[rl]'`` for an editable
    install from the current directory, ``pip install -e 'PATH[rl]'`` from another one,
    ``pip install 'discover[rl]'`` otherwise."""
    path = _editable_path(distribution)
    if path is None:
        return f"pip install '{distribution}[{extra}]'"
    try:
        here = Path.cwd().resolve() == path.resolve()
    except OSError:
        here = False
    return f"pip install -e '{'.' if here else str(path)}[{extra}]'"


@functools.lru_cache(maxsize=None)
def _editable_path(distribution: str) -> Path | None:
    try:
        text = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = info.get("url", "")
    return Path(url[len("file://"):]) if url.startswith("file://") else None
