"""Webhook use cases: create an endpoint (its URL checked as written and where its name
resolves), list, read, delete, send a test event, list deliveries. Deliveries themselves
are written by the changes they tell of and sent by the webhooks worker
(``fitq.webhooks.delivery``); ``send_webhooks`` puts due ones on its queue."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from fitq.errors import SpecError, conflict, not_found
from fitq.ids import DELIVERY_PREFIX, WEBHOOK_PREFIX, is_valid_id, new_id
from fitq.schemas import WebhookCreate
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import WebhookEndpoint
from fitq.store.types import utcnow
from fitq.webhooks.delivery import send_due
from fitq.webhooks.events import TEST_EVENT, new_secret, payload
from fitq.webhooks.urls import UnsafeUrl, check_resolved, check_url, policy_of
from service.context import ServiceContext
from service.jobs.presenter import render_json
from service.pagination import decode_cursor, page_document
from service.webhooks.presenter import delivery_document, endpoint_document

log = logging.getLogger(__name__)

# Endpoints a tenant may have: each event is sent to each, so this bounds the fan-out.
MAX_ENDPOINTS = 20


def create_endpoint(ctx: ServiceContext, tenant_id: str, body: WebhookCreate) -> tuple[str, bytes]:
    """The endpoint with its secret, shown this once. 422 for a URL the service will not
    send to (checked as written, then every address its name resolves to now)."""
    policy = policy_of(ctx.settings)
    try:
        check_resolved(check_url(body.url, policy), policy, ctx.resolve)
    except UnsafeUrl as exc:
        raise SpecError("url", str(exc)) from None
    endpoint = WebhookEndpoint(
        id=new_id(WEBHOOK_PREFIX),
        tenant_id=tenant_id,
        url=body.url,
        events=[event.value for event in body.events],
        description=body.description,
        secret=new_secret(),
        created_at=utcnow(),
    )
    with transaction(ctx.sessions) as session:
        repo.add_endpoint(session, endpoint)
        session.flush()
        count = len(repo.list_endpoints(session, tenant_id, MAX_ENDPOINTS, None))
        if count > MAX_ENDPOINTS:
            raise conflict(
                f"expected at most {MAX_ENDPOINTS} webhook endpoints, received one more; "
                "delete one first (DELETE /v1/webhooks/{id})"
            )
    return endpoint.id, render_json(endpoint_document(endpoint) | {"secret": endpoint.secret})


def list_endpoints(ctx: ServiceContext, tenant_id: str, limit: int, after: str | None) -> bytes:
    before = decode_cursor(after, WEBHOOK_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        rows = repo.list_endpoints(session, tenant_id, limit, before)
    data = [endpoint_document(e) for e in rows[:limit]]
    return render_json(page_document(data, len(rows), limit))


def read_endpoint(ctx: ServiceContext, tenant_id: str, endpoint_id: str) -> bytes:
    with transaction(ctx.sessions) as session:
        return render_json(endpoint_document(_find(session, tenant_id, endpoint_id)))


def delete_endpoint(ctx: ServiceContext, tenant_id: str, endpoint_id: str) -> None:
    """The endpoint and its deliveries: nothing more is sent to it, retries included."""
    with transaction(ctx.sessions) as session:
        repo.delete_endpoint(session, _find(session, tenant_id, endpoint_id))


def send_test(ctx: ServiceContext, tenant_id: str, endpoint_id: str) -> bytes:
    """A ``webhook.test`` delivery to the endpoint, through the outbox as any event (signed,
    retried, listed): the delivery as written, its attempt on its way."""
    now = utcnow()
    with transaction(ctx.sessions) as session:
        endpoint = _find(session, tenant_id, endpoint_id)
        data = {"webhook_id": endpoint.id, "message": "a test event from fitq"}
        body = payload(TEST_EVENT, data, now)
        delivery_id = repo.add_delivery(
            session, endpoint.id, tenant_id, TEST_EVENT, None, body, now
        )
    send_webhooks(ctx)
    with transaction(ctx.sessions) as session:
        delivery = repo.get_delivery(session, delivery_id)
        assert delivery is not None
        attempts = repo.attempts_of(session, [delivery_id])[delivery_id]
        return render_json(delivery_document(delivery, attempts))


def list_deliveries(
    ctx: ServiceContext, tenant_id: str, endpoint_id: str, limit: int, after: str | None
) -> bytes:
    before = decode_cursor(after, DELIVERY_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        endpoint = _find(session, tenant_id, endpoint_id)
        rows = repo.list_deliveries(session, endpoint.id, limit, before)
        page = rows[:limit]
        attempts = repo.attempts_of(session, [d.id for d in page])
    data = [delivery_document(d, attempts[d.id]) for d in page]
    return render_json(page_document(data, len(rows), limit))


def send_webhooks(ctx: ServiceContext) -> list[str]:
    """Due deliveries onto the webhooks queue (after a change that wrote some, and on every
    sweeper pass); a broker that refuses leaves them for the next pass."""
    try:
        return send_due(ctx.sessions, ctx.settings, ctx.queue.send_webhook)
    except Exception:  # the store: the next pass sends them
        log.exception("sending due webhooks failed")
        return []


def _find(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The caller's endpoint, or 404 for a malformed, unknown or other tenant's id alike."""
    endpoint = None
    if is_valid_id(endpoint_id, WEBHOOK_PREFIX):
        endpoint = repo.get_endpoint(session, tenant_id, endpoint_id)
    if endpoint is None:
        raise not_found("webhook", endpoint_id)
    return endpoint
