"""Container health check of a worker host: healthy while a worker process on this host has
a fresh heartbeat row (its parent is alive and reaches the store).

    python -m worker.healthcheck      # exit 0 healthy, 1 not
"""

from __future__ import annotations

import socket
import sys

from fitq.liveness import live_since
from fitq.settings import get_settings
from fitq.store import repository as repo
from fitq.store.db import make_engine, make_session_factory, transaction


def healthy(hostname: str) -> bool:
    settings = get_settings()
    sessions = make_session_factory(make_engine(settings.resolved_database_url, pooled=False))
    with transaction(sessions) as session:
        live = repo.live_workers(session, live_since(settings))
    return any(worker.hostname == hostname for worker in live)


if __name__ == "__main__":
    sys.exit(0 if healthy(socket.gethostname()) else 1)
