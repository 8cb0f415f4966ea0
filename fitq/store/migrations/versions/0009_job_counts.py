"""job_counts: active jobs per tenant and queued jobs per queue, kept by triggers (PostgreSQL)

A submission checks the tenant's active-job quota and answers its queue position; counting
rows for both costs as many index entries as there are jobs waiting, per submission. These
counters make both O(1). Statement-level triggers with transition tables keep them: each
statement adds its net change per counter, in sorted order (two statements lock the counter
rows they share in the same order). A transaction that changes the counted jobs of several
tenants or queues in several statements could still deadlock with another (PostgreSQL would
abort one): fitq changes jobs one per transaction, or a batch in one statement. On SQLite
(embedded, one process) counts stay computed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('queued', 'running')"
QUEUED = "status = 'queued'"


def _changes(rows: str, sign: int) -> str:
    return (
        f"SELECT 'active' AS kind, tenant_id AS name, {sign} AS delta FROM {rows} WHERE {ACTIVE}"
        f" UNION ALL SELECT 'queued', queue, {sign} FROM {rows} WHERE {QUEUED}"
    )


def _apply(changes: str) -> str:
    return f"""
        INSERT INTO job_counts AS c (kind, name, jobs)
        SELECT kind, name, sum(delta) FROM ({changes}) AS changes
        GROUP BY kind, name HAVING sum(delta) <> 0
        ORDER BY kind, name
        ON CONFLICT (kind, name) DO UPDATE SET jobs = c.jobs + excluded.jobs;"""


FUNCTION = f"""
CREATE FUNCTION job_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN{_apply(_changes("new_rows", 1))}
    ELSIF TG_OP = 'DELETE' THEN{_apply(_changes("old_rows", -1))}
    ELSE{_apply(_changes("new_rows", 1) + " UNION ALL " + _changes("old_rows", -1))}
    END IF;
    RETURN NULL;
END $$;
"""

# A trigger with transition tables serves one event.
TRIGGERS = {
    "job_counts_insert": "AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows",
    "job_counts_update": (
        "AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "job_counts_delete": "AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows",
}


# TRUNCATE fires no delete triggers: it empties the counts with the jobs.
TRUNCATE_FUNCTION = """
CREATE FUNCTION job_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "job_counts",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    op.execute(FUNCTION)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION job_counts_apply()")  # fmt: skip
    op.execute(TRUNCATE_FUNCTION)
    op.execute("CREATE TRIGGER job_counts_truncate AFTER TRUNCATE ON jobs "
               "FOR EACH STATEMENT EXECUTE FUNCTION job_counts_clear()")  # fmt: skip
    # The triggers' lock on jobs holds writers off until this transaction commits: the
    # counts below and the triggers' changes after it add up.
    op.execute(_apply(_changes("jobs", 1)))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in [*TRIGGERS, "job_counts_truncate"]:
        op.execute(f"DROP TRIGGER {name} ON jobs")
    op.execute("DROP FUNCTION job_counts_apply()")
    op.execute("DROP FUNCTION job_counts_clear()")
    op.drop_table("job_counts")
