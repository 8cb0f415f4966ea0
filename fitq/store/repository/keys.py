"""API keys: a prefix and the SHA-256 of the secret."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fitq.store.models import ApiKey
from fitq.store.repository._common import _execute
from fitq.store.types import utcnow


def add_api_key(session: Session, key: ApiKey) -> None:
    session.add(key)


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
