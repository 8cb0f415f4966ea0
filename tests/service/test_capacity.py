"""Capacity from worker heartbeat rows: where a job is routed, what readiness reports, and
``no_capacity`` for a job no live worker will ever take."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import WorkerBeat
from fitq.store.types import utcnow
from service.sweeper import sweep_once
from tests.factories import tiny_job
from tests.service.test_sweeper import context

Api = tuple[TestClient, Settings]


def beat(client: TestClient, name: str, queues: list[str], age: float = 0.0) -> None:
    """A worker's heartbeat row, as if its last beat came ``age`` seconds ago."""
    with transaction(context(client).sessions) as session:
        repo.beat_worker(session, name, "host", 123, queues)
        row = session.get(WorkerBeat, name)
        assert row is not None
        row.heartbeat_at = utcnow() - timedelta(seconds=age)


def submit(client: TestClient, gpus: int | None = None) -> dict:
    body = tiny_job()
    if gpus is not None:
        body["resources"] = {"gpus": gpus}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def queue_of(client: TestClient, job_id: str) -> str:
    with transaction(context(client).sessions) as session:
        job = repo.get_job_by_id(session, job_id)
        assert job is not None
        return job.queue


def test_jobs_go_to_the_queue_of_their_gpus(api: Api) -> None:
    client, _ = api
    for gpus, queue in [(0, "cpu"), (1, "gpu1"), (4, "gpu4")]:
        job = submit(client, gpus)
        assert queue_of(client, job["id"]) == queue
        assert job["spec"]["resources"] == {"gpus": gpus}


def test_unset_gpus_take_one_where_a_live_gpu_worker_exists(api: Api) -> None:
    client, settings = api
    assert queue_of(client, submit(client)["id"]) == "cpu"
    stale = 3 * settings.worker_heartbeat_seconds + 1
    beat(client, "fitq-gpu0@old", ["gpu1"], age=stale)  # silent too long: not live
    assert queue_of(client, submit(client)["id"]) == "cpu"
    beat(client, "fitq-gpu0@host", ["gpu1"])
    job = submit(client)
    assert queue_of(client, job["id"]) == "gpu1"
    assert job["spec"]["resources"] == {"gpus": 1}


def test_readiness_reports_live_workers_per_queue(api: Api) -> None:
    client, settings = api
    assert client.get("/readyz").json() == {"status": "ok", "workers": {}}
    beat(client, "a@host", ["cpu"])
    beat(client, "b@host", ["datasets", "inference"])
    beat(client, "c@host", ["cpu"])
    beat(client, "d@host", ["gpu1"], age=3 * settings.worker_heartbeat_seconds + 1)
    assert client.get("/readyz").json()["workers"] == {"cpu": 2, "datasets": 1, "inference": 1}


def test_a_job_no_live_worker_serves_fails_no_capacity(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    beat(client, "a@host", ["cpu"])
    served = submit(client, gpus=0)["id"]
    stranded = submit(client, gpus=2)["id"]
    soon = utcnow() + timedelta(seconds=settings.no_capacity_seconds - 5)
    assert sweep_once(ctx, now=soon).no_capacity == []
    later = utcnow() + timedelta(seconds=settings.no_capacity_seconds + 1)
    beat(client, "a@host", ["cpu"])
    with transaction(ctx.sessions) as session:  # keep the cpu worker live at "later"
        row = session.get(WorkerBeat, "a@host")
        assert row is not None
        row.heartbeat_at = later
    assert sweep_once(ctx, now=later).no_capacity == [stranded]
    job = client.get(f"/v1/jobs/{stranded}").json()
    assert job["status"] == "failed"
    assert job["error"]["type"] == "no_capacity"
    assert "no live worker serves queue 'gpu2' (waited 600 s)" in job["error"]["message"]
    assert client.get(f"/v1/jobs/{served}").json()["status"] == "queued"
