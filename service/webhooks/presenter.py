"""Webhook endpoints and deliveries as the API shows them (WebhookRead,
WebhookDeliveryRead). The secret is never in these: only ``create`` shows it, once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fitq.documents import as_utc
from fitq.store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from fitq.store.repository.webhooks import PENDING


def endpoint_document(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "created_at": as_utc(endpoint.created_at),
    }


def delivery_document(
    delivery: WebhookDelivery, attempts: Sequence[WebhookAttempt]
) -> dict[str, Any]:
    pending = delivery.status == PENDING
    return {
        "id": delivery.id,
        "event_type": delivery.event_type,
        "subject_id": delivery.subject_id,
        "status": delivery.status,
        "created_at": as_utc(delivery.created_at),
        "next_attempt_at": as_utc(delivery.next_at) if pending else None,
        "finished_at": as_utc(delivery.finished_at),
        "attempts": [
            {
                "number": a.number,
                "at": as_utc(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": round(a.duration_ms, 3),
            }
            for a in attempts
        ],
        "payload": json.loads(delivery.payload),
    }
