"""Initial schema: runs, programs and their parent edges, evaluations, rejections, LLM calls,
reflections.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Written out by hand rather than from the ORM models, so that it stays the schema of
revision 0001 whatever the models become; a test checks that a database migrated to the
newest revision matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME = 200
STATUS = 16


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("space", sa.String(NAME), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.Column("mutator", sa.String(NAME), nullable=True),
        sa.Column("model", sa.String(NAME), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(STATUS), nullable=False),
        _created_at(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("name", name="uq_runs_name"),
    )
    op.create_index("ix_runs_space", "runs", ["space"])

    op.create_table(
        "programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("space", sa.String(NAME), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("edit", sa.Text(), nullable=True),
        sa.Column("mutator", sa.String(NAME), nullable=True),
        sa.Column("model", sa.String(NAME), nullable=True),
        sa.Column("status", sa.String(STATUS), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("held_out_score", sa.Double(), nullable=True),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_programs"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_programs_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "code_hash", name="uq_programs_run_id_code_hash"),
    )
    op.create_index("ix_programs_run_id_status", "programs", ["run_id", "status"])
    op.create_index("ix_programs_run_id_score", "programs", ["run_id", "score"])

    op.create_table(
        "program_parents",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(STATUS), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "ordinal", name="pk_program_parents"),
        sa.ForeignKeyConstraint(["child_id"], ["programs.id"], name="fk_program_parents_child_id_programs",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["programs.id"], name="fk_program_parents_parent_id_programs",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_program_parents_parent_id", "program_parents", ["parent_id"])

    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(500), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("split", sa.String(STATUS), nullable=False),
        sa.Column("status", sa.String(STATUS), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("curve", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("wall_time", sa.Double(), nullable=False),
        sa.Column("device", sa.String(NAME), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name="fk_evaluations_program_id_programs",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("program_id", "task", "seed", "split", name="uq_evaluations_program_id_task_seed_split"),
    )

    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("parent_ids", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("edit", sa.Text(), nullable=True),
        sa.Column("mutator", sa.String(NAME), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_rejections_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "code_hash", name="uq_rejections_run_id_code_hash"),
    )

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(NAME), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("latency_s", sa.Double(), nullable=True),
        sa.Column("status", sa.String(STATUS), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_llm_calls_run_id_runs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name="fk_llm_calls_program_id_programs",
                                ondelete="SET NULL"),
    )
    op.create_index("ix_llm_calls_run_id", "llm_calls", ["run_id"])

    op.create_table(
        "reflections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(STATUS), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_reflections"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_reflections_run_id_runs", ondelete="CASCADE"),
    )
    op.create_index("ix_reflections_run_id_kind", "reflections", ["run_id", "kind"])


def downgrade() -> None:
    for table in ("reflections", "llm_calls", "rejections", "evaluations", "program_parents", "programs", "runs"):
        op.drop_table(table)
