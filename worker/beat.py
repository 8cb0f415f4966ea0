"""The worker's heartbeat row: the Celery parent process writes its node name, host, pid and
queues to the store every ``FITQ_WORKER_HEARTBEAT_SECONDS`` and deletes the row on a clean
shutdown. The API reads these rows for readiness and for ``no_capacity`` (no broadcast ping,
which the filesystem transport cannot carry anyway)."""

from __future__ import annotations

import logging
import os
import threading

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import make_engine, make_session_factory, transaction

log = logging.getLogger(__name__)


class WorkerHeartbeat:
    def __init__(self, settings: Settings, name: str, queues: list[str]) -> None:
        self.name = name
        self.queues = queues
        self.interval = settings.worker_heartbeat_seconds
        # No pooled connection: the parent forks pool children, and a socket must not cross.
        self.sessions = make_session_factory(
            make_engine(settings.resolved_database_url, pooled=False)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fitq-worker-beat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()
        log.info("heartbeat of %s on queues %s every %ss", self.name, self.queues, self.interval)

    def beat(self) -> None:
        with transaction(self.sessions) as session:
            repo.beat_worker(session, self.name, _hostname(self.name), os.getpid(), self.queues)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        try:
            with transaction(self.sessions) as session:
                repo.remove_worker(session, self.name)
        except Exception:  # the row ages out anyway
            log.exception("could not remove the heartbeat row of %s", self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a store hiccup: the next beat may land
                log.exception("worker heartbeat failed")


def _hostname(node_name: str) -> str:
    return node_name.partition("@")[2] or node_name
