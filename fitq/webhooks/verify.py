"""For receivers: check that a webhook came from fitq, unchanged and recent.

    from fitq import verify_webhook
    event = verify_webhook(request.body, request.headers, secret)   # raises if not
    if event["type"] == "job.succeeded":
        print(event["data"]["result"]["test_loss"])

The check is the Standard Webhooks library's own (any of its languages' libraries does the
same): the HMAC-SHA256 signature of ``webhook-id``, ``webhook-timestamp`` and the body as
received, and a timestamp within five minutes of now, so a captured request cannot be
replayed later. Deduplicate on ``webhook-id``: a retry carries the one its first try did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The event (``type``, ``timestamp``, ``data``) of a delivery whose signature matches
    ``secret`` (the ``whsec_…`` its endpoint was created with); ``WebhookVerificationError``
    otherwise. Pass the body exactly as received, before any JSON parsing."""
    event: dict[str, Any] = Webhook(secret).verify(body, dict(headers))
    return event
