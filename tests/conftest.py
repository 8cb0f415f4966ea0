"""Fixtures every test package shares: stores on SQLite and PostgreSQL, the API in-process,
and the worker's runner and ingestor driven without Celery (those import Keras, so only
the tests that ask for them pay for it). Tests under ``tests/integration`` and
``tests/packaging`` start real processes and are marked ``integration``:
``pytest -m "not integration"`` is the fast loop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

# Quiet TensorFlow in this process and in every child the tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store.db import make_engine, make_session_factory
from fitq.store.migrate import upgrade
from service.main import create_app
from tests.services import postgres_database

# The worker's fixtures (they import Keras when used): the worker tests' own, and the
# service tests that drive a worker in-process ask for them by name.
pytest_plugins = ["tests.worker.fixtures"]

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
        session.execute(text("DELETE FROM sweeps"))
        session.execute(text("DELETE FROM webhook_attempts"))
        session.execute(text("DELETE FROM webhook_deliveries"))
        session.execute(text("DELETE FROM webhook_endpoints"))
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
