"""ORM models of the lineage database. Private: the store converts rows to frozen records.

The schema itself is owned by the Alembic migrations in ``migrations/versions``; these
models must describe the same tables (a test compares them with a migrated database), and
a change here needs a new migration.

Choices that hold on every backend:
  * JSON payloads (config, metrics, curves) are stored as text, not as a JSON column type:
    metrics may hold NaN or infinities, which Python's ``json`` writes and reads back but
    PostgreSQL's ``json`` type rejects.
  * Statuses are short strings checked in Python, so adding one needs no table rebuild.
  * Timestamps are written in UTC by the store; SQLite keeps them without zone, and the
    store re-attaches UTC on reading.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, DateTime, Double, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, identical on every backend, so later migrations can refer
# to them (SQLite's batch mode needs names to drop or alter a constraint).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = 200  # length of short names: runs, spaces, mutators, models, devices
STATUS = 16


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    space: Mapped[str] = mapped_column(String(NAME))
    config: Mapped[str] = mapped_column(Text)
    versions: Mapped[str] = mapped_column(Text)
    mutator: Mapped[str | None] = mapped_column(String(NAME))
    model: Mapped[str | None] = mapped_column(String(NAME))
    seed: Mapped[int] = mapped_column(BigInteger)
    budget: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(STATUS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "space"),)


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String(64))
    space: Mapped[str] = mapped_column(String(NAME))
    generation: Mapped[int] = mapped_column(Integer)
    edit: Mapped[str | None] = mapped_column(Text)
    mutator: Mapped[str | None] = mapped_column(String(NAME))
    model: Mapped[str | None] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(STATUS))
    score: Mapped[float | None] = mapped_column(Double)
    held_out_score: Mapped[float | None] = mapped_column(Double)
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # A resumed run re-proposing a program finds the stored one instead of a duplicate.
        UniqueConstraint("run_id", "code_hash"),
        Index(None, "run_id", "status"),
        Index(None, "run_id", "score"),
    )


class ProgramParent(Base):
    __tablename__ = "program_parents"

    child_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(STATUS))

    __table_args__ = (Index(None, "parent_id"),)


class Evaluation(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(500))
    seed: Mapped[int] = mapped_column(BigInteger)
    split: Mapped[str] = mapped_column(String(STATUS))
    status: Mapped[str] = mapped_column(String(STATUS))
    metrics: Mapped[str] = mapped_column(Text)
    curve: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    wall_time: Mapped[float] = mapped_column(Double)
    device: Mapped[str | None] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    harness: Mapped[str | None] = mapped_column(String(64))

    # One row per (program, task, seed, split): recording it again returns the stored one.
    __table_args__ = (UniqueConstraint("program_id", "task", "seed", "split"),)


class Rejection(Base):
    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    parent_ids: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer)
    edit: Mapped[str | None] = mapped_column(Text)
    mutator: Mapped[str | None] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("run_id", "code_hash"),)


class LLMCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(NAME))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Double)
    latency_s: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(STATUS))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "run_id"),)


class Reflection(Base):
    __tablename__ = "reflections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(STATUS))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "run_id", "kind"),)
