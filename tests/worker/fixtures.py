"""The worker's logic driven without Celery, on the store of the ``api`` fixture: the job
runner (Keras), the dataset ingestor, and a hook into training's epoch ends. Loaded for every
test package by ``tests/conftest.py`` (``pytest_plugins``); Keras is imported only when a
test asks for one of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from fitq.artifacts import artifact_store_from_root
from fitq.settings import Settings
from fitq.store.db import make_engine, make_session_factory

if TYPE_CHECKING:  # Keras: imported by the fixtures, so only the tests using them pay
    from worker.ingest import DatasetIngestor
    from worker.runner import JobRunner


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
