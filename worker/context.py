"""Per-process resources of a worker: the store engine and the artifact store, created after
fork (a database connection must not cross a fork) and reused by every job of the process."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from fitq.artifacts import artifact_store_from_root
from fitq.settings import get_settings
from fitq.store.db import make_engine, make_session_factory
from worker.runner import JobRunner


@lru_cache
def _runner_for_pid(pid: int) -> JobRunner:
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    return JobRunner(
        sessions=make_session_factory(engine),
        artifacts=artifact_store_from_root(settings.resolved_artifacts_dir),
        settings=settings,
        worker_name=f"{socket.gethostname()}:{pid}",
    )


def job_runner() -> JobRunner:
    return _runner_for_pid(os.getpid())
