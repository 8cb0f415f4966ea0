"""What a job submission reads and writes, as two calls to the store: ``facts`` (the
idempotency key, the referenced datasets, the tenant's usage, the live queues) and ``insert``
(the rows of one or more jobs — each job, its first event, its idempotency key and any inline
datasets — in one transaction, answering each job's queue position).

On PostgreSQL both run on the app's async psycopg pool, pipelined: one round trip each, no
thread, no ORM. Elsewhere (SQLite, the embedded default) the same SQLAlchemy Core statements
run in the thread pool. The checks on the facts are the use case's (``service.jobs.service``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg import AsyncConnection, OperationalError
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, Table, and_, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable
from starlette.concurrency import run_in_threadpool

from fitq.store import repository as repo
from fitq.store.models import Dataset, IdempotencyKey, Job, JobEvent
from service.pg import Compiled, InsertOf, compiled, unavailable

Row = Mapping[str, Any]


# What a submission's checks read of a referenced dataset (resolve_reference, stored_data).
DATASET_COLUMNS = ("id", "status", "rows", "x_shape", "y_shape", "stats", "labels")


def _statements() -> dict[str, Executable]:
    tenant = bindparam("tenant_id")
    key = and_(IdempotencyKey.tenant_id == tenant, IdempotencyKey.key == bindparam("key"))
    return {
        "idempotency": select(
            IdempotencyKey.request_hash, IdempotencyKey.job_id, IdempotencyKey.created_at
        ).where(key),
        "expired_idempotency": delete(IdempotencyKey).where(
            key, IdempotencyKey.created_at < bindparam("expired_before")
        ),
        "dataset": select(*(getattr(Dataset, name) for name in DATASET_COLUMNS)).where(
            Dataset.tenant_id == tenant, Dataset.id == bindparam("dataset_id")
        ),
        "usage": select(
            repo.active_jobs_count(tenant).scalar_subquery().label("active_jobs"),
            repo.dataset_bytes_total(tenant).scalar_subquery().label("stored_bytes"),
        ),
        "live_queues": repo.live_worker_queues(bindparam("live_since")),
        "gpu_use": repo.gpu_use_since(tenant, bindparam("gpu_since")),
        "jobs_ahead": repo.jobs_ahead(bindparam("queue"), bindparam("job_id")),
    }


STATEMENTS = _statements()


def _positions() -> Executable:
    """Jobs ahead of each of the jobs ``ids`` in its queue (PostgreSQL: ``= ANY(array)``)."""
    ahead = repo.jobs_ahead(Job.queue, Job.id).scalar_subquery()
    return select(Job.id, ahead.label("ahead")).where(Job.id == func.any(bindparam("ids")))


@dataclass(frozen=True)
class FactsQuery:
    tenant_id: str
    dataset_ids: Sequence[str] = ()
    idempotency_key: str | None = None
    live_since: datetime | None = None  # the live workers' queues are read when set
    gpu_since: datetime | None = None  # the GPU runs are read when set


@dataclass(frozen=True)
class Facts:
    """What the checks of a submission need to know, read in one go."""

    idempotency: Row | None  # request_hash, job_id, created_at of the key's earlier use
    datasets: dict[str, Dataset]  # the tenant's datasets among those referenced, by id
    active_jobs: int
    stored_bytes: int
    live_queues: list[str] = field(default_factory=list)  # each live worker's queues
    gpu_use: list[repo.GpuUse] = field(default_factory=list)


@dataclass(frozen=True)
class NewRows:
    """A job's rows, column by column; missing columns take the model's defaults."""

    job: Row
    first_event: Row
    idempotency: Row | None = None
    idempotency_expired_before: datetime | None = None
    datasets: Sequence[Row] = ()


class DuplicateKey(Exception):
    """A concurrent request committed the same idempotency key first."""


class SubmissionStore(Protocol):
    async def facts(self, query: FactsQuery) -> Facts: ...

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        """Writes the jobs' rows in one transaction; each job's queue position (1: next
        out). ``DuplicateKey`` (nothing written) when an idempotency key is taken."""


class ThreadedSubmissions:
    """Any SQLAlchemy engine, in the thread pool (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def facts(self, query: FactsQuery) -> Facts:
        return await run_in_threadpool(self._facts, query)

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        return await run_in_threadpool(self._insert, jobs)

    def _facts(self, query: FactsQuery) -> Facts:
        tenant = {"tenant_id": query.tenant_id}
        with self._engine.connect() as connection:

            def rows(name: str, **params: Any) -> list[Row]:
                found = connection.execute(STATEMENTS[name], {**tenant, **params})  # type: ignore[call-overload]
                return [dict(row) for row in found.mappings()]

            idempotency = (
                rows("idempotency", key=query.idempotency_key) if query.idempotency_key else []
            )
            datasets = [d for i in query.dataset_ids for d in rows("dataset", dataset_id=i)]
            usage = rows("usage")[0]
            live = rows("live_queues", live_since=query.live_since) if query.live_since else []
            gpu = rows("gpu_use", gpu_since=query.gpu_since) if query.gpu_since else []
        return _facts(idempotency, datasets, usage, live, gpu)

    def _insert(self, jobs: Sequence[NewRows]) -> list[int]:
        try:
            with self._engine.begin() as connection:
                for rows in jobs:
                    if rows.idempotency_expired_before is not None and rows.idempotency:
                        expired = {"expired_before": rows.idempotency_expired_before}
                        connection.execute(
                            STATEMENTS["expired_idempotency"],
                            {**_key_of(rows.idempotency), **expired},
                        )
                    for table, row in _rows_in_order(rows):
                        connection.execute(insert(table), [dict(row)])
                ahead = [
                    connection.execute(
                        STATEMENTS["jobs_ahead"],  # type: ignore[call-overload]
                        {"queue": rows.job["queue"], "job_id": rows.job["id"]},
                    ).scalar()
                    for rows in jobs
                ]
        except IntegrityError as exc:
            if any(rows.idempotency is not None for rows in jobs):
                raise DuplicateKey from exc
            raise
        return [int(n or 0) + 1 for n in ahead]


class PostgresSubmissions:
    """On the app's async psycopg pool (``service.pg``), each call pipelined into one round
    trip: the reads on an autocommit connection, the writes in one transaction."""

    def __init__(self, pool: AsyncConnectionPool, engine: Engine) -> None:
        self._pool = pool
        self._sql: dict[str, Compiled] = {n: compiled(s, engine) for n, s in STATEMENTS.items()}
        self._sql["positions"] = compiled(_positions(), engine)
        self._inserts = {t.name: InsertOf(t) for t in _tables()}

    async def facts(self, query: FactsQuery) -> Facts:
        tenant = {"tenant_id": query.tenant_id}
        try:
            async with self._pool.connection() as connection, connection.pipeline():
                idempotency = (
                    await self._rows(connection, "idempotency", tenant, key=query.idempotency_key)
                    if query.idempotency_key
                    else None
                )
                datasets = [
                    await self._rows(connection, "dataset", tenant, dataset_id=i)
                    for i in query.dataset_ids
                ]
                usage = await self._rows(connection, "usage", tenant)
                live = (
                    await self._rows(connection, "live_queues", live_since=query.live_since)
                    if query.live_since
                    else None
                )
                gpu = (
                    await self._rows(connection, "gpu_use", tenant, gpu_since=query.gpu_since)
                    if query.gpu_since
                    else None
                )
                return _facts(
                    await idempotency.fetchall() if idempotency is not None else [],
                    [row for cursor in datasets for row in await cursor.fetchall()],
                    (await usage.fetchall())[0],
                    await live.fetchall() if live is not None else [],
                    await gpu.fetchall() if gpu is not None else [],
                )
        except OperationalError as exc:
            raise unavailable(exc) from exc

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        by_table: dict[str, list[Row]] = {}
        for rows in jobs:
            for table, row in _rows_in_order(rows):
                by_table.setdefault(table.name, []).append(row)
        try:
            async with self._pool.connection() as connection, connection.pipeline():
                async with connection.transaction():
                    for rows in jobs:
                        if rows.idempotency_expired_before is not None and rows.idempotency:
                            await self._rows(
                                connection,
                                "expired_idempotency",
                                _key_of(rows.idempotency),
                                expired_before=rows.idempotency_expired_before,
                            )
                    async with connection.cursor() as cursor:
                        for table in _tables():  # datasets, jobs, events, keys: in that order
                            if table.name in by_table:
                                statement = self._inserts[table.name]
                                values = [statement.values(row) for row in by_table[table.name]]
                                await cursor.executemany(statement.sql, values)
                ids = [rows.job["id"] for rows in jobs]
                ahead = await self._rows(connection, "positions", ids=ids)
                found = {row["id"]: row["ahead"] for row in await ahead.fetchall()}
        except UniqueViolation as exc:
            if exc.diag.table_name == IdempotencyKey.__tablename__:
                raise DuplicateKey from exc
            raise
        except OperationalError as exc:
            raise unavailable(exc) from exc
        return [int(found[job_id] or 0) + 1 for job_id in ids]

    async def _rows(
        self,
        connection: AsyncConnection[Any],
        name: str,
        params: Mapping[str, Any] | None = None,
        **more: Any,
    ) -> Any:
        sql, defaults = self._sql[name]
        return await connection.execute(sql, {**defaults, **(params or {}), **more}, prepare=True)


def row_of(entity: Any) -> dict[str, Any]:
    """A model instance not yet added to a session, as the columns it sets."""
    values = {c.key: getattr(entity, c.key) for c in entity.__table__.columns}
    return {name: value for name, value in values.items() if value is not None}


def _tables() -> list[Table]:
    return [Dataset.__table__, Job.__table__, JobEvent.__table__, IdempotencyKey.__table__]  # type: ignore[list-item]


def _rows_in_order(rows: NewRows) -> list[tuple[Table, Row]]:
    """Datasets before the job that references them; the key after its job."""
    ordered: list[tuple[Table, Row]] = [(Dataset.__table__, d) for d in rows.datasets]  # type: ignore[misc]
    ordered += [(Job.__table__, rows.job), (JobEvent.__table__, rows.first_event)]  # type: ignore[list-item]
    if rows.idempotency is not None:
        ordered.append((IdempotencyKey.__table__, rows.idempotency))  # type: ignore[arg-type]
    return ordered


def _key_of(idempotency: Row) -> dict[str, Any]:
    return {"tenant_id": idempotency["tenant_id"], "key": idempotency["key"]}


def _facts(
    idempotency: list[Row], datasets: list[Row], usage: Row, live: list[Row], gpu: list[Row]
) -> Facts:
    return Facts(
        idempotency=idempotency[0] if idempotency else None,
        datasets={row["id"]: Dataset(**row) for row in datasets},
        active_jobs=int(usage["active_jobs"] or 0),
        stored_bytes=int(usage["stored_bytes"] or 0),
        live_queues=[row["queues"] for row in live],
        gpu_use=[(row["gpus"], row["started_at"], row["finished_at"]) for row in gpu],
    )


def submission_store(engine: Engine, pool: AsyncConnectionPool | None) -> SubmissionStore:
    """On PostgreSQL, the app's async pool; elsewhere the engine in the thread pool."""
    if pool is not None:
        return PostgresSubmissions(pool, engine)
    return ThreadedSubmissions(engine)
