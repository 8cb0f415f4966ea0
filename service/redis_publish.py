"""Train messages onto a Redis broker from the event loop: Celery's own task message (headers
and body from ``app.amqp.as_task_v2``) in kombu's Redis envelope, pushed with one ``LPUSH``
per queue on an asyncio Redis client.

Why not ``send_task``: on the submission's hot path it cost ~0.5 ms of CPU per message in
batches (~0.9 ms alone) — Celery's option merging, kombu's entity copies and a new redis-py
pipeline per batch — and it blocks, so it ran in a worker thread that fought the event loop
for the GIL. This path costs ~0.07 ms per message and never leaves the loop.

What it relies on, from kombu's Redis transport (``kombu.transport.redis``): a queue is a
list named after it (priority 0 has no suffix), consumers ``BRPOP`` from the right, and a
message is the JSON envelope below. ``tests/service/test_redis_publish.py`` holds the envelope
equal to what ``send_task`` writes; every Redis integration test's worker consumes it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from celery import Celery
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fitq.queues import TRAIN_TASK, train_task_options

# kombu's default exchange ("") delivers straight to the queue named by the routing key,
# which is how Celery routes fitq's queues (task_routes by queue name).
DEFAULT_EXCHANGE = ""
PERSISTENT = 2  # kombu's delivery_mode for a persistent message


def train_envelope(app: Celery, job_id: str, queue: str, time_limit: float | None) -> bytes:
    """One ``fitq.train(job_id)`` message as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(
        task_id, TRAIN_TASK, kwargs={}, **train_task_options(job_id, time_limit)
    )
    # Celery's JSON body (kombu's json serializer writes it with the standard library).
    body = orjson.dumps(message.body)
    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": DEFAULT_EXCHANGE, "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return orjson.dumps(envelope)


class RedisTrainPublisher:
    """Pushes train messages to their queues' lists; connection errors are retried as Celery's
    ``task_publish_retry_policy`` would (twice, backing off), then raised."""

    def __init__(self, app: Celery, url: str, timeout: float) -> None:
        self._app = app
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.2), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )

    async def send(self, messages: Sequence[tuple[str, str, float | None]]) -> None:
        """``(job_id, queue, time_limit)`` each; one round trip per queue among them."""
        by_queue: dict[str, list[bytes]] = {}
        for job_id, queue, time_limit in messages:
            by_queue.setdefault(queue, []).append(
                train_envelope(self._app, job_id, queue, time_limit)
            )
        for queue, envelopes in by_queue.items():
            # kombu consumes from the right: pushing on the left keeps the batch's order.
            await self._redis.lpush(queue, *envelopes)

    async def close(self) -> None:
        await self._redis.aclose()
