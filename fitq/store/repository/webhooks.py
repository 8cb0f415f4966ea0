"""Webhook endpoints and the outbox of their deliveries. A change that ends a job or a sweep
writes its deliveries in its own transaction (``job_ended``, ``add_deliveries``); a worker
claims each when due, sends it and records the attempt (``claim_delivery``,
``record_attempt``). Claims and records are conditional updates, written before anything
is read (SQLite's rule), so any number of senders may run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from fitq.ids import DELIVERY_PREFIX, new_id
from fitq.store.models import Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from fitq.store.repository._common import _execute, _page
from fitq.store.types import utcnow
from fitq.webhooks.events import job_event, payload

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def add_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    session.add(endpoint)


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )


def list_endpoints(
    session: Session, tenant_id: str, limit: int, before_id: str | None
) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    return _page(session, query, WebhookEndpoint.id, limit, before_id)


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """The endpoint, its deliveries (sent or not: nothing is sent to it again) and their
    attempts."""
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)


def add_delivery(
    session: Session, endpoint_id: str, tenant_id: str, event_type: str, subject_id: str | None,
    body: str, now: datetime,
) -> str:  # fmt: skip
    delivery_id = new_id(DELIVERY_PREFIX)
    session.add(
        WebhookDelivery(
            id=delivery_id,
            endpoint_id=endpoint_id,
            tenant_id=tenant_id,
            event_type=event_type,
            subject_id=subject_id,
            payload=body,
            status=PENDING,
            attempts=0,
            next_at=now,
            created_at=now,
        )
    )
    return delivery_id


def add_deliveries(
    session: Session,
    tenant_id: str,
    event_type: str,
    subject_id: str,
    data: Callable[[], dict[str, Any]],
) -> list[str]:
    """A delivery of the event to each of the tenant's endpoints that subscribed to it; the
    body (``data()``, the subject as ``GET`` shows it) is rendered only when one did."""
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.tenant_id == tenant_id
        )
    ).all()
    return _deliver_to(session, endpoints, tenant_id, event_type, subject_id, data)


def _deliver_to(
    session: Session,
    endpoints: Any,
    tenant_id: str,
    event_type: str,
    subject_id: str,
    data: Callable[[], dict[str, Any]],
) -> list[str]:
    subscribed = [endpoint_id for endpoint_id, events in endpoints if event_type in events]
    if not subscribed:
        return []
    now = utcnow()
    try:
        document = data()
    except Exception:  # a webhook must never stop the job or sweep from ending
        log.exception(
            "%s of %s: its document failed; sent with the id alone", event_type, subject_id
        )
        document = {"id": subject_id}
    body = payload(event_type, document, now)
    return [
        add_delivery(session, endpoint_id, tenant_id, event_type, subject_id, body, now)
        for endpoint_id in subscribed
    ]


def job_ended(session: Session, job_id: str) -> list[str]:
    """The job just reached a finished status in this transaction: its event, to each of its
    tenant's endpoints that subscribed (one indexed read when none has)."""
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events, Job.tenant_id, Job.status)
        .join(Job, Job.tenant_id == WebhookEndpoint.tenant_id)
        .where(Job.id == job_id)
    ).all()
    if not endpoints:
        return []
    tenant_id, status = endpoints[0][2], endpoints[0][3]
    event = job_event(status)
    if event is None:
        return []
    # Here, not at the top: the documents' modules import the repository.
    from fitq.documents import job_document
    from fitq.store.statements import JOB_COLUMNS

    def document() -> dict[str, Any]:
        columns = [getattr(Job, name) for name in JOB_COLUMNS]
        row = session.execute(select(*columns).where(Job.id == job_id)).mappings().one()
        return job_document(dict(row))

    pairs = [(endpoint_id, events) for endpoint_id, events, _, _ in endpoints]
    return _deliver_to(session, pairs, tenant_id, event, job_id, document)


