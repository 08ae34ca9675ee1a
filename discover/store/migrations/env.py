"""Alembic environment: migrates the connection the store hands over.

``Store.open`` runs ``alembic.command.upgrade`` with the open connection in
``config.attributes["connection"]`` (inside its own transaction, holding the schema lock),
so migrations see exactly the engine settings the store uses. Run from the ``alembic``
command line instead, the environment connects to ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from discover.store._models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
