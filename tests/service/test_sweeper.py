"""The sweeper and sending, on the real filesystem transport (and a Redis URL nobody serves)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.migrate import upgrade
from fitq.store.types import utcnow
from service.context import ServiceContext
from service.main import create_app
from service.sweeper import sweep_once
from tests.factories import tiny_job
from tests.processes import free_port

Api = tuple[TestClient, Settings]


def context(client: TestClient) -> ServiceContext:
    ctx: ServiceContext = client.app.state.context  # type: ignore[attr-defined]
    return ctx


def messages(settings: Settings) -> int:
    return sum(1 for p in Path(settings.broker_dir).glob("*.msg"))


def set_fields(ctx: ServiceContext, job_id: str, **fields) -> None:
    with transaction(ctx.sessions) as session:
        job = repo.get_job_by_id(session, job_id)
        assert job is not None
        for name, value in fields.items():
            setattr(job, name, value)


def test_submit_sends_one_message(api: Api) -> None:
    client, settings = api
    client.post("/v1/jobs", json=tiny_job())
    assert messages(settings) == 1


def test_an_unclaimed_job_is_resent_with_backoff(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
    assert sweep_once(ctx).resent == []  # just sent

    later = utcnow() + timedelta(seconds=settings.resend_after_seconds + 1)
    assert sweep_once(ctx, now=later).resent == [job_id]
    assert messages(settings) == 2
    # Sent twice now: the next re-send waits twice as long.
    assert (
        sweep_once(ctx, now=utcnow() + timedelta(seconds=settings.resend_after_seconds + 1)).resent
        == []
    )
    assert sweep_once(
        ctx, now=utcnow() + timedelta(seconds=2 * settings.resend_after_seconds + 1)
    ).resent == [job_id]


def test_an_expired_lease_is_requeued_and_resent(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
    with transaction(ctx.sessions) as session:
        assert repo.claim_job(session, job_id, "dead-worker", timedelta(seconds=-1)) == 1
    set_fields(ctx, job_id, epoch=1, history=[{"epoch": 1, "loss": 1.0}])

    report = sweep_once(ctx)
    assert report.requeued == [job_id]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempts"], job["history"]) == ("queued", 1, [])
    assert messages(settings) == 2


def test_the_last_attempt_fails_worker_lost(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
    set_fields(ctx, job_id, attempt=settings.max_attempts - 1)
    with transaction(ctx.sessions) as session:
        repo.claim_job(session, job_id, "dead-worker", timedelta(seconds=-1))

    assert sweep_once(ctx).lost == [job_id]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"]["type"] == "worker_lost"
    assert f"attempt {settings.max_attempts} of {settings.max_attempts}" in job["error"]["message"]


def test_a_refused_send_keeps_the_job_queued_until_the_outage_limit(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "fitq",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        sweeper_enabled=False,
        auth="off",
        send_timeout_seconds=1,
        no_capacity_seconds=10 * 24 * 3600,  # no worker runs here: not what this tests
    )
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=tiny_job())
        assert response.status_code == 202
        job = response.json()
        assert (job["status"], job["error"]) == ("queued", None)  # committed: re-sent later
        assert client.get("/readyz").status_code == 503
        ctx = context(client)
        events = client.get(f"/v1/jobs/{job['id']}/events").json()["data"]
        assert "did not accept the job's message" in events[-1]["data"]["message"]

        # The sweeper's re-sends are refused too, on the usual backoff: still queued.
        soon = utcnow() + timedelta(seconds=settings.resend_after_seconds + 1)
        report = sweep_once(ctx, now=soon)
        assert report.resent == [] and report.unsent == []
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"

        # Only after FITQ_MAX_UNSENT_SECONDS of refused sends does it fail.
        too_late = utcnow() + timedelta(seconds=settings.max_unsent_seconds + 1)
        assert sweep_once(ctx, now=too_late).unsent == [job["id"]]
        failed = client.get(f"/v1/jobs/{job['id']}").json()
        assert failed["error"]["type"] == "broker_unavailable"
        assert "FITQ_MAX_UNSENT_SECONDS" in failed["error"]["message"]


def upload(client: TestClient) -> str:
    files = {"file": ("d.csv", b"a,y\n1,2\n")}
    return client.post("/v1/datasets", files=files, data={"target": "y"}).json()["id"]


def test_an_upload_whose_message_was_lost_is_resent(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    dataset_id = upload(client)
    assert sweep_once(ctx).datasets_resent == []
    later = utcnow() + timedelta(seconds=settings.resend_after_seconds + 1)
    assert sweep_once(ctx, now=later).datasets_resent == [dataset_id]


def test_an_ingest_that_died_is_resent_then_failed(api: Api) -> None:
    client, settings = api
    ctx = context(client)
    dataset_id = upload(client)
    for attempt in range(1, settings.max_attempts + 1):
        with transaction(ctx.sessions) as session:
            assert repo.claim_dataset(session, dataset_id, timedelta(seconds=-1)) == attempt
        report = sweep_once(ctx)
        if attempt < settings.max_attempts:
            assert report.datasets_resent == [dataset_id]
    assert report.datasets_failed == [dataset_id]
    dataset = client.get(f"/v1/datasets/{dataset_id}").json()
    assert dataset["status"] == "failed"
    assert "stopped responding" in dataset["error"]["message"]


def test_retention_deletes_old_models_and_unused_datasets(api: Api, runner) -> None:
    client, settings = api
    ctx = context(client)
    ctx.settings = ctx.settings.model_copy(
        update={
            "model_retention_days": 1.0,
            "dataset_retention_days": 1.0,
            "no_capacity_seconds": 7 * 86_400.0,  # the queued job must outlive "2 days later"
        }
    )
    job_id = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"]
    runner.run(job_id)
    busy = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()  # stays queued
    model = settings.resolved_artifacts_dir / "jobs" / job_id / "model.keras"
    assert model.exists()
    assert sweep_once(ctx).models_deleted == []  # not old yet

    report = sweep_once(ctx, now=utcnow() + timedelta(days=2))
    assert report.models_deleted == [job_id]
    assert not model.exists()
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["result"]["model_url"] is None
    assert client.get(f"/v1/jobs/{job_id}/model").status_code == 404
    busy_dataset = busy["spec"]["data"]["train"]["dataset_id"]
    assert busy_dataset not in report.datasets_deleted  # its job is still queued
    assert report.datasets_deleted  # the finished job's inline dataset went
    for dataset_id in report.datasets_deleted:
        assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404


def test_dataset_files_without_a_row_are_deleted_once_untouched_for_an_hour(api: Api) -> None:
    """An API killed between writing a submission's inline arrays (or an upload) and
    committing its row leaves files nothing points at; the hourly pass removes them, never
    a dataset with a row, nor files young enough to belong to a submission in flight."""
    client, settings = api
    ctx = context(client)
    job = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()
    kept = job["spec"]["data"]["train"]["dataset_id"]
    root = settings.resolved_artifacts_dir / "datasets"
    for orphan in ("ds_orphan_old", "ds_orphan_new"):
        (root / orphan).mkdir(parents=True)
        (root / orphan / "x.npy").write_bytes(b"written, never committed")
    (root / "ds_orphan_old" / ".tmp-y.npy").write_bytes(b"half an upload")

    assert sweep_once(ctx).orphans_deleted == []  # only when asked: it lists every dataset
    assert sweep_once(ctx, orphans=True).orphans_deleted == []  # all younger than an hour
    later = utcnow() + timedelta(hours=2)
    fresh = later.timestamp() - 60  # touched a minute before "later"
    os.utime(root / "ds_orphan_new" / "x.npy", (fresh, fresh))
    assert sweep_once(ctx, now=later, orphans=True).orphans_deleted == ["ds_orphan_old"]
    assert not (root / "ds_orphan_old").exists()
    assert (root / "ds_orphan_new" / "x.npy").exists()
    assert (root / kept).is_dir()  # its row keeps it, however old
    assert client.get(f"/v1/datasets/{kept}").json()["status"] == "ready"
