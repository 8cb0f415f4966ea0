"""Helpers the repository modules share."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import CursorResult, Select, select
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
    return _page(session, query, model.id, limit, before_id)


def _page(
    session: Session, query: Select[tuple[Any]], id_: Any, limit: int, before_id: str | None
) -> list[Any]:
    """``query``'s rows newest first by their time-ordered ``id_``, after the cursor
    ``before_id``: ``limit + 1`` of them, so the caller knows whether more exist."""
    if before_id is not None:
        query = query.where(id_ < before_id)
    return list(session.scalars(query.order_by(id_.desc()).limit(limit + 1)))


def _execute(session: Session, statement: Any) -> CursorResult[Any]:
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result
