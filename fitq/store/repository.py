"""Every query of the job store, in one module. Functions take a Session and never commit:
the caller's unit of work (``fitq.store.db.transaction``) does.

API-side reads filter by ``tenant_id``. Worker-side writes address a job by id and are fenced
by the attempt the worker claimed, so a redelivered message or a stale worker never overwrites
a newer attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from fitq.artifacts import dataset_key
from fitq.errors import JobErrorType
from fitq.statuses import DatasetStatus, JobStatus
from fitq.store.models import ApiKey, Dataset, IdempotencyKey, Job, JobEvent, WorkerBeat
from fitq.store.types import utcnow

# ---- datasets ----------------------------------------------------------------------------


def add_dataset(session: Session, dataset: Dataset) -> None:
    session.add(dataset)


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    return session.scalar(
        select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.id == dataset_id)
    )


def get_dataset_by_id(session: Session, dataset_id: str) -> Dataset | None:
    """Worker-side: the job that references it was already checked against its tenant."""
    return session.get(Dataset, dataset_id)


def list_datasets(
    session: Session,
    tenant_id: str,
    *,
    status: DatasetStatus | None,
    limit: int,
    before_id: str | None,
) -> list[Dataset]:
    return _newest_first(session, Dataset, tenant_id, status, limit, before_id)


def active_job_ids_using(session: Session, tenant_id: str, dataset_id: str) -> list[str]:
    """Queued or running jobs whose spec references the dataset (few: quotas bound them)."""
    rows = session.execute(
        select(Job.id, Job.spec).where(
            Job.tenant_id == tenant_id, Job.status.in_([JobStatus.queued, JobStatus.running])
        )
    )
    return [
        job_id
        for job_id, spec in rows
        if any((ref or {}).get("dataset_id") == dataset_id for ref in spec["data"].values()
               if isinstance(ref, dict))
    ]  # fmt: skip


def delete_dataset(session: Session, dataset: Dataset) -> None:
    session.delete(dataset)


def claim_dataset(session: Session, dataset_id: str, lease: timedelta) -> int | None:
    """Claim an upload for ingest: processing, and not leased by a live ingest."""
    now = utcnow()
    return session.execute(
        update(Dataset)
        .where(
            Dataset.id == dataset_id,
            Dataset.status == DatasetStatus.processing,
            or_(Dataset.lease_until.is_(None), Dataset.lease_until < now),
        )
        .values(attempt=Dataset.attempt + 1, lease_until=now + lease)
        .returning(Dataset.attempt)
    ).scalar_one_or_none()


def _dataset_fenced(dataset_id: str, attempt: int) -> Any:
    return update(Dataset).where(
        Dataset.id == dataset_id,
        Dataset.attempt == attempt,
        Dataset.status == DatasetStatus.processing,
    )


def renew_dataset_lease(session: Session, dataset_id: str, attempt: int, lease: timedelta) -> bool:
    result = _execute(
        session, _dataset_fenced(dataset_id, attempt).values(lease_until=utcnow() + lease)
    )
    return result.rowcount == 1


def finish_dataset(
    session: Session, dataset_id: str, attempt: int, ingested: Any | None, error: str | None
) -> bool:
    """``ingested`` is the worker's result (rows, shapes, names, stats, labels, size)."""
    values: dict[str, Any] = {"finished_at": utcnow(), "lease_until": None}
    if ingested is None:
        values |= {"status": DatasetStatus.failed, "error_message": error}
    else:
        values |= {
            "status": DatasetStatus.ready,
            "rows": ingested.rows,
            "x_shape": ingested.x_shape,
            "y_shape": ingested.y_shape,
            "x_dtype": "float32",
            "y_dtype": "float32",
            "feature_names": ingested.feature_names,
            "target_names": ingested.target_names,
            "stats": ingested.stats,
            "labels": ingested.labels,
            "size_bytes": ingested.size_bytes,
            "x_key": dataset_key(dataset_id, "x"),
            "y_key": dataset_key(dataset_id, "y"),
        }
    result = _execute(session, _dataset_fenced(dataset_id, attempt).values(**values))
    return result.rowcount == 1


