"""Artifacts past their retention."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fitq.statuses import DatasetStatus
from fitq.store.models import Dataset, Job


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
