"""sweeps, and the trial columns of jobs

A sweep's trials are jobs: ``jobs.sweep_id`` and ``jobs.trial`` (unique together: a trial's
number is taken once), the values the trial drew (``trial_params``) and what Optuna
recorded on it (``trial_system_attrs``), and why a cancelled job
stopped (``cancel_reason``: requested, or pruned by its sweep's pruner).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSON_TYPE, nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("sampler_state", JSON_TYPE, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_sweeps_tenant_id_id", "sweeps", ["tenant_id", "id"])
    op.create_index("ix_sweeps_status", "sweeps", ["status"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.String(16), nullable=True))
        batch.add_column(sa.Column("sweep_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_params", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("trial_system_attrs", JSON_TYPE, nullable=True))
    op.create_index("ix_jobs_sweep_trial", "jobs", ["sweep_id", "trial"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_sweep_trial", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("trial_system_attrs", "trial_params", "trial", "sweep_id", "cancel_reason"):
            batch.drop_column(column)
    op.drop_index("ix_sweeps_status", "sweeps")
    op.drop_index("ix_sweeps_tenant_id_id", "sweeps")
    op.drop_table("sweeps")
