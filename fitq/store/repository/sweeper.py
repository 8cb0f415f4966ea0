"""What the sweeper looks for: unclaimed jobs and expired leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fitq.errors import JobErrorType
from fitq.statuses import JobStatus
from fitq.store.models import Job
from fitq.store.repository._common import _execute
from fitq.store.repository.events import add_event
from fitq.store.repository.webhooks import job_ended


@dataclass(frozen=True)
class QueuedJob:
    id: str
    queue: str
    sends: int
    last_sent_at: datetime | None
    created_at: datetime
    max_runtime_seconds: float | None


def unclaimed_jobs(session: Session, limit: int = 500) -> list[QueuedJob]:
    rows = session.execute(
        select(
            Job.id, Job.queue, Job.sends, Job.last_sent_at, Job.created_at, Job.max_runtime_seconds
        )
        .where(Job.status == JobStatus.queued, Job.cancel_requested.is_(False))
        .order_by(Job.id)
        .limit(limit)
    )
    return [QueuedJob(*row) for row in rows]


@dataclass(frozen=True)
class ExpiredLease:
    id: str
    attempt: int
    handbacks: int
    queue: str
    started_at: datetime | None
    max_runtime_seconds: float | None


def expired_leases(session: Session, now: datetime, limit: int = 500) -> list[ExpiredLease]:
    rows = session.execute(
        select(
            Job.id, Job.attempt, Job.handbacks, Job.queue, Job.started_at, Job.max_runtime_seconds
        )
        .where(Job.status == JobStatus.running, Job.lease_until < now)
        .limit(limit)
    )
    return [ExpiredLease(*row) for row in rows]


def _still_expired(lease: ExpiredLease, now: datetime) -> Any:
    """The lease as the sweeper saw it: no heartbeat or new claim came in meanwhile."""
    return update(Job).where(
        Job.id == lease.id,
        Job.attempt == lease.attempt,
        Job.status == JobStatus.running,
        Job.lease_until < now,
    )


def release_lease(session: Session, job_id: str, host: str, now: datetime) -> bool:
    """A worker on ``host`` saw the process running this job die: end its lease now, so the
    sweeper re-queues it at its next pass rather than when the lease runs out."""
    result = _execute(
        session,
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.running,
            Job.worker.startswith(f"{host}:", autoescape=True),
        )
        .values(lease_until=now),
    )
    return result.rowcount == 1


def requeue_expired(session: Session, lease: ExpiredLease, now: datetime) -> bool:
    """Back to queued; the history keeps the epochs its last checkpoint holds (none without
    one), which is where the next attempt starts."""
    result = _execute(
        session,
        _still_expired(lease, now).values(
            status=JobStatus.queued,
            lease_until=None,
            worker=None,
            eta_seconds=None,
            last_sent_at=None,
        ),
    )
    if result.rowcount != 1:
        return False
    job = session.get(Job, lease.id)
    assert job is not None
    kept = job.checkpoint_epoch or 0
    job.history, job.epoch = list(job.history[:kept]), kept
    reason = f"the worker of attempt {lease.attempt} stopped responding"
    add_event(
        session, lease.id, "status", {"status": "queued", "reason": reason, "from_epoch": kept}
    )
    return True


def fail_expired(
    session: Session,
    lease: ExpiredLease,
    now: datetime,
    message: str,
    error_type: JobErrorType = JobErrorType.worker_lost,
) -> bool:
    result = _execute(
        session,
        _still_expired(lease, now).values(
            status=JobStatus.failed,
            error_type=error_type,
            error_message=message,
            finished_at=now,
            lease_until=None,
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        add_event(session, lease.id, "status", {"status": "failed", "error": error_type.value})
        job_ended(session, lease.id)
    return result.rowcount == 1
