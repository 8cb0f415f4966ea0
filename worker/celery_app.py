"""The Celery app of the worker. Start it with the standard command:

    celery -A worker.celery_app worker -Q train --concurrency 1      # training
    celery -A worker.celery_app worker -Q datasets --concurrency 1   # parsing uploads

It refuses to start on an un-migrated database; each pool child imports Keras (and so the
backend) once, after fork and before its first job."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import (
    celeryd_after_setup,
    worker_init,
    worker_process_init,
    worker_shutting_down,
)

from fitq.queues import TRAIN_QUEUE, celery_config, prepare_broker
from fitq.settings import get_settings
from fitq.store.db import make_engine
from fitq.store.migrate import DatabaseNotMigrated, require_current

log = logging.getLogger(__name__)

settings = get_settings()
prepare_broker(settings)
app = Celery("fitq", include=["worker.tasks"])
app.conf.update(celery_config(settings))


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


# Whether this worker consumes the train queue; set in the parent before it forks children.
_trains = True


@celeryd_after_setup.connect
def _note_queues(sender: str, instance: Any, **_: Any) -> None:
    global _trains
    _trains = TRAIN_QUEUE in instance.app.amqp.queues.consume_from


@worker_shutting_down.connect
def _drain(**_: Any) -> None:
    """Warm shutdown (SIGTERM): running jobs are checkpointed and handed back, not waited for."""
    from worker.drain import signal_children

    signal_children()


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
