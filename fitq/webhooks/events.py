"""What a webhook tells: its event types and its body, as the Standard Webhooks
specification lays a payload out (``type``, ``timestamp``, ``data``), ``data`` being the job
or sweep as ``GET`` returns it."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

import pydantic_core

from fitq.statuses import JobStatus


class EventType(StrEnum):
    """The events an endpoint subscribes to. ``sweep.completed`` is sent when a sweep ends,
    whatever its status (succeeded, failed or cancelled: ``data.status`` says)."""

    job_succeeded = "job.succeeded"
    job_failed = "job.failed"
    job_cancelled = "job.cancelled"
    sweep_completed = "sweep.completed"


# Sent by ``POST /v1/webhooks/{id}/test`` only, whatever the endpoint subscribed to.
TEST_EVENT = "webhook.test"

JOB_EVENTS = {
    JobStatus.succeeded: EventType.job_succeeded,
    JobStatus.failed: EventType.job_failed,
    JobStatus.cancelled: EventType.job_cancelled,
}


def job_event(status: str) -> EventType | None:
    """The event of a job that reached ``status``; None while it has not ended."""
    return JOB_EVENTS.get(JobStatus(status))


def payload(event_type: str, data: dict[str, Any], timestamp: datetime) -> str:
    """The body as signed and sent. pydantic writes datetimes as the API does (RFC 3339,
    UTC as ``Z``), so ``data`` reads as the ``GET`` answer reads."""
    document = {"type": event_type, "timestamp": timestamp, "data": data}
    return pydantic_core.to_json(document).decode()


SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A signing secret as ``standardwebhooks.Webhook`` takes it: ``whsec_`` and 24 random
    bytes in base64 (the specification asks for 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
