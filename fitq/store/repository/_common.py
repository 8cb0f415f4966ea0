"""Helpers the repository modules share."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import CursorResult, select
from sqlalchemy.orm import Session

from fitq.store.models import Dataset, Job, Sweep

Row = TypeVar("Row", Job, Dataset, Sweep)


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


def _execute(session: Session, statement: Any) -> CursorResult[Any]:
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result
