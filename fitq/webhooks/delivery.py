"""A delivery's attempts, from the outbox: claim it when due, send it, record the answer and
when to try again. The message on the webhooks queue carries the delivery's id only; the
store is the truth, so a lost message or a worker killed mid-attempt costs a delay, never
the delivery (the sweeper sends due deliveries again: ``send_due``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from fitq.webhooks.sender import send
from fitq.webhooks.urls import Resolver, policy_of, system_resolver

log = logging.getLogger(__name__)


def claim_lease(settings: Settings) -> timedelta:
    """How long an attempt holds its delivery before another sender may take it over (its
    sender died): httpx's timeout bounds each of connect, send and answer, so three of them,
    and a margin."""
    return timedelta(seconds=3 * settings.webhook_timeout_seconds + 5)


def retry_at(
    settings: Settings, created_at: datetime, failed_attempts: int, now: datetime
) -> datetime | None:
    """When to try again after ``failed_attempts`` failures: ``FITQ_WEBHOOK_RETRY_SECONDS``,
    doubling after each, at most ``FITQ_WEBHOOK_RETRY_MAX_SECONDS`` apart; None once that
    falls past the retry window (``FITQ_WEBHOOK_RETRY_WINDOW_SECONDS`` after the event)."""
    wait = min(
        settings.webhook_retry_seconds * 2.0 ** min(failed_attempts - 1, 60),
        settings.webhook_retry_max_seconds,
    )
    later = now + timedelta(seconds=wait)
    window_end = created_at + timedelta(seconds=settings.webhook_retry_window_seconds)
    return later if later <= window_end else None


def deliver(
    sessions: sessionmaker[Session],
    settings: Settings,
    delivery_id: str,
    resolve: Resolver = system_resolver,
) -> str:
    """One attempt of the delivery, if it is due: "delivered", "retry", "failed" (no retry
    left), or "skipped" (not due, held by another sender, or gone)."""
    with transaction(sessions) as session:
        claim = repo.claim_delivery(session, delivery_id, utcnow(), claim_lease(settings))
    if claim is None:
        return "skipped"
    outcome = send(
        claim.url,
        claim.secret,
        claim.id,
        claim.payload,
        policy=policy_of(settings),
        timeout=settings.webhook_timeout_seconds,
        resolve=resolve,
    )
    next_at = None
    if not outcome.delivered:
        next_at = retry_at(settings, claim.created_at, claim.number, utcnow())
    record = repo.AttemptRecord(
        at=outcome.at,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        delivered=outcome.delivered,
        next_at=next_at,
    )
    with transaction(sessions) as session:
        if not repo.record_attempt(session, claim, record):
            log.warning("webhook %s: attempt %d outlived its claim", claim.id, claim.number)
            return "skipped"
    if outcome.delivered:
        return "delivered"
    log.info("webhook %s: attempt %d: %s", claim.id, claim.number, outcome.error)
    return "retry" if next_at is not None else "failed"


def send_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    send_message: Callable[[str], None],
    now: datetime | None = None,
) -> list[str]:
    """A message on the webhooks queue for each delivery whose attempt is due and not sent
    (or sent ``FITQ_RESEND_AFTER_SECONDS`` ago and never claimed: lost). Marked sent before
    the send: a message the broker refuses is sent again after that interval."""
    now = now or utcnow()
    resend_before = now - timedelta(seconds=settings.resend_after_seconds)
    with transaction(sessions) as session:
        due = repo.dispatch_due(session, now, resend_before)
    sent = []
    for delivery_id in due:
        try:
            send_message(delivery_id)
        except Exception as exc:  # the broker: the row stays due
            log.warning("webhook %s not sent to the queue (%s); sent again later", delivery_id, exc)
            continue
        sent.append(delivery_id)
    return sent
