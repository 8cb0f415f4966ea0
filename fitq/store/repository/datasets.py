"""Datasets: uploads and inline data, their ingest claims and leases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fitq.artifacts import dataset_key
from fitq.statuses import DatasetStatus, JobStatus
from fitq.store.models import Dataset, Job
from fitq.store.repository._common import _execute, _newest_first
from fitq.store.types import utcnow


def add_dataset(session: Session, dataset: Dataset) -> None:
    session.add(dataset)


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    return session.scalar(
        select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.id == dataset_id)
    )


def get_dataset_by_id(session: Session, dataset_id: str) -> Dataset | None:
    """Worker-side: the job that references it was already checked against its tenant."""
    return session.get(Dataset, dataset_id)


def known_dataset_ids(session: Session, ids: list[str], chunk: int = 1000) -> set[str]:
    """Which of ``ids`` have a dataset row (the rest are files nothing points at)."""
    known: set[str] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        known.update(session.scalars(select(Dataset.id).where(Dataset.id.in_(part))))
    return known


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
