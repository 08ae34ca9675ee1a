"""The lineage store: everything a discovery run does, in a SQL database.

SQLite at ``runs/discover.db`` by default (``$DISCOVER_DB`` overrides it), or any
SQLAlchemy URL, e.g. ``postgresql+psycopg://user:password@host/db`` for runs shared by
several machines. ``Store.open(url)`` creates the database if needed and upgrades its
schema (Alembic migrations in ``discover/store/migrations``); the store's methods return
frozen records (``discover.store.records``), never ORM rows.

Candidates dropped before evaluation are ``rejections`` (their own table), not programs:
the programs of a run are exactly the ones stored for evaluation.
"""

from discover.store._db import StoreError, alembic_config, default_url, head_revision
from discover.store.records import (CROSSOVER, EVALUATED, HELD_OUT, INSPIRATION, INVALID, LONG, PARENT,
                                    PARENT_ROLES, PENDING, PROGRAM_STATUSES, REEVAL, REFLECTION_KINDS,
                                    RUN_FAILED, RUN_FINISHED, RUN_RUNNING, RUN_STATUSES, RUN_STOPPED, SHORT,
                                    SPLITS, TRAIN, EvaluationRecord, LLMCallRecord, ParentEdge, ProgramRecord,
                                    ReflectionRecord, RejectionRecord, RunRecord, code_hash)
from discover.store.store import Store

__all__ = [
    "Store", "StoreError", "default_url", "alembic_config", "head_revision", "code_hash",
    "RunRecord", "ProgramRecord", "ParentEdge", "EvaluationRecord", "RejectionRecord", "LLMCallRecord",
    "ReflectionRecord",
    "RUN_STATUSES", "RUN_RUNNING", "RUN_FINISHED", "RUN_FAILED", "RUN_STOPPED",
    "PROGRAM_STATUSES", "PENDING", "EVALUATED", "INVALID",
    "SPLITS", "TRAIN", "HELD_OUT", "REEVAL",
    "PARENT_ROLES", "PARENT", "INSPIRATION", "CROSSOVER",
    "REFLECTION_KINDS", "SHORT", "LONG",
]
