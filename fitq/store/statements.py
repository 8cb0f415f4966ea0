"""The statements of the API's hot paths (a job poll, an API-key check, a submission's
reads and writes), written once in SQLAlchemy Core. The service only executes them: on
PostgreSQL compiled for the async psycopg pool (``service/pg.py``), on SQLite through the
engine (``service/reads.py``, ``service/jobs/submission_store.py``). The ORM's queries are
in ``fitq/store/repository``, and these reuse its pieces (``jobs_ahead``, ``kept_count``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnClause,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    column,
    delete,
    false,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.sql.expression import Delete, TableValuedAlias

from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.models import ApiKey, Dataset, IdempotencyKey, Job, JobCount, WorkerBeat

# The columns a job's document is made of (the hot read selects exactly these): the ORM
# marks them (``models.SHOWN``).
JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns if column.info.get("shown"))


def numbered_queries(*columns: ColumnClause[Any]) -> TableValuedAlias:
    """The ``queries`` parameter — a JSON array of objects, one per query of a group read —
    as rows ``q(i, *columns)``, ``i`` numbering the queries: what a group read's statement
    selects from (``read_numbered`` fills it)."""
    return (
        func.jsonb_to_recordset(bindparam("queries", type_=JSONB))
        .table_valued(column("i", Integer), *columns)
        .render_derived(name="q", with_types=True)
    )


def job_columns() -> list[Any]:
    waiting = repo.jobs_ahead(Job.queue, Job.id).scalar_subquery()
    position = case((Job.status == JobStatus.queued.value, waiting + 1), else_=None)
    return [*(getattr(Job, name) for name in JOB_COLUMNS), position.label("queue_position")]


def job_statement() -> Select[Any]:
    return select(*job_columns()).where(
        and_(Job.tenant_id == bindparam("tenant_id"), Job.id == bindparam("job_id"))
    )


def jobs_statement() -> Select[Any]:
    """``job_statement`` for many polls at once (PostgreSQL): ``queries`` is a JSON array
    of ``{i, tenant_id, job_id}``; each job found comes with its query's ``i``."""
    query = numbered_queries(column("tenant_id", String), column("job_id", String))
    found = and_(Job.tenant_id == query.c.tenant_id, Job.id == query.c.job_id)
    return select(query.c.i, *job_columns()).select_from(query.join(Job, found))


def key_statement() -> Select[Any]:
    return select(ApiKey.tenant_id, ApiKey.role, ApiKey.secret_sha256, ApiKey.revoked_at).where(
        ApiKey.prefix == bindparam("prefix")
    )


JOB = job_statement()
API_KEY = key_statement()


@dataclass(frozen=True)
class DatasetFacts:
    """What a submission's checks read of a referenced dataset: ``Dataset``'s columns of the
    same names (``service.datasets.service.StoredDataset``), as plain values."""

    id: str
    status: str
    rows: int | None
    x_shape: list[int] | None
    y_shape: list[int] | None
    stats: dict[str, Any] | None
    labels: list[str] | None
    feature_names: list[str] | None  # what a reference's named inputs pick columns by
    target_names: list[str] | None


DATASET_COLUMNS = tuple(f.name for f in fields(DatasetFacts))


def idempotency_key_matches() -> ColumnElement[bool]:
    return and_(
        IdempotencyKey.tenant_id == bindparam("tenant_id"),
        IdempotencyKey.key == bindparam("key"),
    )


