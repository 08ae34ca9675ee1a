"""What every command module of the command line shares: the one-line error, the console,
number formatting, and opening the store and spaces with their errors mapped to that line.

``discover.cli`` builds the parser and imports the command modules (``lineage``,
``tune``, ``meta_train``); they import only this module, so there is no cycle.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from rich.console import Console

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def console(stderr: bool = False) -> Console:
    """A console for tables and progress; piped into a log it is 200 columns wide, since
    rich would otherwise assume 80 and cut the numbers."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=True, width=None if stream.isatty() else 200)


def fmt(x: Any, spec: str = ".4f") -> str:
    """``x`` formatted with ``spec``; "—" for None, NaN and infinities."""
    if x is None or isinstance(x, bool):
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    return format(v, spec) if math.isfinite(v) else "—"


def open_store(url: str | None):
    """The store at ``url`` (default ``$DISCOVER_DB``, else SQLite under runs/)."""
    from discover.store import Store, StoreError
    try:
        return Store.open(url)
    except StoreError as e:
        raise CliError(str(e)) from None


def get_space(name: str):
    from discover.spaces import UnknownSpace, get_space as find
    try:
        return find(name)
    except UnknownSpace as e:
        raise CliError(str(e).strip("'\"")) from None


def add_db(parser) -> None:
    """The ``--db`` option every command that reads the lineage takes."""
    parser.add_argument("--db", default=None, help="SQLAlchemy URL of the lineage database "
                        "(default: $DISCOVER_DB, else sqlite:///runs/discover.db)")
