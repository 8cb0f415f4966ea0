"""Cancel, runtime limits, events, idempotent submits, deletes and queue positions, through the
in-process API and the job runner (without Celery)."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from service.sweeper import sweep_once
from tests.factories import tiny_arrays, tiny_job
from tests.processes import wait_for
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]


def submit(client: TestClient, body: dict, **headers: str) -> dict:
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def long_job(epochs: int = 500) -> dict:
    return tiny_job(epochs=epochs, train=tiny_arrays(rows=256))


def events(client: TestClient, job_id: str, after: int = 0) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/events", params={"after": after}).json()["data"]


def test_a_cancelled_queued_job_never_starts(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job = submit(client, tiny_job())
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202
    assert (cancelled.json()["status"], cancelled.json()["cancel_requested"]) == ("cancelled", True)
    assert runner.run(job["id"]) == RunResult.duplicate
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202  # again: harmless
    assert [e["data"]["status"] for e in events(client, job["id"])] == ["queued", "cancelled"]


def test_a_running_job_stops_at_a_batch_and_keeps_completed_epochs(
    api: Api, runner: JobRunner
) -> None:
    client, _ = api
    job_id = submit(client, long_job())["id"]
    outcome: list[RunResult] = []
    worker = threading.Thread(target=lambda: outcome.append(runner.run(job_id)))
    worker.start()
    wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 2, 60)
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["cancel_requested"] is True
    worker.join(timeout=60)

    assert outcome == [RunResult.cancelled]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    done = len(job["history"])
    assert 2 <= done < 500
    assert [e["epoch"] for e in job["history"]] == list(range(1, done + 1))
    kinds = [
        (e["type"], e["data"].get("status") or e["data"].get("message"))
        for e in events(client, job_id)
    ]
    assert kinds[:2] == [("status", "queued"), ("status", "running")]
    assert ("log", "cancel requested") in kinds and kinds[-1] == ("status", "cancelled")
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202


def test_cancelling_a_finished_job_is_a_conflict(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job_id = submit(client, tiny_job(epochs=1))["id"]
    runner.run(job_id)
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert "has already succeeded" in response.json()["error"]["message"]


def test_max_runtime_ends_the_job_failed_with_its_history(api: Api, runner: JobRunner) -> None:
    client, _ = api
    body = long_job()
    body["fit"]["max_runtime_seconds"] = 2.0
    job_id = submit(client, body)["id"]
    assert runner.run(job_id) == RunResult.failed
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["error"]["type"] == "max_runtime_exceeded"
    assert "limit of 2 s" in job["error"]["message"]
    done = len(job["history"])  # however many epochs fit in 2 s on a busy machine
    assert done < 500 and [e["epoch"] for e in job["history"]] == list(range(1, done + 1))


def test_the_server_caps_every_job_runtime(api: Api) -> None:
    client, settings = api
    body = tiny_job()
    body["fit"]["max_runtime_seconds"] = 10 * settings.max_runtime_seconds
    job_id = submit(client, body)["id"]
    with transaction(client.app.state.context.sessions) as session:  # type: ignore[attr-defined]
        assert (
            repo.get_job_by_id(session, job_id).max_runtime_seconds == settings.max_runtime_seconds
        )


def test_events_page_by_seq_and_carry_each_epoch(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job_id = submit(client, tiny_job(epochs=3))["id"]
    runner.run(job_id)
    all_events = events(client, job_id)
    assert [e["seq"] for e in all_events] == list(range(1, len(all_events) + 1))
    epochs = [e["data"] for e in all_events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1] == client.get(f"/v1/jobs/{job_id}").json()["history"][-1]
    assert events(client, job_id, after=all_events[-2]["seq"]) == all_events[-1:]
    assert all_events[-1]["data"] == {"status": "succeeded"}


def test_same_idempotency_key_and_body_returns_the_same_job(api: Api) -> None:
    client, _ = api
    first = client.post("/v1/jobs", json=tiny_job(), headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/jobs", json=tiny_job(), headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/jobs", json=tiny_job(epochs=5), headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert first.json()["id"] in other.json()["error"]["message"]
    assert len(client.get("/v1/jobs").json()["data"]) == 1


def test_an_idempotency_key_expires_after_a_day(api: Api) -> None:
    client, _ = api
    first = submit(client, tiny_job(), **{"Idempotency-Key": "k-2"})
    with transaction(client.app.state.context.sessions) as session:  # type: ignore[attr-defined]
        key = repo.get_idempotency_key(session, "default", "k-2")
        key.created_at = utcnow() - timedelta(hours=25)
    second = submit(client, tiny_job(), **{"Idempotency-Key": "k-2"})
    assert second["id"] != first["id"]


def test_delete_removes_a_finished_job_and_its_files(api: Api, runner: JobRunner) -> None:
    client, settings = api
    queued = submit(client, tiny_job())["id"]
    assert client.delete(f"/v1/jobs/{queued}").status_code == 409
    runner.run(queued)
    model = settings.resolved_artifacts_dir / "jobs" / queued / "model.keras"
    assert model.exists()
    assert client.delete(f"/v1/jobs/{queued}").status_code == 204
    assert client.get(f"/v1/jobs/{queued}").status_code == 404
    assert client.get(f"/v1/jobs/{queued}/events").status_code == 404
    assert not model.exists()


def test_queued_jobs_show_their_place_in_the_queue(api: Api) -> None:
    client, _ = api
    ids = [submit(client, tiny_job())["id"] for _ in range(3)]
    positions = [client.get(f"/v1/jobs/{i}").json()["progress"]["queue_position"] for i in ids]
    assert positions == [1, 2, 3]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    assert client.get(f"/v1/jobs/{ids[2]}").json()["progress"]["queue_position"] == 2


def test_a_job_killed_by_its_time_limit_is_not_retried(api: Api) -> None:
    client, _ = api
    ctx = client.app.state.context  # type: ignore[attr-defined]
    body = tiny_job()
    body["fit"]["max_runtime_seconds"] = 5
    job_id = submit(client, body)["id"]
    with transaction(ctx.sessions) as session:
        repo.claim_job(session, job_id, "w", timedelta(seconds=-1))
    later = utcnow() + timedelta(seconds=5 + ctx.settings.time_limit_grace_seconds + 1)
    assert sweep_once(ctx, now=later).lost == [job_id]
    assert client.get(f"/v1/jobs/{job_id}").json()["error"]["type"] == "max_runtime_exceeded"


def test_predict_refuses_unfinished_jobs_and_times_out_without_a_worker(
    api: Api, runner: JobRunner
) -> None:
    client, _ = api
    queued = submit(client, tiny_job())["id"]
    response = client.post(f"/v1/jobs/{queued}/predict", json={"x": [[0.0] * 4]})
    assert response.status_code == 409
    runner.run(queued)
    ctx = client.app.state.context  # type: ignore[attr-defined]
    ctx.settings = ctx.settings.model_copy(update={"predict_timeout_seconds": 0.5})
    response = client.post(f"/v1/jobs/{queued}/predict", json={"x": [[0.0] * 4]})
    assert response.status_code == 504  # no inference worker in this test
    assert response.json()["error"]["type"] == "timeout"


class _WorkerDied(BaseException):
    """Not an Exception: nothing in the worker catches it, as nothing survives a SIGKILL."""


def test_a_job_resumes_from_its_checkpoint_after_its_worker_dies(
    api: Api, runner: JobRunner, epoch_hook
) -> None:
    client, settings = api
    ctx = client.app.state.context  # type: ignore[attr-defined]
    runner.settings = runner.settings.model_copy(update={"checkpoint_seconds": 1e-6})
    job_id = submit(client, tiny_job(epochs=6))["id"]

    def dies_at_epoch_3(history):
        if len(history) == 3:
            raise _WorkerDied

    uninstall = epoch_hook(dies_at_epoch_3)
    try:
        runner.run(job_id)
    except _WorkerDied:
        pass
    uninstall()
    checkpoint = settings.resolved_artifacts_dir / "jobs" / job_id / "checkpoint.keras"
    assert checkpoint.exists()

    with transaction(ctx.sessions) as session:  # its lease runs out
        repo.get_job_by_id(session, job_id).lease_until = utcnow() - timedelta(seconds=1)
    assert sweep_once(ctx).requeued == [job_id]
    queued = client.get(f"/v1/jobs/{job_id}").json()
    assert (queued["status"], queued["progress"]["epoch"], len(queued["history"])) == (
        "queued",
        2,
        2,
    )

    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["attempts"] == 2
    assert [e["epoch"] for e in job["history"]] == [1, 2, 3, 4, 5, 6]
    assert job["result"]["execution"]["resumed_from_epoch"] == 2
    assert {"resumed_from_epoch": 2} in [
        e["data"] for e in events(client, job_id) if e["type"] == "checkpoint"
    ]
    assert not checkpoint.exists()  # deleted once the job ended


def test_short_jobs_take_no_checkpoint(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job_id = submit(client, tiny_job(epochs=3))["id"]
    runner.run(job_id)
    assert [e for e in events(client, job_id) if e["type"] == "checkpoint"] == []


def test_a_draining_worker_hands_its_job_back_without_counting_an_attempt(
    api: Api, runner: JobRunner, epoch_hook
) -> None:
    from worker import drain

    client, settings = api
    resent: list[str] = []
    runner.resend = lambda job_id, limit: resent.append(job_id)
    job_id = submit(client, tiny_job(epochs=6))["id"]

    def shutdown_after_epoch_2(history):
        if len(history) == 2:
            drain.requested.set()  # what SIGUSR2 from Celery's parent does

    uninstall = epoch_hook(shutdown_after_epoch_2)
    try:
        assert runner.run(job_id) == RunResult.handed_back
    finally:
        drain.requested.clear()
    uninstall()
    assert resent == [job_id]
    queued = client.get(f"/v1/jobs/{job_id}").json()
    assert (queued["status"], queued["attempts"]) == ("queued", 0)
    assert events(client, job_id)[-1]["data"]["reason"] == "its worker is shutting down"
    assert (settings.resolved_artifacts_dir / "jobs" / job_id / "checkpoint.keras").exists()

    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["attempts"] == 1
    # Every claim's event counts attempts as the job does: the handed-back one was not one.
    claims = [e["data"] for e in events(client, job_id) if e["data"].get("status") == "running"]
    assert [claim["attempt"] for claim in claims] == [1, 1]
    assert [e["epoch"] for e in job["history"]] == [1, 2, 3, 4, 5, 6]
    assert job["result"]["execution"]["resumed_from_epoch"] == 2