def facts_columns(tenant: Any, key: Any, active: Any) -> list[Any]:
    """What a submission's checks read, for the tenant and idempotency key given (values,
    bind parameters or an outer row's columns) and its active jobs (``active``): the
    tenant's usage, the live workers' queues (``;``-joined, when ``live_since`` is set), the
    key's earlier use, and the columns of a referenced dataset (joined by the caller)."""

    def earlier(column: Any) -> Any:
        return (
            select(column)
            .where(IdempotencyKey.tenant_id == tenant, IdempotencyKey.key == key)
            .scalar_subquery()
        )

    live = select(func.aggregate_strings(WorkerBeat.queues, ";")).where(
        WorkerBeat.heartbeat_at >= bindparam("live_since")
    )
    stored = repo.dataset_bytes_total(tenant).correlate_except(Dataset)
    return [
        active.label("active_jobs"),
        stored.scalar_subquery().label("stored_bytes"),
        live.scalar_subquery().label("live_queues"),
        earlier(IdempotencyKey.request_hash).label("key_request_hash"),
        earlier(IdempotencyKey.job_id).label("key_job_id"),
        earlier(IdempotencyKey.created_at).label("key_created_at"),
        *(getattr(Dataset, name) for name in DATASET_COLUMNS),
    ]


@lru_cache(maxsize=8)
def facts_statement(datasets: int) -> Select[Any]:
    """Everything one submission's checks read, in one statement: a row per referenced
    dataset of the tenant (or one row without), each with ``facts_columns``. Binds:
    ``tenant_id``, ``key``, ``live_since``, ``dataset_0``…"""
    tenant: BindParameter[str] = bindparam("tenant_id")
    ids: list[BindParameter[str]] = [bindparam(f"dataset_{i}") for i in range(datasets)]
    referenced = and_(Dataset.tenant_id == tenant, Dataset.id.in_(ids)) if ids else false()
    one_row = select(literal(1).label("one")).subquery("one")
    active = repo.active_jobs_count(tenant).scalar_subquery()
    return select(*facts_columns(tenant, bindparam("key"), active)).select_from(
        one_row.outerjoin(Dataset, referenced)
    )


@lru_cache(maxsize=1)
def facts_many_statement() -> Select[Any]:
    """``facts_statement`` for many submissions at once (PostgreSQL): ``queries`` is a JSON
    array of ``{i, tenant_id, key, dataset_ids}``; the rows carry their query's ``i``. The
    active jobs are the counts the triggers keep (``JobCount``), not counted rows."""
    query = numbered_queries(
        column("tenant_id", String), column("key", String), column("dataset_ids", ARRAY(String))
    )
    active = repo.kept_count("active", query.c.tenant_id).scalar_subquery()
    referenced = and_(
        Dataset.tenant_id == query.c.tenant_id, Dataset.id == func.any(query.c.dataset_ids)
    )
    return select(query.c.i, *facts_columns(query.c.tenant_id, query.c.key, active)).select_from(
        query.outerjoin(Dataset, referenced)
    )


def submission_statements() -> dict[str, Delete | Select[Any]]:
    return {
        "expired_idempotency": delete(IdempotencyKey).where(
            idempotency_key_matches(), IdempotencyKey.created_at < bindparam("expired_before")
        ),
        "gpu_use": repo.gpu_use_since(bindparam("tenant_id"), bindparam("gpu_since")),
        "jobs_ahead": repo.jobs_ahead(bindparam("queue"), bindparam("job_id")),
    }


SUBMISSION_STATEMENTS = submission_statements()


def queued_statement() -> Select[Any]:
    """Per queue of a batch (``queues``), its queued jobs (the kept count) and the queued ids
    from the batch's first id on (the few committed beside the batch, a short index range):
    its positions, whatever its size and however long the queue, without a count per job
    (``repo.jobs_ahead`` in bulk). PostgreSQL (``JobCount``)."""
    since = (
        select(func.array_agg(aggregate_order_by(Job.id, Job.id)))
        .where(
            Job.queue == JobCount.name,
            Job.status == JobStatus.queued.value,
            Job.id >= bindparam("first_id"),
        )
        .scalar_subquery()
    )
    return select(
        JobCount.name.label("queue"), JobCount.jobs.label("queued"), since.label("since")
    ).where(JobCount.kind == "queued", JobCount.name == func.any(bindparam("queues")))