def _due(now: datetime) -> tuple[Any, ...]:
    """A delivery whose attempt is due: pending, its time come, no sender holding it. What
    is put on the queue and what a sender may claim, alike."""
    return (
        WebhookDelivery.status == PENDING,
        WebhookDelivery.next_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
    )


def dispatch_due(
    session: Session, now: datetime, resend_before: datetime, limit: int = 100
) -> list[str]:
    """Mark as sent, and return, deliveries whose attempt is due and whose message has not
    gone out (or went out before ``resend_before`` and nobody claimed it: lost)."""
    due = (
        select(WebhookDelivery.id)
        .where(
            *_due(now),
            or_(
                WebhookDelivery.sent_at.is_(None),
                WebhookDelivery.sent_at < WebhookDelivery.next_at,
                WebhookDelivery.sent_at < resend_before,
            ),
        )
        .order_by(WebhookDelivery.next_at)
        .limit(limit)
    )
    marked = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due.scalar_subquery()))
        .values(sent_at=now)
        .returning(WebhookDelivery.id)
    )
    return sorted(marked.scalars())


@dataclass(frozen=True)
class ClaimedDelivery:
    id: str
    lease_until: datetime  # the claim's fencing token
    number: int  # this attempt's, from 1
    event_type: str
    payload: str
    created_at: datetime
    url: str
    secret: str


def claim_delivery(
    session: Session, delivery_id: str, now: datetime, lease: timedelta
) -> ClaimedDelivery | None:
    """Hold a due delivery for one attempt; None when it is not due, held, finished or
    gone (a duplicate or late message)."""
    until = now + lease
    claimed = _execute(
        session,
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            *_due(now),
        )
        .values(lease_until=until),
    )
    if claimed.rowcount != 1:
        return None
    row = session.execute(
        select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one_or_none()
    if row is None:
        return None
    delivery, url, secret = row
    return ClaimedDelivery(
        id=delivery.id,
        lease_until=until,
        number=delivery.attempts + 1,
        event_type=delivery.event_type,
        payload=delivery.payload,
        created_at=delivery.created_at,
        url=url,
        secret=secret,
    )


@dataclass(frozen=True)
class AttemptRecord:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    delivered: bool
    next_at: datetime | None  # None: no retry (delivered, or the retry window closed)


def record_attempt(session: Session, claim: ClaimedDelivery, record: AttemptRecord) -> bool:
    """The attempt's answer, under the claim that made it; False when the claim had expired
    and another took the delivery over (nothing is written then)."""
    status = DELIVERED if record.delivered else PENDING if record.next_at else FAILED
    finished = record.at if status != PENDING else None
    updated = _execute(
        session,
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claim.id,
            WebhookDelivery.lease_until == claim.lease_until,
            WebhookDelivery.attempts == claim.number - 1,
        )
        .values(
            status=status,
            attempts=claim.number,
            lease_until=None,
            next_at=record.next_at or record.at,
            last_status_code=record.status_code,
            last_error=record.error,
            finished_at=finished,
        ),
    )
    if updated.rowcount != 1:
        return False
    session.add(
        WebhookAttempt(
            delivery_id=claim.id,
            number=claim.number,
            at=record.at,
            status_code=record.status_code,
            error=record.error,
            duration_ms=record.duration_ms,
        )
    )
    return True


def list_deliveries(
    session: Session, endpoint_id: str, limit: int, before_id: str | None
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    return _page(session, query, WebhookDelivery.id, limit, before_id)


def attempts_of(session: Session, delivery_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    rows = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


def get_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id, populate_existing=True)


def delete_finished_deliveries(session: Session, before: datetime) -> int:
    """Deliveries delivered or failed before ``before``, with their attempts; how many."""
    old = (WebhookDelivery.status != PENDING, WebhookDelivery.finished_at < before)
    ids = select(WebhookDelivery.id).where(*old)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    deleted = _execute(session, delete(WebhookDelivery).where(*old))
    return deleted.rowcount
