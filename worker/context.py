"""Per-process resources of a worker: the store engine and the artifact store, created after
fork (a database connection must not cross a fork) and reused by every job of the process."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from fitq.artifacts import artifact_store
from fitq.queues import (
    TRAIN_QUEUE,
    TRAIN_TASK,
    WEBHOOK_TASK,
    WEBHOOKS_QUEUE,
    hard_time_limit,
    train_task_options,
)
from fitq.settings import get_settings
from fitq.store.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from worker.inference import ModelCache
    from worker.ingest import DatasetIngestor
    from worker.runner import JobRunner


@lru_cache
def _sessions_for_pid(pid: int) -> sessionmaker[Session]:
    return make_session_factory(make_engine(get_settings().resolved_database_url))


@lru_cache
def _runner_for_pid(pid: int) -> JobRunner:
    from worker.runner import JobRunner  # imports Keras: only in processes that train

    settings = get_settings()
    return JobRunner(
        sessions=_sessions_for_pid(pid),
        artifacts=artifact_store(settings),
        settings=settings,
        worker_name=_worker_name(),
        resend=_resend_train,
        send_trial=_send_train,
        send_webhook=send_webhook,
    )


def sessions() -> sessionmaker[Session]:
    return _sessions_for_pid(os.getpid())


def send_webhook(delivery_id: str) -> None:
    """Send a due webhook delivery's id to the webhooks queue."""
    from worker.celery_app import app

    app.send_task(WEBHOOK_TASK, args=[delivery_id], queue=WEBHOOKS_QUEUE, ignore_result=True)


def _send_train(job_id: str, queue: str, max_runtime: float | None) -> None:
    """Send a job's id to ``queue``: a sweep's new trial, which this process just wrote."""
    from worker.celery_app import app

    limit = hard_time_limit(get_settings(), max_runtime)
    app.send_task(TRAIN_TASK, queue=queue, **train_task_options(job_id, limit))


def _resend_train(job_id: str, max_runtime: float | None) -> None:
    """Send a handed-back job again, to the queue it was routed to."""
    from fitq.store import repository as repo
    from fitq.store.db import transaction

    with transaction(_sessions_for_pid(os.getpid())) as session:
        job = repo.get_job_by_id(session, job_id)
        queue = job.queue if job is not None else TRAIN_QUEUE
    _send_train(job_id, queue, max_runtime)


@lru_cache
def _ingestor_for_pid(pid: int) -> DatasetIngestor:
    from worker.ingest import DatasetIngestor

    settings = get_settings()
    return DatasetIngestor(
        sessions=_sessions_for_pid(pid),
        artifacts=artifact_store(settings),
        settings=settings,
    )


@lru_cache
def _models_for_pid(pid: int) -> ModelCache:
    from worker.inference import ModelCache

    settings = get_settings()
    return ModelCache(
        sessions=_sessions_for_pid(pid),
        artifacts=artifact_store(settings),
        size=settings.model_cache_size,
    )


def model_cache() -> ModelCache:
    return _models_for_pid(os.getpid())


def job_runner() -> JobRunner:
    return _runner_for_pid(os.getpid())


def fail_unstartable(job_id: str, exc: Exception) -> bool:
    """The job's runner could not be built in this process: fail the job with the cause."""
    from worker.worker_error import fail_unstarted

    settings = get_settings()
    lease = timedelta(seconds=settings.lease_seconds)
    return fail_unstarted(_sessions_for_pid(os.getpid()), job_id, _worker_name(), lease, exc)


def release_lost_job(job_id: str) -> bool:
    """The parent's word that this host's process running ``job_id`` died. Its own short-lived
    connection: a pooled one in the parent would be inherited by the children it forks."""
    from fitq.store import repository as repo
    from fitq.store.db import transaction
    from fitq.store.types import utcnow

    engine = make_engine(get_settings().resolved_database_url, pooled=False)
    try:
        with transaction(make_session_factory(engine)) as session:
            return repo.release_lease(session, job_id, socket.gethostname(), utcnow())
    finally:
        engine.dispose()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dataset_ingestor() -> DatasetIngestor:
    return _ingestor_for_pid(os.getpid())
