"""What tenants use, counted for quotas, admin views and metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from fitq.statuses import ACTIVE, JobStatus
from fitq.store.models import ApiKey, Dataset, Job, JobCount
from fitq.store.types import utcnow


def active_jobs_count(tenant_id: Any) -> Select[tuple[int]]:
    """Queued or running jobs of the tenant (a value or a bind parameter)."""
    return (
        select(func.count())
        .select_from(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.status.in_(sorted(status.value for status in ACTIVE)),
        )
    )


def kept_count(kind: str, name: Any) -> Select[tuple[int]]:
    """A count the triggers keep (``JobCount``, PostgreSQL): ``active`` jobs of a tenant is
    ``active_jobs_count``, ``queued`` jobs of a queue; no row means none."""
    return select(JobCount.jobs).where(JobCount.kind == kind, JobCount.name == name)


def dataset_bytes_total(tenant_id: Any) -> Select[tuple[int]]:
    return select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
        Dataset.tenant_id == tenant_id
    )


def active_jobs(session: Session, tenant_id: str) -> int:
    return int(session.scalar(active_jobs_count(tenant_id)) or 0)


def dataset_bytes(session: Session, tenant_id: str) -> int:
    return int(session.scalar(dataset_bytes_total(tenant_id)) or 0)


GpuUse = tuple[int, datetime, datetime | None]  # gpus, started_at, finished_at


def gpu_use_since(tenant_id: Any, since: Any) -> Select[GpuUse]:
    """The runs that can have held GPUs after ``since`` (values or bind parameters)."""
    return select(Job.gpus, Job.started_at, Job.finished_at).where(  # type: ignore[return-value]
        Job.tenant_id == tenant_id,
        Job.gpus > 0,
        Job.started_at.is_not(None),
        or_(Job.finished_at.is_(None), Job.finished_at > since),
    )


def gpu_seconds(runs: Iterable[GpuUse], since: datetime, now: datetime) -> float:
    """GPUs x the part of each run (its last start to its end, or now) after ``since``."""
    total = 0.0
    for gpus, started, finished in runs:
        held = (min(finished or now, now) - max(started, since)).total_seconds()
        total += gpus * max(held, 0.0)
    return total


def gpu_seconds_since(session: Session, tenant_id: str, since: datetime) -> float:
    """GPU-seconds the tenant's jobs held after ``since``."""
    runs = session.execute(gpu_use_since(tenant_id, since)).tuples()
    return gpu_seconds(runs, since, utcnow())


def tenant_ids(session: Session) -> list[str]:
    """Every tenant that has a job, a dataset or a key."""
    union = select(Job.tenant_id).union(select(Dataset.tenant_id), select(ApiKey.tenant_id))
    return sorted(session.scalars(union))


def jobs_by_status(session: Session, tenant_id: str | None = None) -> dict[str, int]:
    query = select(Job.status, func.count()).group_by(Job.status)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    return {status: int(count) for status, count in session.execute(query)}


def queued_by_queue(session: Session) -> dict[str, int]:
    """Jobs waiting in each queue (queued, not yet claimed)."""
    query = (
        select(Job.queue, func.count()).where(Job.status == JobStatus.queued).group_by(Job.queue)
    )
    return {queue: int(count) for queue, count in session.execute(query)}


def datasets_by_status(session: Session) -> dict[str, int]:
    query = select(Dataset.status, func.count()).group_by(Dataset.status)
    return {status: int(count) for status, count in session.execute(query)}
