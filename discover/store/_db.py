"""Engines, connection settings, schema upgrades and error messages of the lineage store.

SQLite (the default) is set up for several processes writing one file:
  * WAL journal: readers never block the writer and the writer never blocks readers;
  * a busy timeout: a writer waits for the lock instead of failing at once;
  * writes begin with ``BEGIN IMMEDIATE``: a transaction takes the write lock when it
    starts, so two writers never both read and then both try to upgrade to a write lock,
    which SQLite can only resolve by failing one of them with "database is locked";
  * ``synchronous=FULL``: every commit is on disk when it returns, so neither a killed
    process nor a power cut loses a write the store has acknowledged;
  * foreign keys enforced (SQLite leaves them off unless asked).
PostgreSQL gets a short connect timeout, so an unreachable server fails in seconds, and
pre-ping, so a long run survives a server restart between two writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

DEFAULT_URL = "sqlite:///runs/discover.db"
ENV_VAR = "DISCOVER_DB"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_S = 60.0
PG_CONNECT_TIMEOUT_S = 5
# Key of the PostgreSQL advisory lock that serialises schema upgrades between processes
# (any fixed 64-bit number; this one spells "discover" in ASCII).
PG_SCHEMA_LOCK = 0x646973636F766572

# Execution option read by the SQLite "begin" hook: the BEGIN mode of a transaction.
BEGIN_OPTION = "discover_sqlite_begin"


class StoreError(RuntimeError):
    """The lineage database cannot be opened or used (a one-sentence reason)."""


def default_url() -> str:
    """``$DISCOVER_DB`` if set, else ``sqlite:///runs/discover.db`` (relative to the working directory)."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def display_url(url: URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def reason(exc: BaseException) -> str:
    """One line saying why a database operation failed, from the driver's own message."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    msg = lines[0] if lines else type(orig).__name__
    # psycopg prefixes every connection failure with "connection failed: ".
    msg = re.sub(r"^connection failed:\s*", "", msg)
    return re.sub(r"\s+", " ", msg).rstrip(".")


def _sqlite_file(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def _on_sqlite_connect(dbapi_conn, _record) -> None:
    # Take transaction control away from the sqlite3 module (which would open transactions
    # lazily, before the first write only); the "begin" hook below emits BEGIN instead.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
    finally:
        cur.close()


def _on_sqlite_begin(conn) -> None:
    mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engines(url_text: str) -> tuple[Engine, Engine]:
    """(reader, writer) engines sharing one connection pool; the writer's transactions
    take SQLite's write lock at BEGIN. Raises StoreError for a malformed URL or a missing
    driver."""
    shown = display_url(url_text)
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise StoreError(f"cannot open database {shown!r}: not a database URL "
                         "(expected e.g. sqlite:///runs/discover.db or postgresql+psycopg://user@host/db)") from None
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            path = _sqlite_file(url)
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"cannot open database {shown!r}: cannot create its folder "
                                     f"'{path.parent}' ({e.strerror or e})") from None
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            event.listen(engine, "connect", _on_sqlite_connect)
            event.listen(engine, "begin", _on_sqlite_begin)
            return engine, engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        connect_args = {}
        if backend == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        return engine, engine
    except NoSuchModuleError:
        raise StoreError(f"cannot open database {shown!r}: unknown database kind {url.drivername!r}") from None
    except ImportError as e:
        if backend == "postgresql":
            from discover.extras import MissingExtra
            hint = str(MissingExtra("PostgreSQL", "postgres"))
            raise StoreError(f"cannot open database {shown!r}: {hint}") from None
        raise StoreError(f"cannot open database {shown!r}: its driver is not installed ({e.name or e})") from None


def alembic_config(url_text: str | None = None) -> Config:
    """An Alembic configuration for the store's migrations, usable with ``alembic.command``
    (e.g. ``command.revision(alembic_config(url), "add a column", autogenerate=True)``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url_text is not None:
        # ConfigParser interpolation: a literal "%" in the URL (escaped password) must be doubled.
        cfg.set_main_option("sqlalchemy.url", url_text.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of the package knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; ``None`` for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(reader: Engine, writer: Engine, shown: str) -> None:
    """Brings the database's schema to the newest revision. Cheap when it is there already;
    otherwise the upgrade runs in one transaction holding a schema lock, so processes that
    open a new database at the same moment upgrade it once."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    current = current_revision(reader)
    if current == head:
        return
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            raise StoreError(f"cannot open database {shown!r}: its schema revision {current!r} is unknown to this "
                             f"version of discover (newest {head!r}); it was written by a newer discover "
                             "or by another program") from None
    cfg = alembic_config()
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_engines(url_text: str) -> tuple[Engine, Engine]:
    """Engines for ``url_text`` with the schema at the newest revision; any failure to
    reach, read or upgrade the database becomes one StoreError."""
    shown = display_url(url_text)
    reader, writer = make_engines(url_text)
    try:
        upgrade(reader, writer, shown)
    except StoreError:
        reader.dispose()
        raise
    except (SQLAlchemyError, CommandError, OSError) as e:
        reader.dispose()
        raise StoreError(f"cannot open database {shown!r}: {reason(e)}") from None
    except Exception as e:
        # Errors raised by the driver inside connect hooks (e.g. sqlite3.DatabaseError from
        # a PRAGMA on a file that is not a database) arrive unwrapped.
        dbapi = getattr(reader.dialect, "loaded_dbapi", None)
        if dbapi is not None and isinstance(e, getattr(dbapi, "Error", ())):
            reader.dispose()
            raise StoreError(f"cannot open database {shown!r}: {reason(e)}") from None
        raise
    return reader, writer
