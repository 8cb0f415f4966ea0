"""While PostgreSQL is unreachable the hot paths (poll, submission) answer 503 ``unavailable``
within the pool's wait, never hang or 500; once it is back they answer again without a
restart of the API (the pool's broken connections are checked and replaced)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

import service.pg
from fitq.settings import Settings
from service.main import create_app
from tests.factories import tiny_job
from tests.processes import free_port, wait_for
from tests.services import redis_db
from tests.tcp_proxy import TcpProxy
from worker.runner import JobRunner, RunResult
from worker.worker_error import StoreUnreachable


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    forwarder = TcpProxy(("127.0.0.1", 5432), free_port())
    forwarder.start()
    yield forwarder
    forwarder.cut()


async def _hold_connections(pool: AsyncConnectionPool, count: int) -> None:
    """Leaves ``count`` connections idle in the pool."""
    async with AsyncExitStack() as stack:
        for _ in range(count):
            await stack.enter_async_context(pool.connection())


def _unavailable(response: httpx.Response) -> bool:
    """A 503 in the envelope that says when to try again."""
    return (
        response.status_code == 503
        and response.json()["error"]["type"] == "unavailable"
        and response.headers.get("Retry-After") == "5"
    )


def test_the_store_going_away_is_503_and_its_return_is_served(
    pg_url: str, proxy: TcpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.pg, "POOL_WAIT_SECONDS", 2.0)
    monkeypatch.setattr(service.pg, "RECHECK_WAIT_SECONDS", 0.2)
    with redis_db() as broker:
        settings = Settings(
            data_dir=tmp_path / "fitq",
            database_url=pg_url.replace(":5432/", f":{proxy.port}/"),
            broker_url=broker,
            sweeper_enabled=False,
            auth="off",
        )
        with TestClient(create_app(settings)) as client:
            first = client.post("/v1/jobs", json=tiny_job(epochs=1))
            assert first.status_code == 202, first.text
            job = first.json()
            by_reference = tiny_job(epochs=1)
            dataset_id = job["spec"]["data"]["train"]["dataset_id"]
            by_reference["data"] = {"train": {"dataset_id": dataset_id}}
            assert client.get(f"/v1/jobs/{job['id']}").status_code == 200

            # A restart behind idle pooled connections: the next poll is served at once.
            client.portal.call(_hold_connections, client.app.state.context.pool, 3)
            proxy.cut()
            proxy.start()
            assert client.get(f"/v1/jobs/{job['id']}").status_code == 200

            proxy.cut()
            started = time.monotonic()
            assert _unavailable(client.get(f"/v1/jobs/{job['id']}"))
            # One wait for the pool, not two (the second only helps a broken connection).
            assert time.monotonic() - started < 2 * service.pg.POOL_WAIT_SECONDS
            # Known unreachable now: the next request waits the short recheck, not a whole
            # wait (requests queued behind a timed-out read took two waits).
            started = time.monotonic()
            assert _unavailable(client.get(f"/v1/jobs/{job['id']}"))
            assert time.monotonic() - started < service.pg.POOL_WAIT_SECONDS / 2
            assert _unavailable(client.post("/v1/jobs", json=by_reference))
            assert _unavailable(client.get("/v1/jobs"))  # the list reads through the ORM

            proxy.start()
            read = wait_for(
                lambda: (r := client.get(f"/v1/jobs/{job['id']}")).status_code == 200 and r,
                15,
                0.2,
                "the poll to be served again",
            )
            assert read.json()["id"] == job["id"]
            again = client.post("/v1/jobs", json=by_reference)
            assert again.status_code == 202, again.text
            assert client.get(f"/v1/jobs/{again.json()['id']}").json()["status"] == "queued"


def _runner_through(proxy: TcpProxy, pg_url: str, settings: Settings) -> JobRunner:
    from fitq.artifacts import artifact_store_from_root
    from fitq.store.db import make_engine, make_session_factory

    engine = make_engine(pg_url.replace(":5432/", f":{proxy.port}/"))
    return JobRunner(
        sessions=make_session_factory(engine),
        artifacts=artifact_store_from_root(settings.resolved_artifacts_dir),
        settings=settings,
        worker_name="test",
    )


def test_a_worker_claims_once_the_store_is_back_and_never_drops_an_unclaimed_message(
    pg_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    """A claim against a down store was acknowledged and lost (the job waited for the
    sweeper's re-send); now the worker claims when the store returns, and past a lease it
    gives the message back to the broker instead (``StoreUnreachable`` → Celery's Reject)."""
    with redis_db() as broker:
        settings = Settings(
            data_dir=tmp_path / "fitq",
            database_url=pg_url,
            broker_url=broker,
            sweeper_enabled=False,
            auth="off",
            lease_seconds=2,
        )
        with TestClient(create_app(settings)) as client:
            ids = [client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"] for _ in "ab"]
            runner = _runner_through(proxy, pg_url, settings)

            proxy.cut()  # down for longer than the wait: nothing claimed, the message kept
            with pytest.raises(StoreUnreachable):
                runner.run(ids[0])
            assert client.get(f"/v1/jobs/{ids[0]}").json()["status"] == "queued"

            threading.Timer(1.0, proxy.start).start()  # back within the wait: claimed
            assert runner.run(ids[1]) == RunResult.succeeded
            assert client.get(f"/v1/jobs/{ids[1]}").json()["attempts"] == 1
