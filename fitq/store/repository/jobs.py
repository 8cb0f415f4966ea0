"""Jobs as the API reads and changes them: always filtered by tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session, aliased

from fitq.errors import JobErrorType
from fitq.statuses import CancelReason, JobStatus
from fitq.store.models import IdempotencyKey, Job, JobEvent
from fitq.store.repository._common import _execute, _newest_first
from fitq.store.repository.events import add_event
from fitq.store.repository.webhooks import job_ended
from fitq.store.rows import new_row
from fitq.store.types import utcnow


def add_job(session: Session, job: Job) -> None:
    session.add(job)


def queued_job_row(
    *,
    job_id: str,
    tenant_id: str,
    queue: str,
    spec: dict[str, Any],
    epochs: int,
    max_runtime_seconds: float,
    now: datetime,
    **columns: Any,
) -> dict[str, Any]:
    """A new queued job's row, counted as sent: the commit comes before the send, and a
    process that dies between the two leaves the job to the sweeper's next re-send. Every
    other column takes the model's default (``fitq/store/models.py``)."""
    return new_row(
        Job,
        id=job_id,
        tenant_id=tenant_id,
        status=JobStatus.queued.value,
        queue=queue,
        spec=spec,
        created_at=now,
        updated_at=now,
        epochs=epochs,
        max_runtime_seconds=max_runtime_seconds,
        sends=1,
        last_sent_at=now,
        event_seq=1,  # the first event, written with it
        **columns,
    )


def first_event_row(job: dict[str, Any]) -> dict[str, Any]:
    """A new job's first event: queued, at its creation."""
    return new_row(
        JobEvent,
        job_id=job["id"],
        tenant_id=job["tenant_id"],
        seq=1,
        time=job["created_at"],
        type="status",
        data={"status": "queued"},
    )


def get_job(session: Session, tenant_id: str, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id))


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    status: JobStatus | None,
    limit: int,
    before_id: str | None,
) -> list[Job]:
    return _newest_first(session, Job, tenant_id, status, limit, before_id)


def jobs_ahead(queue: Any, job_id: Any) -> Select[tuple[int]]:
    """How many queued jobs the queue hands out before ``job_id`` (ids order jobs as they were
    created). ``queue`` and ``job_id`` are values, or an outer jobs row's columns (correlated)."""
    ahead = aliased(Job)
    return (
        select(func.count())
        .select_from(ahead)
        .where(ahead.queue == queue, ahead.status == JobStatus.queued.value, ahead.id < job_id)
    )


def queue_position(session: Session, job: Job) -> int:
    """1 for the next job its queue will hand out."""
    return int(session.scalar(jobs_ahead(job.queue, job.id)) or 0) + 1


def cancel_queued(session: Session, job_id: str) -> bool:
    """A queued job is cancelled at once: its message, when it comes, finds nothing to claim."""
    result = _execute(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.cancelled,
            cancel_requested=True,
            cancel_reason=CancelReason.requested,
            finished_at=utcnow(),
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        add_event(session, job_id, "status", {"status": "cancelled", "while": "queued"})
        job_ended(session, job_id)
    return result.rowcount == 1


def cancel(session: Session, job_id: str, seen: str) -> None:
    """Cancel a job that was read as ``seen`` (queued or running): a queued job at once; a
    running one, or a queued one a worker claimed since it was read, by asking its worker to
    stop (the conditional update sees the claim, so the cancel is never lost)."""
    if seen == JobStatus.queued and cancel_queued(session, job_id):
        return
    request_cancel(session, job_id)


def request_cancel(session: Session, job_id: str) -> bool:
    """A running job is asked to stop; its worker notices within a fraction of a second."""
    result = _execute(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running, Job.cancel_requested.is_(False))
        .values(cancel_requested=True),
    )
    if result.rowcount == 1:
        add_event(session, job_id, "log", {"message": "cancel requested"})
    return result.rowcount == 1


def delete_job(session: Session, job: Job) -> None:
    session.execute(delete(JobEvent).where(JobEvent.job_id == job.id))
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.job_id == job.id))
    session.delete(job)


def get_idempotency_key(session: Session, tenant_id: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (tenant_id, key))


def mark_sent(session: Session, job_id: str, now: datetime) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(sends=Job.sends + 1, last_sent_at=now, unsent_since=None)
    )


def mark_unsent(
    session: Session, job_id: str, now: datetime, reason: str, *, counted: bool
) -> bool:
    """The broker refused a queued job's message: it stays queued, and the sweeper re-sends
    it with the same backoff as any unclaimed job (``counted``: the send is already counted,
    as a new job's row is written). False if the job is no longer queued."""
    values: dict[str, Any] = {"unsent_since": func.coalesce(Job.unsent_since, now)}
    if not counted:
        values |= {"sends": Job.sends + 1, "last_sent_at": now}
    result = _execute(
        session,
        update(Job).where(Job.id == job_id, Job.status == JobStatus.queued).values(**values),
    )
    if result.rowcount == 1:
        message = f"the broker did not accept the job's message ({reason}); it stays queued"
        add_event(session, job_id, "log", {"message": message})
    return result.rowcount == 1


def unsent_before(session: Session, cutoff: datetime) -> list[tuple[str, datetime]]:
    """(id, unsent since) of queued jobs whose every send since ``cutoff`` was refused."""
    query = (
        select(Job.id, Job.unsent_since)
        .where(Job.status == JobStatus.queued, Job.unsent_since < cutoff)
        .order_by(Job.id)
    )
    return [(job_id, since) for job_id, since in session.execute(query)]


def fail_queued(session: Session, job_id: str, error: JobErrorType, message: str) -> bool:
    """Fail a job that is still queued (no worker holds it); False if it moved on."""
    now = utcnow()
    result = _execute(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.failed,
            error_type=error,
            error_message=message,
            finished_at=now,
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        add_event(session, job_id, "status", {"status": "failed", "error": error.value})
        job_ended(session, job_id)
    return result.rowcount == 1


def queued_before(session: Session, cutoff: datetime) -> list[tuple[str, str]]:
    """(id, queue) of jobs queued since before ``cutoff``, oldest first."""
    query = (
        select(Job.id, Job.queue)
        .where(Job.status == JobStatus.queued, Job.created_at < cutoff)
        .order_by(Job.id)
    )
    return [(job_id, queue) for job_id, queue in session.execute(query)]
