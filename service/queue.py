"""Sends task messages by name (the API never imports the worker)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

from anyio import to_thread
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from fitq.queues import (
    DATASETS_QUEUE,
    INFERENCE_QUEUE,
    INGEST_TASK,
    PREDICT_TASK,
    TRAIN_QUEUE,
    TRAIN_TASK,
    WEBHOOK_TASK,
    WEBHOOKS_QUEUE,
    celery_config,
    prepare_broker,
    train_task_options,
)
from fitq.settings import Settings
from service.redis_publish import RedisTrainPublisher

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    pass


def _train_refused(messages: Sequence[Any], exc: Exception) -> BrokerUnavailable:
    """Logged once, whichever way the train messages went (Celery or the Redis publisher)."""
    log.warning("could not send %d train messages: %r", len(messages), exc)
    return BrokerUnavailable(f"the broker did not accept the message: {exc}")


class TrainMessage(NamedTuple):
    job_id: str
    queue: str
    time_limit: float | None  # Celery's hard limit, seconds


class TaskQueue:
    def __init__(self, settings: Settings) -> None:
        prepare_broker(settings)
        self._app = Celery("fitq-api")
        self._app.conf.update(celery_config(settings))
        url = settings.resolved_broker_url
        # On Redis, the submissions' messages go out from the event loop (service.redis_publish).
        self._train_publisher = (
            RedisTrainPublisher(self._app, url, settings.send_timeout_seconds)
            if url.startswith(("redis://", "rediss://"))
            else None
        )

    def send_train(
        self, job_id: str, queue: str = TRAIN_QUEUE, time_limit: float | None = None
    ) -> None:
        self.send_train_many([TrainMessage(job_id, queue, time_limit)])

    def send_train_many(self, messages: Sequence[TrainMessage]) -> None:
        """Several jobs' ids in one broker round trip where the transport can batch (kombu's
        ``Producer.batch``, Redis: one pipeline), one by one elsewhere."""
        try:
            with self._app.producer_or_acquire() as producer:
                batch = producer.batch() if hasattr(producer, "batch") else nullcontext()
                with batch:
                    for job_id, queue, time_limit in messages:
                        self._app.send_task(
                            TRAIN_TASK,
                            queue=queue,
                            producer=producer,
                            **train_task_options(job_id, time_limit),
                        )
        except Exception as exc:  # kombu raises OperationalError and friends after its retries
            raise _train_refused(messages, exc) from exc

    async def send_train_async(self, messages: Sequence[TrainMessage]) -> None:
        """``send_train_many`` for the event loop: on Redis without a thread (the hot path of
        a submission), elsewhere Celery's send in a worker thread."""
        if self._train_publisher is None:
            await to_thread.run_sync(self.send_train_many, messages)
            return
        try:
            await self._train_publisher.send(messages)
        except Exception as exc:  # redis-py raises after the publisher's retries
            raise _train_refused(messages, exc) from exc

    def send_ingest(self, dataset_id: str) -> None:
        self._send(INGEST_TASK, dataset_id, DATASETS_QUEUE)

    def send_webhook(self, delivery_id: str) -> None:
        self._send(WEBHOOK_TASK, delivery_id, WEBHOOKS_QUEUE)

    def _send(self, task: str, id_: str, queue: str) -> None:
        try:
            self._app.send_task(task, args=[id_], queue=queue, ignore_result=True)
        except Exception as exc:  # kombu raises OperationalError and friends after its retries
            log.warning("could not send %s(%s) to %s: %r", task, id_, queue, exc)
            raise BrokerUnavailable(f"the broker did not accept the message: {exc}") from exc

    def predict(
        self, job_id: str, x: list[Any] | dict[str, list[Any]], timeout: float
    ) -> dict[str, Any]:
        """Send a prediction request and wait for the reply; TimeoutError past ``timeout``."""
        try:
            pending = self._app.send_task(
                PREDICT_TASK, args=[job_id, x], queue=INFERENCE_QUEUE, ignore_result=False,
                expires=timeout,
            )  # fmt: skip
        except Exception as exc:
            raise BrokerUnavailable(f"the broker did not accept the request: {exc}") from exc
        try:
            reply: dict[str, Any] = pending.get(timeout=timeout, interval=0.02)
        except CeleryTimeout as exc:
            with contextlib.suppress(Exception):  # nothing stored yet is fine
                pending.forget()
            raise TimeoutError(f"no prediction within {timeout:g} s") from exc
        return reply

    def ping(self) -> bool:
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False

    async def aclose(self) -> None:
        """``close``, and the event loop's Redis client."""
        if self._train_publisher is not None:
            await self._train_publisher.close()
        self.close()

    def close(self) -> None:
        self._app.close()
