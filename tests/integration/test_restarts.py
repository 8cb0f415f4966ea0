"""Restarts that must lose nothing: Redis with AOF restarted while a job waits in its queue
(a private redis-server on a free port: the machine's shared one is never touched), and the
API restarted while a job trains."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import tiny_arrays, tiny_job
from tests.integration.conftest import api_stack
from tests.processes import Stack, finished, free_port, poll_job, wait_for
from tests.services import IN_CI, PrivateRedis, postgres_database

TIMEOUT = 120


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed (CI=true: tests that need it must run)")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_queued_job_survives_a_redis_restart(tmp_path: Path, private_redis: PrivateRedis) -> None:
    with (
        postgres_database() as database,
        api_stack(
            tmp_path,
            FITQ_DATABASE_URL=database,
            FITQ_BROKER_URL=private_redis.url,
            FITQ_RESEND_AFTER_SECONDS="3600",  # the message itself must survive, not a re-send
        ) as stack,
        stack.client() as client,
    ):
        job_id = client.post("/v1/jobs", json=tiny_job(epochs=2)).json()["id"]
        assert client.get("/readyz").status_code == 200
        private_redis.stop()
        down = client.get("/readyz")
        assert (down.status_code, down.json()["status"]) == (503, "unavailable: broker")
        private_redis.start()
        assert client.get("/readyz").status_code == 200
        stack.start_worker()  # only now is anyone consuming the queue
        job, _ = poll_job(client, job_id, finished, TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1


def test_a_broker_outage_longer_than_lease_and_resends_loses_no_job(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Redis down for several re-send periods and lease lengths, with jobs queued before and
    one submitted during it: every job stays queued (no ``broker_unavailable``), and once
    Redis is back each trains exactly once, from its surviving message or a re-send."""
    with (
        postgres_database() as database,
        api_stack(  # lease 5 s and a sweep every 0.5 s (FAST_RECOVERY)
            tmp_path,
            FITQ_DATABASE_URL=database,
            FITQ_BROKER_URL=private_redis.url,
            FITQ_RESEND_AFTER_SECONDS="1",
            FITQ_SEND_TIMEOUT_SECONDS="1",
        ) as stack,
        stack.client() as client,
    ):
        before = [client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"] for _ in range(3)]
        private_redis.stop()
        during = client.post("/v1/jobs", json=tiny_job(epochs=1))
        assert during.status_code == 202, during.text
        assert (during.json()["status"], during.json()["error"]) == ("queued", None)
        ids = [*before, during.json()["id"]]
        # Re-sends fail meanwhile (the sweeper tries every second or so), for longer than a
        # lease: the old sweeper failed them all here.
        wait_for(
            lambda: all(
                client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
                and _refused_sends(client, job_id) >= 2
                for job_id in ids
            ),
            30,
            0.5,
            "re-sends refused while Redis is down",
        )
        private_redis.start()
        stack.start_worker()
        jobs = [poll_job(client, job_id, finished, TIMEOUT)[0] for job_id in ids]
    assert [(job["status"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 4


def _refused_sends(client: httpx.Client, job_id: str) -> int:
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    return sum("did not accept the job's message" in str(e["data"]) for e in events)


def test_restarting_the_api_leaves_a_running_job_alone(stack: Stack) -> None:
    job_id = stack_client_submit(stack, tiny_job(epochs=25, train=tiny_arrays(rows=2000)))
    with stack.client() as client:
        poll_job(client, job_id, lambda j: j["progress"]["epoch"] >= 2, TIMEOUT)
    assert stack.api is not None
    stack.api.stop()
    stack.start_api()
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1


def stack_client_submit(stack: Stack, body: dict) -> str:
    with stack.client() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_message_that_arrives_while_the_store_is_down_is_not_lost(tmp_path: Path) -> None:
    """The worker's store (PostgreSQL, through a forwarder this test cuts) is down when the
    job's message arrives: the worker gives the message back to Redis instead of
    acknowledging it, and trains the job once the store returns. The sweeper is off, so no
    re-send can be what saves it."""
    from tests.services import redis_db
    from tests.tcp_proxy import TcpProxy

    forwarder = TcpProxy(("127.0.0.1", 5432), free_port())
    forwarder.start()
    try:
        with (
            postgres_database() as database,
            redis_db() as broker,
            api_stack(
                tmp_path,
                FITQ_DATABASE_URL=database,
                FITQ_BROKER_URL=broker,
                FITQ_SWEEPER_ENABLED="false",
                FITQ_LEASE_SECONDS="2",  # how long a claim waits for the store
            ) as stack,
        ):
            through = database.replace(":5432/", f":{forwarder.port}/")
            stack.env = {**stack.env, "FITQ_DATABASE_URL": through}  # the worker's store only
            worker = stack.start_worker()
            forwarder.cut()
            with stack.client() as client:
                job_id = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"]
                wait_for(
                    lambda: "the store is unreachable" in worker.log(), 30, 0.2, "a failed claim"
                )
                time.sleep(3)  # past the claim's wait: the message went back to the broker
                assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
                forwarder.start()
                job, _ = poll_job(client, job_id, finished, TIMEOUT)
        assert (job["status"], job["attempts"]) == ("succeeded", 1), job["error"]
    finally:
        forwarder.cut()
