"""A job's events, numbered per job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fitq.store.models import Job, JobEvent


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
