"""The API's async PostgreSQL pool, for the statements on its hot paths (the job poll, the
API-key check, the job submission): psycopg straight from the event loop, no thread and no
ORM. The statements are written once, in SQLAlchemy Core (``fitq.store.statements``), and
compiled here for psycopg; the same statements run through SQLAlchemy on SQLite (the
embedded default)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from psycopg import AsyncConnection, AsyncCursor, OperationalError
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine, Table
from sqlalchemy.sql.expression import ClauseElement

from fitq.errors import FitqError, RequestErrorType
from fitq.store.db import CONNECT_TIMEOUT_SECONDS
from fitq.store.rows import RowShape

T = TypeVar("T")
Compiled = tuple[str, dict[str, Any]]  # psycopg SQL and the values of its literal binds

# How long a statement waits for a pooled connection before the store counts as down (503),
# and, once a wait has timed out, how long the next ones wait until a connection comes back:
# requests that queued behind a timed-out read answer soon after it, not a whole wait later,
# so every 503 of an outage comes within about 5 s (``bench.faults``).
POOL_WAIT_SECONDS = 4.0
RECHECK_WAIT_SECONDS = 1.0
# How long the pool keeps re-trying one connection (its delays double from 1 s) before it
# gives up and lets the next request start afresh at once. psycopg's default (5 min) lets
# the delay grow past 16 s in an outage, and so the store's return went unnoticed that long.
RECONNECT_SECONDS = 3.0


def pool_for(engine: Engine) -> AsyncConnectionPool | None:
    """The async pool on PostgreSQL, None elsewhere (the hot paths then use the engine)."""
    return async_pool(engine) if engine.dialect.name == "postgresql" else None


class StorePool(AsyncConnectionPool):
    """psycopg's pool, waiting ``RECHECK_WAIT_SECONDS`` instead of the full wait for a
    connection while the store is known to be unreachable (the last wait timed out)."""

    unreachable = False

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        if timeout is None and self.unreachable:
            timeout = RECHECK_WAIT_SECONDS
        got = False
        try:
            async with super().connection(timeout) as connection:
                got, self.unreachable = True, False
                yield connection
        except PoolTimeout:
            if not got:
                self.unreachable = True
            raise


def async_pool(engine: Engine, max_size: int = 10) -> AsyncConnectionPool:
    """Autocommit connections (a single read needs no transaction; writes open their own),
    rows as dicts, JSON in and out by orjson; opened and closed by the app's lifespan."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return StorePool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        },
        configure=_configure,
        timeout=POOL_WAIT_SECONDS,
        reconnect_timeout=RECONNECT_SECONDS,
        open=False,
    )


async def _configure(connection: AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)
    set_json_dumps(orjson.dumps, connection)


def compiled(statement: ClauseElement, engine: Engine) -> Compiled:
    """The statement as psycopg's ``%(name)s`` SQL, with the values of its literal binds."""
    found = statement.compile(dialect=engine.dialect)
    defaults = {k: v for k, v in found.params.items() if v is not None}
    return str(found), defaults


async def execute(
    connection: AsyncConnection[Any], statement: Compiled, params: Mapping[str, Any]
) -> AsyncCursor[Any]:
    """A compiled statement with its literal binds and ``params``, prepared server-side."""
    sql, defaults = statement
    return await connection.execute(sql, {**defaults, **params}, prepare=True)


def unavailable(exc: Exception) -> FitqError:
    return FitqError(503, RequestErrorType.unavailable, f"the job store is unavailable: {exc}")


class RecordsetInsert:
    """``INSERT`` of many rows of one table from one JSON parameter (an array of objects,
    ``jsonb_populate_recordset``): one bind however many rows, each row completed as
    SQLAlchemy would complete it (column defaults). orjson writes the parameter: datetimes
    as ISO 8601, enums as their values, NaN and ±Infinity as null (as ``FiniteJSON``)."""

    def __init__(self, table: Table) -> None:
        self._shape = RowShape(table)
        self.columns = self._shape.columns
        self.param = table.name
        names = ", ".join(self.columns)
        self.sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {names} "
            f"FROM jsonb_populate_recordset(NULL::{table.name}, %({self.param})s)"
        )

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> Jsonb:
        return Jsonb([self._shape.complete(row) for row in rows])


async def execute_one(
    pool: AsyncConnectionPool, statement: Compiled, params: Mapping[str, Any]
) -> dict[str, Any] | None:
    """One prepared statement's first row (see ``reading``)."""

    async def one() -> dict[str, Any] | None:
        async with pool.connection() as connection:
            cursor = await execute(connection, statement, params)
            return await cursor.fetchone()

    return await reading(pool, one)


async def reading(pool: AsyncConnectionPool, read: Callable[[], Awaitable[T]]) -> T:
    """Runs a read, and once more if the store broke its connection (a restart leaves the
    pool's idle connections broken: they are checked and replaced before the retry). A
    store that is down answers 503 once the pool has waited ``POOL_WAIT_SECONDS`` for a
    connection, without a second wait. Writes are not retried: a commit that broke may have
    happened."""
    try:
        return await read()
    except PoolTimeout as exc:
        raise unavailable(exc) from exc
    except OperationalError:
        await pool.check()
    try:
        return await read()
    except OperationalError as exc:
        raise unavailable(exc) from exc


async def read_numbered(
    pool: AsyncConnectionPool,
    statement: Compiled,
    queries: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any] | None = None,
) -> list[list[dict[str, Any]]]:
    """A group read: one statement over ``numbered_queries`` for all ``queries``; each
    query's rows, in the queries' order (``i`` taken out). Retried as ``reading`` does."""
    numbered = Jsonb([{**query, "i": i} for i, query in enumerate(queries)])

    async def read() -> list[list[dict[str, Any]]]:
        async with pool.connection() as connection:
            cursor = await execute(connection, statement, {**(params or {}), "queries": numbered})
            rows = await cursor.fetchall()
        rows_of: list[list[dict[str, Any]]] = [[] for _ in queries]
        for row in rows:
            rows_of[row.pop("i")].append(row)
        return rows_of

    return await reading(pool, read)