def stalled_datasets(session: Session, now: datetime) -> list[Dataset]:
    """Uploads still processing that no live ingest holds (never claimed, or lease expired)."""
    return list(
        session.scalars(
            select(Dataset)
            .where(
                Dataset.status == DatasetStatus.processing,
                or_(Dataset.lease_until.is_(None), Dataset.lease_until < now),
            )
            .limit(500)
        )
    )


def release_dataset_lease(session: Session, dataset: Dataset, now: datetime) -> bool:
    """An expired ingest lease is dropped, so the upload waits for a re-sent message."""
    result = _execute(
        session,
        _dataset_fenced(dataset.id, dataset.attempt)
        .where(Dataset.lease_until < now)
        .values(lease_until=None),
    )
    return result.rowcount == 1


def mark_dataset_sent(session: Session, dataset_id: str, now: datetime) -> None:
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(sends=Dataset.sends + 1, last_sent_at=now)
    )


def fail_stalled_dataset(session: Session, dataset: Dataset, message: str) -> bool:
    result = _execute(
        session,
        _dataset_fenced(dataset.id, dataset.attempt).values(
            status=DatasetStatus.failed,
            error_message=message,
            finished_at=utcnow(),
            lease_until=None,
        ),
    )
    return result.rowcount == 1


# ---- usage -------------------------------------------------------------------------------------


def active_jobs(session: Session, tenant_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                Job.tenant_id == tenant_id,
                Job.status.in_([JobStatus.queued, JobStatus.running]),
            )
        )
        or 0
    )


def dataset_bytes(session: Session, tenant_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.tenant_id == tenant_id)
    )
    return int(total or 0)


def gpu_seconds_since(session: Session, tenant_id: str, since: datetime) -> float:
    """GPU-seconds the tenant's jobs held after ``since``: GPUs x the part of each job's run
    (its last start to its end, or now) that falls after ``since``."""
    now = utcnow()
    rows = session.execute(
        select(Job.gpus, Job.started_at, Job.finished_at).where(
            Job.tenant_id == tenant_id,
            Job.gpus > 0,
            Job.started_at.is_not(None),
            or_(Job.finished_at.is_(None), Job.finished_at > since),
        )
    ).all()
    total = 0.0
    for gpus, started, finished in rows:
        held = (min(finished or now, now) - max(started, since)).total_seconds()
        total += gpus * max(held, 0.0)
    return total


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


# ---- worker heartbeats ---------------------------------------------------------------------


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


def live_workers(session: Session, since: datetime) -> list[WorkerBeat]:
    """Workers whose last heartbeat came after ``since``."""
    return list(
        session.scalars(
            select(WorkerBeat).where(WorkerBeat.heartbeat_at >= since).order_by(WorkerBeat.name)
        )
    )


def prune_workers(session: Session, before: datetime) -> int:
    """Forget workers silent since before ``before`` (killed without a goodbye)."""
    result = _execute(session, delete(WorkerBeat).where(WorkerBeat.heartbeat_at < before))
    return int(result.rowcount or 0)


# ---- api keys --------------------------------------------------------------------------------


def add_api_key(session: Session, key: ApiKey) -> None:
    session.add(key)


def get_api_key(session: Session, prefix: str) -> ApiKey | None:
    return session.get(ApiKey, prefix)


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at)))


def revoke_api_key(session: Session, prefix: str) -> bool:
    result = _execute(
        session,
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow()),
    )
    return result.rowcount == 1


# ---- job events --------------------------------------------------------------------------


