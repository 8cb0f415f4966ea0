"""The API's hot reads: a job by id (what pollers ask for, many times a second) and an API
key by prefix (on every authenticated request).

Each is one statement — the job comes with its queue position — with no ORM objects and no
transaction around it (one statement reads one snapshot). On PostgreSQL they run on the app's
async psycopg pool (``service.pg``) straight from the event loop, so a poll never waits for a
thread; on SQLite (the embedded default) the same statements run in the thread pool through
SQLAlchemy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, Select
from starlette.concurrency import run_in_threadpool

from fitq.store.statements import API_KEY, JOB, jobs_statement
from service.batching import Batcher
from service.pg import compiled, execute_one, read_numbered

Row = Mapping[str, Any]


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


# Poll reads in flight at once; the polls that arrive meanwhile share the next one.
POLL_READERS = 2
MAX_POLL_BATCH = 64


class PostgresReads:
    """On the app's async psycopg pool (``service.pg``); statements are prepared server-side
    after their first use. Polls that arrive together are one statement (a group read, as
    submissions' facts are: ``service.batching``)."""

    def __init__(self, pool: AsyncConnectionPool, engine: Engine) -> None:
        self._pool = pool
        self._jobs = compiled(jobs_statement(), engine)
        self._api_key = compiled(API_KEY, engine)
        self._polls: Batcher[tuple[str, str], Row | None] = Batcher(
            self._read_jobs, MAX_POLL_BATCH, POLL_READERS
        )

    async def job(self, tenant_id: str, job_id: str) -> Row | None:
        return await self._polls.submit((tenant_id, job_id))

    async def _read_jobs(self, queries: Sequence[tuple[str, str]]) -> list[Row | None]:
        polled = [{"tenant_id": tenant_id, "job_id": job_id} for tenant_id, job_id in queries]
        found = await read_numbered(self._pool, self._jobs, polled)
        return [rows[0] if rows else None for rows in found]

    async def api_key(self, prefix: str) -> Row | None:
        return await execute_one(self._pool, self._api_key, {"prefix": prefix})


def store_reads(engine: Engine, pool: AsyncConnectionPool | None) -> StoreReads:
    """On PostgreSQL, the app's async pool; elsewhere the engine in the thread pool."""
    if pool is not None:
        return PostgresReads(pool, engine)
    return ThreadedReads(engine)
