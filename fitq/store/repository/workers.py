"""Heartbeat rows of live workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from fitq.store.models import WorkerBeat
from fitq.store.repository._common import _execute
from fitq.store.types import utcnow


def beat_worker(session: Session, name: str, hostname: str, pid: int, queues: list[str]) -> None:
    now = utcnow()
    row = session.get(WorkerBeat, name)
    if row is None:
        session.add(
            WorkerBeat(
                name=name,
                hostname=hostname,
                pid=pid,
                queues=",".join(sorted(queues)),
                started_at=now,
                heartbeat_at=now,
            )
        )
    else:
        row.pid, row.queues, row.heartbeat_at = pid, ",".join(sorted(queues)), now


def remove_worker(session: Session, name: str) -> None:
    session.execute(delete(WorkerBeat).where(WorkerBeat.name == name))


def remove_worker_process(session: Session, hostname: str, pid: int) -> int:
    """Forget the worker that process ``pid`` of ``hostname`` ran (its supervisor saw it die)."""
    found = delete(WorkerBeat).where(WorkerBeat.hostname == hostname, WorkerBeat.pid == pid)
    return int(_execute(session, found).rowcount or 0)


def live_workers(session: Session, since: datetime) -> list[WorkerBeat]:
    """Workers whose last heartbeat came after ``since``."""
    return list(
        session.scalars(
            select(WorkerBeat).where(WorkerBeat.heartbeat_at >= since).order_by(WorkerBeat.name)
        )
    )


def live_worker_queues(since: Any) -> Select[tuple[str]]:
    """The comma-separated queues of each worker heard from after ``since`` (a value or a
    bind parameter)."""
    return select(WorkerBeat.queues).where(WorkerBeat.heartbeat_at >= since)


def prune_workers(session: Session, before: datetime) -> int:
    """Forget workers silent since before ``before`` (killed without a goodbye)."""
    result = _execute(session, delete(WorkerBeat).where(WorkerBeat.heartbeat_at < before))
    return int(result.rowcount or 0)
