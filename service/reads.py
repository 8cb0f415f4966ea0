"""The API's hot reads: a job by id (what pollers ask for, many times a second) and an API
key by prefix (on every authenticated request).

Each is one statement — the job comes with its queue position — with no ORM objects and no
transaction around it (one statement reads one snapshot). On PostgreSQL they run on an async
psycopg pool straight from the event loop, so a poll never waits for a thread; on SQLite (the
embedded default) the same statements run in the thread pool through SQLAlchemy.
The statements are written once, in SQLAlchemy Core, and compiled for the psycopg pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from psycopg import AsyncConnection, OperationalError
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, Select, and_, bindparam, case, select
from starlette.concurrency import run_in_threadpool

from fitq.errors import FitqError, RequestErrorType
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.models import ApiKey, Job
from service.jobs.presenter import JOB_COLUMNS

Row = Mapping[str, Any]
Compiled = tuple[str, dict[str, Any]]  # psycopg SQL and the values of its literal binds


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

    async def open(self) -> None: ...

    async def close(self) -> None: ...


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

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None


# How long a read waits for a pooled connection before the store counts as down (503).
POOL_WAIT_SECONDS = 5.0


class PostgresReads:
    """An async psycopg pool of autocommit connections; statements are prepared server-side
    after their first use. A connection found broken (the server restarted) is retried once
    on a fresh one; a store that stays down answers 503 once the pool has waited
    ``POOL_WAIT_SECONDS`` for a connection, twice."""

    def __init__(self, engine: Engine, max_size: int = 10) -> None:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            timeout=POOL_WAIT_SECONDS,
            open=False,
        )
        self._job = _compiled(JOB, engine)
        self._api_key = _compiled(API_KEY, engine)

    async def job(self, tenant_id: str, job_id: str) -> Row | None:
        return await self._one(self._job, {"tenant_id": tenant_id, "job_id": job_id})

    async def api_key(self, prefix: str) -> Row | None:
        return await self._one(self._api_key, {"prefix": prefix})

    async def _one(self, compiled: Compiled, params: dict[str, Any]) -> Row | None:
        sql, defaults = compiled
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as connection:
                    cursor = await connection.execute(sql, {**defaults, **params}, prepare=True)
                    return await cursor.fetchone()  # type: ignore[return-value]
            except OperationalError as exc:
                if attempt == 2:
                    raise FitqError(
                        503, RequestErrorType.unavailable, f"the job store is unavailable: {exc}"
                    ) from exc
        return None

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()


async def _configure(connection: AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)


def _compiled(statement: Select[Any], engine: Engine) -> Compiled:
    """The statement as psycopg's ``%(name)s`` SQL, with the values of its literal binds."""
    compiled = statement.compile(dialect=engine.dialect)
    defaults = {k: v for k, v in compiled.params.items() if v is not None}
    return str(compiled), defaults


def store_reads(engine: Engine) -> StoreReads:
    if engine.dialect.name == "postgresql":
        return PostgresReads(engine)
    return ThreadedReads(engine)
