"""Engines and sessions. SQLite runs in WAL mode with a busy timeout so the API and a worker
can write to one file; engines are created per process (after fork in Celery children)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

# Seconds a new PostgreSQL connection may take: a store behind a dropped network answers
# 503 (API) or counts as unreachable (worker) in seconds, not after TCP's minutes.
CONNECT_TIMEOUT_SECONDS = 5


def make_engine(url: str, pooled: bool = True) -> Engine:
    """``pooled=False``: a connection per use, none kept open (for a process that forks)."""
    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if pooled:
        pool.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
    if url.startswith("postgresql"):
        pool["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(url, **pool)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error. Every ORM write commits here;
    the hot paths' statements (``fitq.store.statements``) commit as one statement each, or in
    the one transaction ``service/jobs/submission_store.py`` opens for a submission batch."""
    with factory() as session, session.begin():
        yield session
