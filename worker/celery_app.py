"""The Celery app of the worker. Start it with the standard command:

    celery -A worker.celery_app worker -Q cpu --concurrency 1        # training on CPU
    celery -A worker.celery_app worker -Q datasets,inference         # uploads, predictions

(``fitq worker --gpus all`` starts one such process per GPU group, queue ``gpu<k>``.) The
parent process writes a heartbeat row to the store every few seconds: readiness and capacity
come from those rows, not from a broadcast ping.

It refuses to start on an un-migrated database; each pool child imports Keras (and so the
backend) once, after fork and before its first job."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    task_failure,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from fitq import logs
from fitq.devices import gpus_of_queue
from fitq.queues import TRAIN_TASK, celery_config, prepare_broker
from fitq.settings import get_settings
from fitq.store.db import make_engine
from fitq.store.migrate import DatabaseNotMigrated, require_current
from worker.beat import WorkerHeartbeat
from worker.metrics import prepare_multiprocess_dir

log = logging.getLogger(__name__)

settings = get_settings()
prepare_multiprocess_dir(settings)  # before anything imports prometheus_client
logs.configure(settings.log_format)
prepare_broker(settings)
app = Celery("fitq", include=["worker.tasks"])
app.conf.update(celery_config(settings))


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(**_: Any) -> None:
    """Celery sets its loggers up after import: put the JSON formatter back on them."""
    if settings.log_format == "json":
        logs.configure("json")


@worker_init.connect
def _refuse_unmigrated(**_: Any) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current(engine)
    except DatabaseNotMigrated as exc:
        log.critical("fitq worker refuses to start: %s", exc)
        sys.exit(f"fitq worker refuses to start: {exc}")
    finally:
        engine.dispose()  # no connection crosses the fork into pool children


# Whether this worker consumes a training queue; set in the parent before it forks children.
_trains = True
_heartbeat: WorkerHeartbeat | None = None


@celeryd_after_setup.connect
def _note_queues(sender: str, instance: Any, **_: Any) -> None:
    global _trains
    queues = instance.app.amqp.queues.consume_from
    _trains = any(gpus_of_queue(name) is not None for name in queues)


@worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    global _heartbeat
    queues = sorted(sender.app.amqp.queues.consume_from)
    _heartbeat = WorkerHeartbeat(settings, sender.hostname, queues)
    _heartbeat.start()
    if settings.worker_metrics_port is not None:
        from worker.metrics import serve

        serve(settings.worker_metrics_port)
        log.info("worker metrics on :%d/metrics", settings.worker_metrics_port)


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@worker_shutting_down.connect
def _drain(**_: Any) -> None:
    """Warm shutdown (SIGTERM): running jobs are checkpointed and handed back, not waited for."""
    from worker.drain import signal_children

    signal_children()


@task_failure.connect
def _release_lost_job(
    sender: Any = None, exception: BaseException | None = None, args: Any = None, **_: Any
) -> None:
    """In the parent: a pool child died under its job (SIGKILL, the kernel's OOM killer),
    which Celery reports at once as WorkerLostError. End the job's lease now so the sweeper
    re-queues it at its next pass, not a whole lease later; the lease stays the backstop for
    a host that is gone."""
    from billiard.exceptions import WorkerLostError

    if getattr(sender, "name", None) != TRAIN_TASK or not isinstance(exception, WorkerLostError):
        return
    from worker.context import release_lost_job

    job_id = str(args[0]) if args else ""
    if job_id and release_lost_job(job_id):
        log.warning("job %s: its process died (%s); released for a retry", job_id, exception)


@worker_process_init.connect
def _warm_child(**_: Any) -> None:
    """A training child imports Keras (and sets up devices) before its first job; an ingest
    child never imports it."""
    from worker.drain import install_child_handler

    install_child_handler()
    if not _trains:
        return
    from worker.backend import configure_devices
    from worker.context import job_runner

    configure_devices()
    job_runner()
