"""What a job submission reads and writes, as two calls to the store: ``facts`` (the
idempotency key, the referenced datasets, the tenant's usage, the live queues) and ``insert``
(the rows of one or more jobs — each job, its first event, its idempotency key and any inline
datasets — in one transaction, answering each job's queue position).

On PostgreSQL each is one statement on the app's async psycopg pool: no thread, no ORM (a
batch's rows go in as one JSON parameter per table). Elsewhere (SQLite, the embedded default)
the same SQLAlchemy Core statements run in the thread pool, a row at a time. The checks on
the facts are the use case's (``service.jobs.service``); batching is ``GroupCommit``'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg import OperationalError
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import (
    Engine,
    Table,
    insert,
)
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from fitq.store import repository as repo
from fitq.store.models import Dataset, IdempotencyKey, Job, JobEvent
from fitq.store.statements import (
    DATASET_COLUMNS,
    SUBMISSION_STATEMENTS,
    DatasetFacts,
    facts_many_statement,
    facts_statement,
    queued_statement,
)
from service.batching import Batcher
from service.pg import (
    Compiled,
    RecordsetInsert,
    compiled,
    execute,
    read_numbered,
    reading,
    unavailable,
)

Row = Mapping[Any, Any]  # a row by column name: psycopg's dict or SQLAlchemy's RowMapping


def _positions(queued: Sequence[Row], jobs: Sequence[NewRows]) -> list[int]:
    """Each new job's position from ``queued_statement``'s rows, read in the snapshot before
    the batch's rows: the queued jobs of its queue before the batch's first id, plus those
    (committed or the batch's own) from there up to and with itself."""
    since = {row["queue"]: row["since"] or [] for row in queued}
    before = {row["queue"]: int(row["queued"]) - len(since[row["queue"]]) for row in queued}
    ours: dict[str, list[str]] = {}
    for rows in jobs:
        ours.setdefault(rows.job["queue"], []).append(rows.job["id"])
    positions: dict[str, int] = {}
    for queue, ids in ours.items():
        for index, job_id in enumerate(sorted({*since.get(queue, []), *ids})):
            positions[job_id] = before.get(queue, 0) + index + 1
    return [positions[rows.job["id"]] for rows in jobs]


@dataclass(frozen=True)
class SubmissionFactsQuery:
    tenant_id: str
    dataset_ids: Sequence[str] = ()
    idempotency_key: str | None = None
    live_since: datetime | None = None  # the live workers' queues are read when set
    gpu_since: datetime | None = None  # the GPU runs are read when set


def _facts_params(query: SubmissionFactsQuery) -> dict[str, Any]:
    return {
        "tenant_id": query.tenant_id,
        "key": query.idempotency_key,
        "live_since": query.live_since,
        **{f"dataset_{i}": dataset_id for i, dataset_id in enumerate(query.dataset_ids)},
    }


@dataclass(frozen=True)
class SubmissionFacts:
    """What the checks of a submission need to know, read in one go."""

    idempotency: Row | None  # request_hash, job_id, created_at of the key's earlier use
    datasets: dict[str, DatasetFacts]  # the tenant's datasets among those referenced, by id
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
    idempotency_expired_before: datetime | None = None  # delete the key's older row first
    datasets: Sequence[Row] = ()


class DuplicateKey(Exception):
    """A concurrent request committed the same idempotency key first."""


class SubmissionStore(Protocol):
    async def read_facts(self, query: SubmissionFactsQuery) -> SubmissionFacts: ...

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        """Writes the jobs' rows in one transaction; each job's queue position (1: next
        out). ``DuplicateKey`` (nothing written) when an idempotency key is taken."""


class ThreadedSubmissions:
    """Any SQLAlchemy engine, in the thread pool (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def read_facts(self, query: SubmissionFactsQuery) -> SubmissionFacts:
        return await run_in_threadpool(self._read_facts_now, query)

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        return await run_in_threadpool(self._insert, jobs)

    def _read_facts_now(self, query: SubmissionFactsQuery) -> SubmissionFacts:
        statement = facts_statement(len(query.dataset_ids))
        with self._engine.connect() as connection:
            rows: Sequence[Row] = (
                connection.execute(statement, _facts_params(query)).mappings().all()
            )
            gpu: Sequence[Row] = []
            if query.gpu_since is not None:
                params = {"tenant_id": query.tenant_id, "gpu_since": query.gpu_since}
                gpu = connection.execute(SUBMISSION_STATEMENTS["gpu_use"], params).mappings().all()
        return _facts_from_rows(rows, gpu)

    def _insert(self, jobs: Sequence[NewRows]) -> list[int]:
        try:
            with self._engine.begin() as connection:
                for rows in jobs:
                    if rows.idempotency_expired_before is not None and rows.idempotency:
                        expired = {"expired_before": rows.idempotency_expired_before}
                        connection.execute(
                            SUBMISSION_STATEMENTS["expired_idempotency"],
                            {**_key_of(rows.idempotency), **expired},
                        )
                    for table, row in _rows_in_order(rows):
                        connection.execute(insert(table), [dict(row)])
                ahead = [
                    connection.execute(
                        SUBMISSION_STATEMENTS["jobs_ahead"],
                        {"queue": rows.job["queue"], "job_id": rows.job["id"]},
                    ).scalar()
                    for rows in jobs
                ]
        except IntegrityError as exc:
            if any(rows.idempotency is not None for rows in jobs):
                raise DuplicateKey from exc
            raise
        return [int(n or 0) + 1 for n in ahead]


# Facts reads in flight at once; the submissions that arrive meanwhile share the next one.
FACT_READERS = 2
MAX_FACTS_BATCH = 64


class PostgresSubmissions:
    """On the app's async psycopg pool (``service.pg``): each call is one statement, shared
    by the submissions that arrive together (a group read, as the group commit writes)."""

    def __init__(self, pool: AsyncConnectionPool, engine: Engine) -> None:
        self._pool = pool
        self._engine = engine
        self._facts_sql = compiled(facts_many_statement(), engine)
        self._sql: dict[str, Compiled] = {
            n: compiled(s, engine) for n, s in SUBMISSION_STATEMENTS.items()
        }
        self._inserts = {t.name: RecordsetInsert(t) for t in _tables()}
        self._write = self._write_statement()
        self._reads: Batcher[SubmissionFactsQuery, SubmissionFacts] = Batcher(
            self._read_facts_batch, MAX_FACTS_BATCH, FACT_READERS
        )

    async def read_facts(self, query: SubmissionFactsQuery) -> SubmissionFacts:
        return await self._reads.submit(query)

    async def _read_facts_batch(
        self, queries: Sequence[SubmissionFactsQuery]
    ) -> list[SubmissionFacts]:
        queried = [
            {"tenant_id": q.tenant_id, "key": q.idempotency_key, "dataset_ids": q.dataset_ids}
            for q in queries
        ]
        # The batch's latest: read a moment later, the same live workers.
        live_since = max((q.live_since for q in queries if q.live_since is not None), default=None)
        rows_of = await read_numbered(
            self._pool, self._facts_sql, queried, {"live_since": live_since}
        )
        return [
            # A query that asked no live queues gets none, as when read alone.
            _facts_from_rows(rows, await self._gpu_use(query), live=query.live_since is not None)
            for query, rows in zip(queries, rows_of, strict=True)
        ]

    async def _gpu_use(self, query: SubmissionFactsQuery) -> list[Row]:
        """The tenant's GPU runs, read only where a GPU-seconds cap is set."""
        if query.gpu_since is None:
            return []
        params = {"tenant_id": query.tenant_id, "gpu_since": query.gpu_since}

        async def read() -> list[Row]:
            async with self._pool.connection() as connection:
                cursor = await execute(connection, self._sql["gpu_use"], params)
                return await cursor.fetchall()

        return await reading(self._pool, read)

    def _write_statement(self) -> Compiled:
        """One statement writes a batch: each table's rows from one JSON parameter (a
        data-modifying CTE each), and reads the queues as they were before (the CTEs' rows
        are not in the statement's snapshot; ``_positions`` adds them)."""
        inserts = ",\n".join(f"{name}_new AS ({i.sql})" for name, i in self._inserts.items())
        sql, defaults = compiled(queued_statement(), self._engine)
        return f"WITH {inserts}\n{sql}", defaults

    async def insert(self, jobs: Sequence[NewRows]) -> list[int]:
        by_table: dict[str, list[Row]] = {name: [] for name in self._inserts}
        for rows in jobs:
            for table, row in _rows_in_order(rows):
                by_table[table.name].append(row)
        ids = [rows.job["id"] for rows in jobs]
        params: dict[str, Any] = {n: self._inserts[n].rows(r) for n, r in by_table.items()}
        params |= {"queues": sorted({rows.job["queue"] for rows in jobs}), "first_id": min(ids)}
        expired = [r for r in jobs if r.idempotency and r.idempotency_expired_before]
        try:
            async with self._pool.connection() as connection:
                # One statement is its own transaction; replacing an expired key needs two.
                async with connection.transaction() if expired else nullcontext():
                    for rows in expired:
                        assert rows.idempotency is not None
                        key = {
                            **_key_of(rows.idempotency),
                            "expired_before": rows.idempotency_expired_before,
                        }
                        await execute(connection, self._sql["expired_idempotency"], key)
                    cursor = await execute(connection, self._write, params)
                    queued = await cursor.fetchall()
        except UniqueViolation as exc:
            if exc.diag.table_name == IdempotencyKey.__tablename__:
                raise DuplicateKey from exc
            raise
        except OperationalError as exc:
            raise unavailable(exc) from exc
        return _positions(queued, jobs)


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


def _facts_from_rows(rows: Sequence[Row], gpu: Sequence[Row], live: bool = True) -> SubmissionFacts:
    """``facts_statement``'s rows (one per dataset found, or one) and the GPU runs read;
    ``live``: the live queues were asked."""
    first = rows[0]
    live_queues = first["live_queues"] if live else None
    return SubmissionFacts(
        idempotency=(
            {
                "request_hash": first["key_request_hash"],
                "job_id": first["key_job_id"],
                "created_at": first["key_created_at"],
            }
            if first["key_job_id"] is not None
            else None
        ),
        datasets={
            row["id"]: DatasetFacts(**{name: row[name] for name in DATASET_COLUMNS})
            for row in rows
            if row["id"] is not None
        },
        active_jobs=int(first["active_jobs"] or 0),
        stored_bytes=int(first["stored_bytes"] or 0),
        live_queues=live_queues.split(";") if live_queues else [],
        gpu_use=[(row["gpus"], row["started_at"], row["finished_at"]) for row in gpu],
    )


def submission_store(engine: Engine, pool: AsyncConnectionPool | None) -> SubmissionStore:
    """On PostgreSQL, the app's async pool; elsewhere the engine in the thread pool."""
    if pool is not None:
        return PostgresSubmissions(pool, engine)
    return ThreadedSubmissions(engine)
