"""jobs.unsent_since: when the broker first refused a queued job's message

A job whose send fails stays queued and is re-sent with backoff; it fails
``broker_unavailable`` only once its sends have failed for ``FITQ_MAX_UNSENT_SECONDS``. NULL
while its last send went through.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("unsent_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("unsent_since")
