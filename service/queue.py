"""Sends task messages by name (the API never imports the worker)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from fitq.queues import (
    DATASETS_QUEUE,
    INFERENCE_QUEUE,
    INGEST_TASK,
    PREDICT_TASK,
    TRAIN_QUEUE,
    TRAIN_TASK,
    celery_config,
    prepare_broker,
)
from fitq.settings import Settings

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    pass


class TrainMessage(NamedTuple):
    job_id: str
    queue: str
    time_limit: float | None  # Celery's hard limit, seconds


class TaskQueue:
    def __init__(self, settings: Settings) -> None:
        prepare_broker(settings)
        self._app = Celery("fitq-api")
        self._app.conf.update(celery_config(settings))

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
                            TRAIN_TASK, args=[job_id], queue=queue, time_limit=time_limit,
                            ignore_result=True, producer=producer,
                            # What Celery's saferepr would write, without its cost.
                            argsrepr=f"['{job_id}']", kwargsrepr="{}",
                        )  # fmt: skip
        except Exception as exc:  # kombu raises OperationalError and friends after its retries
            log.warning("could not send %d train messages: %r", len(messages), exc)
            raise BrokerUnavailable(f"the broker did not accept the message: {exc}") from exc

    def send_ingest(self, dataset_id: str) -> None:
        self._send(INGEST_TASK, dataset_id, DATASETS_QUEUE)

    def _send(self, task: str, id_: str, queue: str) -> None:
        try:
            self._app.send_task(task, args=[id_], queue=queue, ignore_result=True)
        except Exception as exc:  # kombu raises OperationalError and friends after its retries
            log.warning("could not send %s(%s) to %s: %r", task, id_, queue, exc)
            raise BrokerUnavailable(f"the broker did not accept the message: {exc}") from exc

    def predict(self, job_id: str, x: list[Any], timeout: float) -> dict[str, Any]:
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

    def close(self) -> None:
        self._app.close()
