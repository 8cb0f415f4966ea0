"""jobs: index on (queue, status, id) for queue positions

A queue position counts the queued jobs of one queue created before a job; the index keeps
that count an index-only range scan (the poll of a queued job and every submission ask it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 01:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_queue_status_id", "jobs", ["queue", "status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_queue_status_id", table_name="jobs")
