"""A worker's writes to the job it claimed, fenced by the attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fitq.errors import JobErrorType
from fitq.statuses import CancelReason, JobStatus
from fitq.store.models import Job
from fitq.store.repository._common import _execute
from fitq.store.repository.events import add_event
from fitq.store.repository.webhooks import job_ended
from fitq.store.types import utcnow


def claim_job(
    session: Session, job_id: str, worker: str, lease: timedelta, gpus: int = 0
) -> int | None:
    """Atomically move a queued job to running; returns the claimed attempt, or None when the
    job is not queued (already claimed, finished, or unknown: a duplicate message)."""
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            attempt=Job.attempt + 1,
            lease_until=now + lease,
            heartbeat_at=now,
            worker=worker,
            started_at=now,
            gpus=gpus,
        )
        .returning(Job.attempt, Job.handbacks)
    ).one_or_none()
    if claimed is None:
        return None
    attempt, handbacks = claimed
    # The event counts attempts as the job does (handed-back claims are not attempts); the
    # returned attempt is the fencing token, which counts every claim.
    data = {"status": "running", "attempt": attempt - handbacks, "worker": worker}
    add_event(session, job_id, "status", data)
    return int(attempt)


@dataclass(frozen=True)
class JobControl:
    owned: bool  # still running under this attempt
    cancel_requested: bool


def job_control(session: Session, job_id: str, attempt: int) -> JobControl:
    row = session.execute(
        select(Job.status, Job.attempt, Job.cancel_requested).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return JobControl(owned=False, cancel_requested=False)
    status, current, cancel = row
    return JobControl(
        owned=status == JobStatus.running and current == attempt, cancel_requested=cancel
    )


def get_job_by_id(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def _fenced(job_id: str, attempt: int) -> Any:
    return update(Job).where(
        Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.running
    )


def heartbeat(session: Session, job_id: str, attempt: int, lease: timedelta) -> bool:
    """Extend the lease; False means this attempt no longer owns the job."""
    now = utcnow()
    result = _execute(
        session, _fenced(job_id, attempt).values(heartbeat_at=now, lease_until=now + lease)
    )
    return result.rowcount == 1


def record_epoch(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    history: Sequence[dict[str, Any]],
    eta_seconds: float | None,
    lease: timedelta,
) -> bool:
    now = utcnow()
    result = _execute(
        session,
        _fenced(job_id, attempt).values(
            epoch=len(history),
            history=list(history),
            eta_seconds=eta_seconds,
            heartbeat_at=now,
            lease_until=now + lease,
        ),
    )
    if result.rowcount == 1 and history:
        add_event(session, job_id, "epoch", dict(history[-1]))
    return result.rowcount == 1


def hand_back(session: Session, job_id: str, attempt: int, epoch: int | None) -> bool:
    """A draining worker returns its job to the queue, checkpointed; not an attempt."""
    result = _execute(
        session,
        _fenced(job_id, attempt).values(
            status=JobStatus.queued,
            handbacks=Job.handbacks + 1,
            checkpoint_epoch=epoch,
            lease_until=None,
            worker=None,
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        data = {"status": "queued", "reason": "its worker is shutting down", "from_epoch": epoch}
        add_event(session, job_id, "status", data)
    return result.rowcount == 1


def record_checkpoint(session: Session, job_id: str, attempt: int, epoch: int) -> bool:
    result = _execute(session, _fenced(job_id, attempt).values(checkpoint_epoch=epoch))
    if result.rowcount == 1:
        add_event(session, job_id, "checkpoint", {"epoch": epoch})
    return result.rowcount == 1


@dataclass(frozen=True)
class JobOutcome:
    status: JobStatus
    history: Sequence[dict[str, Any]]
    result: dict[str, Any] | None = None
    error_type: JobErrorType | None = None
    error_message: str | None = None
    model_key: str | None = None
    cancel_reason: CancelReason | None = None


def finish_job(session: Session, job_id: str, attempt: int, outcome: JobOutcome) -> bool:
    result = _execute(
        session,
        _fenced(job_id, attempt).values(
            status=outcome.status,
            epoch=len(outcome.history),
            history=list(outcome.history),
            result=outcome.result,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            model_key=outcome.model_key,
            cancel_reason=outcome.cancel_reason,
            finished_at=utcnow(),
            lease_until=None,
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        data: dict[str, Any] = {"status": outcome.status.value}
        if outcome.error_type is not None:
            data |= {"error": outcome.error_type.value, "message": outcome.error_message}
        if outcome.cancel_reason is not None:
            data["reason"] = outcome.cancel_reason.value
        if outcome.result and outcome.result.get("early_stopping"):
            data["early_stopping"] = outcome.result["early_stopping"]
        add_event(session, job_id, "status", data)
        job_ended(session, job_id)
    return result.rowcount == 1
