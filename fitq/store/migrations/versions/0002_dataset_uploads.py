"""dataset uploads: format, options, ingest claim and lease, dtypes, names, stats, labels

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:07:42.863843
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen here, not imported from the models: a migration describes the schema of its day.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.alter_column("dtype", new_column_name="x_dtype")
        batch_op.add_column(sa.Column("format", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("filename", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("options", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("source_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("y_dtype", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("feature_names", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("target_names", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("stats", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("labels", JSON_TYPE, nullable=True))
        batch_op.create_index("ix_datasets_status_lease", ["status", "lease_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_status_lease")
        for column in (
            "labels", "stats", "target_names", "feature_names", "y_dtype", "last_sent_at",
            "sends", "lease_until",
            "attempt", "finished_at", "source_key", "options", "filename", "format",
        ):  # fmt: skip
            batch_op.drop_column(column)
        batch_op.alter_column("x_dtype", new_column_name="dtype")
