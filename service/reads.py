"""The API's hot reads: a job by id (what pollers ask for, many times a second) and an API
key by prefix (on every authenticated request).

Each is one statement — the job comes with its queue position — with no ORM objects and no
transaction around it (one statement reads one snapshot). On PostgreSQL they run on the app's
async psycopg pool (``service.pg``) straight from the event loop, so a poll never waits for a
thread; on SQLite (the embedded default) the same statements run in the thread pool through
SQLAlchemy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, Select, and_, bindparam, case, select
from starlette.concurrency import run_in_threadpool

from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.models import ApiKey, Job
from service.jobs.presenter import JOB_COLUMNS
from service.pg import compiled, execute_one

Row = Mapping[str, Any]


def _job_statement() -> Select[Any]:
    waiting = repo.jobs_ahead(Job.queue, Job.id).scalar_subquery()
    position = case((Job.status == JobStatus.queued.value, waiting + 1), else_=None)
    columns = [getattr(Job, name) for name in JOB_COLUMNS]
    return select(*columns, position.label("queue_position")).where(
        and_(Job.tenant_id == bindparam("tenant_id"), Job.id == bindparam("job_id"))
    )


def _key_statement() -> Select[Any]:
    return select(ApiKey.tenant_id, ApiKey.role, ApiKey.secret_sha256, ApiKey.revoked_at).where(
        ApiKey.prefix == bindparam("prefix")
    )


JOB = _job_statement()
API_KEY = _key_statement()


class StoreReads(Protocol):
    async def job(self, tenant_id: str, job_id: str) -> Row | None:
        """The job's ``JOB_COLUMNS`` and ``queue_position`` (None unless queued)."""

    async def api_key(self, prefix: str) -> Row | None: ...


class ThreadedReads:
    """Any SQLAlchemy engine, in the thread pool (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def job(self, tenant_id: str, job_id: str) -> Row | None:
        return await run_in_threadpool(self._one, JOB, {"tenant_id": tenant_id, "job_id": job_id})

    async def api_key(self, prefix: str) -> Row | None:
        return await run_in_threadpool(self._one, API_KEY, {"prefix": prefix})

    def _one(self, statement: Select[Any], params: dict[str, Any]) -> Row | None:
        with self._engine.connect() as connection:
            found = connection.execute(statement, params).mappings().first()
            return dict(found) if found is not None else None


class PostgresReads:
    """On the app's async psycopg pool (``service.pg``); statements are prepared server-side
    after their first use."""

    def __init__(self, pool: AsyncConnectionPool, engine: Engine) -> None:
        self._pool = pool
        self._job = compiled(JOB, engine)
        self._api_key = compiled(API_KEY, engine)

    async def job(self, tenant_id: str, job_id: str) -> Row | None:
        return await execute_one(self._pool, self._job, {"tenant_id": tenant_id, "job_id": job_id})

    async def api_key(self, prefix: str) -> Row | None:
        return await execute_one(self._pool, self._api_key, {"prefix": prefix})


def store_reads(engine: Engine, pool: AsyncConnectionPool | None) -> StoreReads:
    """On PostgreSQL, the app's async pool; elsewhere the engine in the thread pool."""
    if pool is not None:
        return PostgresReads(pool, engine)
    return ThreadedReads(engine)