def add_event(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> None:
    """Append an event; ``seq`` comes from the job row, so concurrent writers take turns."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(event_seq=Job.event_seq + 1)
        .returning(Job.event_seq, Job.tenant_id)
    ).one_or_none()
    if row is not None:
        session.add(JobEvent(job_id=job_id, tenant_id=row[1], seq=row[0], type=type_, data=data))


def list_events(session: Session, job_id: str, after: int, limit: int) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit + 1)
        )
    )


# ---- jobs: API side ----------------------------------------------------------------------


def add_job(session: Session, job: Job) -> None:
    session.add(job)


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


Row = TypeVar("Row", Job, Dataset)


def _newest_first(
    session: Session,
    model: type[Row],
    tenant_id: str,
    status: str | None,
    limit: int,
    before_id: str | None,
) -> list[Row]:
    """Newest first: ids are time-ordered, so ``id DESC`` is creation order and a cursor is
    the last id seen. Fetches ``limit + 1`` rows so the caller knows whether more exist."""
    query = select(model).where(model.tenant_id == tenant_id)
    if status is not None:
        query = query.where(model.status == status)
    if before_id is not None:
        query = query.where(model.id < before_id)
    return list(session.scalars(query.order_by(model.id.desc()).limit(limit + 1)))


def queue_position(session: Session, job: Job) -> int:
    """1 for the next job its queue will hand out (ids order jobs as they were created)."""
    ahead = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.queue == job.queue, Job.status == JobStatus.queued, Job.id < job.id)
    )
    return int(ahead or 0) + 1


def cancel_queued(session: Session, job_id: str) -> bool:
    """A queued job is cancelled at once: its message, when it comes, finds nothing to claim."""
    result = _execute(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.cancelled,
            cancel_requested=True,
            finished_at=utcnow(),
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        add_event(session, job_id, "status", {"status": "cancelled", "while": "queued"})
    return result.rowcount == 1


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


def add_idempotency_key(session: Session, row: IdempotencyKey) -> None:
    session.add(row)


def delete_idempotency_key(session: Session, row: IdempotencyKey) -> None:
    session.delete(row)


def mark_sent(session: Session, job_id: str, now: datetime) -> None:
    session.execute(
        update(Job).where(Job.id == job_id).values(sends=Job.sends + 1, last_sent_at=now)
    )


def fail_unsent(session: Session, job_id: str, message: str) -> bool:
    """A queued job whose message could not be sent: ``failed`` / ``broker_unavailable``."""
    return fail_queued(session, job_id, JobErrorType.broker_unavailable, message)


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
    return result.rowcount == 1


def queued_before(session: Session, cutoff: datetime) -> list[tuple[str, str]]:
    """(id, queue) of jobs queued since before ``cutoff``, oldest first."""
    query = (
        select(Job.id, Job.queue)
        .where(Job.status == JobStatus.queued, Job.created_at < cutoff)
        .order_by(Job.id)
    )
    return [(job_id, queue) for job_id, queue in session.execute(query)]


# ---- jobs: worker side (fenced) ----------------------------------------------------------


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
        .returning(Job.attempt)
    ).scalar_one_or_none()
    if claimed is not None:
        add_event(
            session, job_id, "status", {"status": "running", "attempt": claimed, "worker": worker}
        )
    return claimed


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


def _execute(session: Session, statement: Any) -> CursorResult[Any]:
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result


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
            finished_at=utcnow(),
            lease_until=None,
            eta_seconds=None,
        ),
    )
    if result.rowcount == 1:
        data: dict[str, Any] = {"status": outcome.status.value}
        if outcome.error_type is not None:
            data |= {"error": outcome.error_type.value, "message": outcome.error_message}
        if outcome.result and outcome.result.get("early_stopping"):
            data["early_stopping"] = outcome.result["early_stopping"]
        add_event(session, job_id, "status", data)
    return result.rowcount == 1


# ---- retention -----------------------------------------------------------------------------


def expired_models(session: Session, before: datetime, limit: int = 100) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(Job.model_key.is_not(None), Job.finished_at < before).limit(limit)
        )
    )


def expired_datasets(session: Session, before: datetime, limit: int = 100) -> list[Dataset]:
    return list(
        session.scalars(
            select(Dataset)
            .where(
                Dataset.status.in_([DatasetStatus.ready, DatasetStatus.failed]),
                Dataset.created_at < before,
            )
            .limit(limit)
        )
    )


# ---- sweeper -----------------------------------------------------------------------------


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
    return result.rowcount == 1
