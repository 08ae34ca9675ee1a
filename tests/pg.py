"""A fresh PostgreSQL schema for a test, on the server named by ``DISCOVER_TEST_PG_URL``
(``scripts/test`` starts one through ``.ci/postgres.sh`` when run as root, as CI does)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator

import pytest


@contextlib.contextmanager
def fresh_schema_url() -> Iterator[str]:
    """Yields a URL whose every connection lives in a new, empty schema; drops it after.
    Skips the test when no server is configured."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    base = os.environ.get("DISCOVER_TEST_PG_URL")
    if not base:
        pytest.skip("DISCOVER_TEST_PG_URL is not set, so there is no PostgreSQL server to test against "
                    "(run `eval \"$(.ci/postgres.sh)\"` as root to start one)")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
