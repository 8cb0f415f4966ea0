"""Fixtures every test package shares: stores on SQLite and PostgreSQL, the API in-process,
and the worker's runner and ingestor driven without Celery (those import Keras, so only
the tests that ask for them pay for it). Tests under ``tests/integration`` and
``tests/packaging`` start real processes and are marked ``integration``:
``pytest -m "not integration"`` is the fast loop."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

# Quiet TensorFlow in this process and in every child the tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fastapi.testclient import TestClient

from fitq.artifacts import artifact_store_from_root
from fitq.settings import Settings
from fitq.store.db import make_engine, make_session_factory
from fitq.store.migrate import upgrade
from service.main import create_app
from tests.services import postgres_database

if TYPE_CHECKING:
    from worker.ingest import DatasetIngestor
    from worker.runner import JobRunner

# Packages whose tests start real processes (uvicorn, Celery workers, pip, docker).
INTEGRATION_PACKAGES = ("integration", "packaging", "compose")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(tests_root):
            continue
        if item.path.relative_to(tests_root).parts[0] in INTEGRATION_PACKAGES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "fitq", sweeper_enabled=False, auth="off")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        upgrade(url)
        yield url


def _truncate(factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        session.execute(text("DELETE FROM jobs"))
        session.execute(text("DELETE FROM datasets"))
        # A live worker left by one test would route the next one's jobs to its queues.
        session.execute(text("DELETE FROM workers"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return url


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated, empty store on SQLite and on PostgreSQL."""
    engine = make_engine(store_url)
    factory = make_session_factory(engine)
    _truncate(factory)
    yield factory
    _truncate(factory)
    engine.dispose()


@pytest.fixture
def api(embedded_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """The API in-process on a migrated embedded store, with the real filesystem transport
    (no worker consumes its messages here)."""
    upgrade(embedded_settings.resolved_database_url)
    with TestClient(create_app(embedded_settings)) as client:
        yield client, embedded_settings


@pytest.fixture
def runner(api: tuple[TestClient, Settings]) -> JobRunner:
    """A worker's job runner on the same store, driven without Celery."""
    from worker.runner import JobRunner

    settings = api[1]
    engine = make_engine(settings.resolved_database_url)
    return JobRunner(
        sessions=make_session_factory(engine),
        artifacts=artifact_store_from_root(settings.resolved_artifacts_dir),
        settings=settings,
        worker_name="test",
    )


@pytest.fixture
def ingestor(api: tuple[TestClient, Settings]) -> DatasetIngestor:
    """The ingest worker's logic on the same store, driven without Celery."""
    from worker.ingest import DatasetIngestor

    settings = api[1]
    return DatasetIngestor(
        sessions=make_session_factory(make_engine(settings.resolved_database_url)),
        artifacts=artifact_store_from_root(settings.resolved_artifacts_dir),
        settings=settings,
    )


@pytest.fixture
def epoch_hook(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Callable[[], None]]:
    """``install(hook, before_report=False)`` makes the runner's training call ``hook(history)``
    at each epoch end, after (or before) the runner records the epoch; returns ``uninstall``."""
    import worker.runner

    real_train = worker.runner.train

    def install(
        hook: Callable[[list[Any]], None], *, before_report: bool = False
    ) -> Callable[[], None]:
        def train(*args: Any, on_epoch: Callable[[list[Any]], None], **kwargs: Any) -> Any:
            def report(history: list[Any]) -> None:
                if before_report:
                    hook(history)
                on_epoch(history)
                if not before_report:
                    hook(history)

            return real_train(*args, on_epoch=report, **kwargs)

        monkeypatch.setattr(worker.runner, "train", train)
        return lambda: monkeypatch.setattr(worker.runner, "train", real_train)

    return install
