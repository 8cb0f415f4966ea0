"""The event loop's train messages (service.redis_publish) are the messages Celery's own
``send_task`` writes to Redis, on a real Redis. That a worker trains them is every Redis
integration test's submission (tests/integration: jobs POSTed, trained, polled)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fitq.queues import TRAIN_TASK
from fitq.settings import Settings
from service.queue import BrokerUnavailable, TaskQueue, TrainMessage
from tests.processes import free_port
from tests.services import redis_db

# Fresh per message (ids, tags) or per process and thread (Celery's reply queue).
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to"}


@pytest.fixture
def broker() -> Iterator[str]:
    with redis_db() as url:
        yield url


def _queue(url: str) -> TaskQueue:
    return TaskQueue(Settings(broker_url=url, database_url="sqlite://"))


def _raw(url: str, queue: str) -> list[dict[str, Any]]:
    """The queue's messages, oldest (the next a consumer takes) first."""
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(item) for item in reversed(client.lrange(queue, 0, -1))]
    finally:
        client.close()


def _comparable(envelope: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in envelope["headers"].items() if k not in PER_MESSAGE}
    properties = {k: v for k, v in envelope["properties"].items() if k not in PER_MESSAGE}
    # send_task copies its repr options into the properties too; consumers read the headers.
    properties.pop("argsrepr", None)
    properties.pop("kwargsrepr", None)
    return envelope | {
        "body": json.loads(base64.b64decode(envelope["body"])),
        "headers": headers,
        "properties": properties,
    }


def test_the_envelope_is_what_send_task_writes(broker: str) -> None:
    queue = _queue(broker)
    try:
        queue.send_train_many([TrainMessage("job_celery", "cpu", 90.0)])
        asyncio.run(_send_and_close(queue, [TrainMessage("job_celery", "cpu", 90.0)]))
    finally:
        queue.close()
    celery, ours = _raw(broker, "cpu")
    assert _comparable(ours) == _comparable(celery)
    assert ours["headers"]["task"] == TRAIN_TASK
    assert ours["headers"]["timelimit"] == [90.0, None]
    headers = ours["headers"]
    assert headers["id"] == headers["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"]["id"] != celery["headers"]["id"]


async def _send_and_close(queue: TaskQueue, messages: list[TrainMessage]) -> None:
    try:
        await queue.send_train_async(messages)
    finally:
        await queue.aclose()


def test_a_batch_keeps_its_order_per_queue_in_one_push_each(broker: str) -> None:
    messages = [
        TrainMessage("job_a", "cpu", None),
        TrainMessage("job_b", "gpu1", 60.0),
        TrainMessage("job_c", "cpu", None),
    ]
    asyncio.run(_send_and_close(_queue(broker), messages))

    def args(queue: str) -> list[str]:
        return [json.loads(base64.b64decode(m["body"]))[0][0] for m in _raw(broker, queue)]

    assert args("cpu") == ["job_a", "job_c"]
    assert args("gpu1") == ["job_b"]
    (gpu,) = _raw(broker, "gpu1")
    assert gpu["properties"]["delivery_info"] == {"exchange": "", "routing_key": "gpu1"}
    assert gpu["headers"]["argsrepr"] == "['job_b']"


def test_a_broker_that_is_not_there_is_broker_unavailable() -> None:
    settings = Settings(
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        database_url="sqlite://",
        send_timeout_seconds=1,
    )
    with pytest.raises(BrokerUnavailable, match="did not accept"):
        asyncio.run(_send_and_close(TaskQueue(settings), [TrainMessage("job_x", "cpu", None)]))
