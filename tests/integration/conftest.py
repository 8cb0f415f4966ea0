"""Stacks of real processes: the API (uvicorn) and Celery workers, on Redis + PostgreSQL and on
the embedded defaults (SQLite + filesystem transport), with short leases so recovery shows in
seconds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from examples.seed_data import seed_arrays
from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.processes import REPO_ROOT, Stack, child_env
from tests.services import postgres_database, redis_db

FAST_RECOVERY = {
    "FITQ_AUTH": "off",  # the isolation tests turn it on
    "FITQ_LEASE_SECONDS": "5",
    "FITQ_HEARTBEAT_SECONDS": "1",
    "FITQ_SWEEP_INTERVAL_SECONDS": "0.5",
    "FITQ_RESEND_AFTER_SECONDS": "5",
    "FITQ_CHECKPOINT_SECONDS": "0.3",
}


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "fitq", "db", "upgrade"],
        env=child_env(env),
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )


@contextmanager
def api_stack(workdir: Path, **env: str) -> Iterator[Stack]:
    """A migrated store and a started API under ``workdir`` (embedded defaults unless ``env``
    says otherwise, fast recovery); the test starts the workers it needs. Stopped after."""
    with ExitStack() as cleanup:
        yield started_stack(cleanup, workdir, redis_postgres=False, **env)


def started_stack(cleanup: ExitStack, workdir: Path, redis_postgres: bool, **env: str) -> Stack:
    """A migrated store (a database and a Redis db index of its own on ``redis_postgres``,
    the embedded defaults otherwise) and a started API, with fast recovery and ``env``;
    stopped by ``cleanup``. The caller starts the workers it needs."""
    settings = {"FITQ_DATA_DIR": str(workdir / "fitq"), **FAST_RECOVERY, **env}
    if redis_postgres:
        settings["FITQ_DATABASE_URL"] = cleanup.enter_context(postgres_database())
        settings["FITQ_BROKER_URL"] = cleanup.enter_context(redis_db())
    migrate(settings)
    running = Stack(settings, workdir)
    cleanup.callback(running.stop)
    running.start_api()
    return running


@pytest.fixture(scope="module", params=["redis-postgres", "embedded"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(request.param)
    with ExitStack() as cleanup:
        running = started_stack(cleanup, workdir, request.param == "redis-postgres")
        running.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        running.start_worker()
        yield running


@pytest.fixture(scope="session")
def seed() -> dict[str, Any]:
    """The seed example's arrays and its numbers run by hand in this process."""
    from examples.seed_example import run

    arrays = seed_arrays()
    return {"arrays": arrays, "scores": run(arrays, seed=42)}
