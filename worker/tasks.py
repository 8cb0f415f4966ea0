"""Celery tasks: thin adapters that take a job id and hand it to the runner.

Keras is imported in pool children only (``worker_process_init``), never in the parent that
forks them: a parent that touched TensorFlow or CUDA breaks its forked children."""

from __future__ import annotations

from typing import Any

from fitq.queues import INGEST_TASK, PREDICT_TASK, TRAIN_TASK, WEBHOOK_TASK
from fitq.settings import get_settings
from worker.celery_app import app


@app.task(name=TRAIN_TASK, ignore_result=True)
def train_job(job_id: str) -> str:
    from celery.exceptions import Reject

    from worker.context import fail_unstartable, job_runner
    from worker.drain import install_child_handler
    from worker.worker_error import StoreUnreachable

    # Here, not only at process start: billiard's pool may set its own SIGUSR2 handler after
    # worker_process_init (seen with the filesystem transport's pool).
    install_child_handler()
    try:
        runner = job_runner()
    except Exception as exc:  # Keras, the artifact store or a module missing: not the job's fault
        return "failed" if fail_unstartable(job_id, exc) else "duplicate"
    try:
        return runner.run(job_id).value
    except StoreUnreachable as exc:  # not claimed: the broker keeps the message
        raise Reject(str(exc), requeue=True) from exc


@app.task(name=INGEST_TASK, ignore_result=True)
def ingest_dataset(dataset_id: str) -> str:
    from worker.context import dataset_ingestor

    return dataset_ingestor().run(dataset_id)


@app.task(name=PREDICT_TASK, ignore_result=False, acks_late=False)
def predict(job_id: str, x: list[Any] | dict[str, list[Any]]) -> dict[str, Any]:
    """A short request: acknowledged on receipt (a lost one times out at the API)."""
    from worker.context import model_cache
    from worker.inference import ModelMissing, PredictError

    try:
        return model_cache().predict(job_id, x)
    except ModelMissing as exc:
        return {"error": str(exc), "model_missing": True}
    except PredictError as exc:
        return {"error": str(exc)}


@app.task(name=WEBHOOK_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of a webhook delivery, if it is due (the outbox row says)."""
    from fitq.webhooks.delivery import deliver
    from worker.context import sessions

    return deliver(sessions(), get_settings(), delivery_id)
