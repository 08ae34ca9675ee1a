"""Evaluations record the harness version that computed them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08

``evaluations.harness``: a digest of the evaluator and scoring code and the options an
evaluation ran with (``discover.space.Space.harness_version``), so that numbers computed
differently are never mixed. Rows from before this revision keep NULL: their harness is
unknown.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("harness", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("harness")
