"""Jobs through real processes: HTTP → store → broker → Celery worker → Keras → polled
results, on Redis + PostgreSQL and on the embedded defaults."""

from __future__ import annotations

from typing import Any

import pytest

from examples.seed_data import seed_job
from fitq.artifacts import model_key
from service.queue import TaskQueue
from tests import hand_run
from tests.factories import cnn_job, diverging_job, lstm_job, tiny_arrays, tiny_job
from tests.processes import Stack, finished, poll_job, wait_for

JOB_TIMEOUT = 120


def submit(stack: Stack, body: dict[str, Any]) -> str:
    with stack.client() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_seed_example_is_polled_to_succeeded_with_hand_run_numbers(
    stack: Stack, seed: dict[str, Any]
) -> None:
    job_id = submit(stack, seed_job(seed["arrays"], seed=42))
    with stack.client() as client:
        job, seen = poll_job(client, job_id, finished, JOB_TIMEOUT)
        listed = client.get("/v1/jobs", params={"status": "succeeded"}).json()["data"]

    assert job["status"] == "succeeded", job["error"]
    statuses = [view["status"] for view in seen]
    assert statuses.index("running") < statuses.index("succeeded")
    running = [view for view in seen if view["status"] == "running"]
    epochs_seen = sorted({view["progress"]["epoch"] for view in running})
    assert len(epochs_seen) >= 2, "progress should advance while running"
    assert all(len(view["history"]) == view["progress"]["epoch"] for view in running)

    scores = seed["scores"]
    assert job["result"]["test_loss"] == scores["loss"]
    assert job["result"]["test_metrics"]["mae"] == scores["mae"]
    assert len(job["history"]) == 10
    assert {"loss", "mae", "val_loss", "val_mae"} <= set(job["history"][-1])
    assert job["result"]["environment"]["backend"] == "tensorflow"
    assert job["id"] in [j["id"] for j in listed]


def test_readiness_counts_the_live_workers_from_their_heartbeats(stack: Stack) -> None:
    with stack.client() as client:
        ready = client.get("/readyz").json()
    assert ready["status"] == "ok"
    assert ready["workers"] == {"cpu": 1, "datasets": 1, "inference": 1}


def test_nan_loss_ends_failed_non_finite_loss_with_its_history(stack: Stack) -> None:
    job_id = submit(stack, diverging_job(epochs=10))
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "non_finite_loss"
    assert job["history"][-1]["loss"] is None


def test_a_message_delivered_twice_trains_once(stack: Stack) -> None:
    job_id = submit(stack, tiny_job(epochs=2))
    queue = TaskQueue(stack.settings)
    queue.send_train(job_id)
    queue.send_train(job_id)
    queue.close()
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1

    def ignored() -> bool:
        text = "".join(w.log() for w in stack.workers)
        return text.count(f"job {job_id} is not queued: message ignored") >= 2

    wait_for(ignored, 30, 0.1, "the duplicates to be dropped")


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_cnn_and_lstm_jobs_equal_hand_run_keras(stack: Stack, kind: str) -> None:
    body, by_hand = (cnn_job(), hand_run.cnn) if kind == "cnn" else (lstm_job(), hand_run.lstm)
    job_id = submit(stack, body)
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    expected = by_hand()
    assert job["result"]["test_loss"] == expected["scores"]["loss"]
    for name, value in job["result"]["test_metrics"].items():
        assert value == expected["scores"][name], name
    assert [e["loss"] for e in job["history"]] == expected["history"]["loss"]


def test_a_killed_worker_is_replaced_and_the_job_resumes_from_its_checkpoint(stack: Stack) -> None:
    body = tiny_job(epochs=30, train=tiny_arrays(rows=2000))
    job_id = submit(stack, body)
    with stack.client() as client:
        poll_job(client, job_id, lambda j: j["progress"]["epoch"] >= 6, JOB_TIMEOUT)
        stack.workers[-1].kill()  # SIGKILL, mid-training
        stack.start_worker()
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
        events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]

    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert [e["epoch"] for e in job["history"]] == list(range(1, 31))
    # Re-queued by the sweeper: the event says so (a poll may miss the moment it is queued,
    # when an idle worker claims it within milliseconds).
    requeued = [e for e in events if e["type"] == "status" and e["data"]["status"] == "queued"]
    assert len(requeued) == 2 and "stopped responding" in requeued[1]["data"]["reason"]
    resumed = [e["data"]["resumed_from_epoch"] for e in events if "resumed_from_epoch" in e["data"]]
    assert len(resumed) == 1 and resumed[0] >= 1
    assert job["result"]["execution"]["resumed_from_epoch"] == resumed[0]


def test_cancel_stops_queued_and_running_jobs(stack: Stack) -> None:
    running_id = submit(stack, tiny_job(epochs=400, train=tiny_arrays(rows=512)))
    queued_id = submit(stack, tiny_job(epochs=2))  # behind the long job on one worker
    with stack.client() as client:
        poll_job(client, running_id, lambda j: j["progress"]["epoch"] >= 2, JOB_TIMEOUT)
        queued = client.post(f"/v1/jobs/{queued_id}/cancel").json()
        assert queued["status"] == "cancelled"
        assert client.post(f"/v1/jobs/{running_id}/cancel").status_code == 202
        job, _ = poll_job(client, running_id, finished, JOB_TIMEOUT)
        assert job["status"] == "cancelled"
        assert 2 <= len(job["history"]) < 400  # before its last epoch
        events = client.get(f"/v1/jobs/{running_id}/events").json()["data"]
        assert events[-1]["data"] == {"status": "cancelled", "reason": "requested"}
        # The queued job's message still arrives: it finds nothing to claim.
        wait_for(
            lambda: f"job {queued_id} is not queued" in "".join(w.log() for w in stack.workers),
            30,
        )
        assert client.get(f"/v1/jobs/{queued_id}").json()["attempts"] == 0


def test_predict_equals_the_downloaded_model(stack: Stack, tmp_path) -> None:
    import keras
    import numpy as np

    job_id = submit(stack, tiny_job(epochs=2))
    x = tiny_arrays(rows=5, seed=9)["x"]
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
        assert job["status"] == "succeeded", job["error"]
        response = client.post(f"/v1/jobs/{job_id}/predict", json={"x": x.tolist()})
        assert response.status_code == 200, response.text
        again = client.post(f"/v1/jobs/{job_id}/predict", json={"x": x.tolist()})  # cached model
        path = tmp_path / "model.keras"
        path.write_bytes(client.get(f"/v1/jobs/{job_id}/model").content)
        wrong = client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[1.0, 2.0]]})
    expected = keras.models.load_model(path, safe_mode=True).predict(x, verbose=0)
    np.testing.assert_allclose(np.array(response.json()["y"]), expected, rtol=1e-6)
    assert again.json() == response.json()
    assert wrong.status_code == 422
    assert "expected rows of shape [4], received [2]" in wrong.json()["error"]["message"]


def test_a_model_lost_from_the_artifact_store_is_a_404_for_predict(stack: Stack) -> None:
    """The inference worker cannot load what is gone: the API says which model, not a 500."""
    job_id = submit(stack, tiny_job(epochs=1))
    with stack.client() as client:
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
        assert job["status"] == "succeeded", job["error"]
        stack.settings.resolved_artifacts_dir.joinpath(model_key(job_id)).unlink()
        response = client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[0.1] * 4]})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"].startswith(f"the model of job '{job_id}' is missing")


def test_sigterm_drains_a_worker_and_its_job_resumes_elsewhere(stack: Stack) -> None:
    import signal

    job_id = submit(stack, tiny_job(epochs=30, train=tiny_arrays(rows=2000)))
    with stack.client() as client:
        poll_job(client, job_id, lambda j: j["progress"]["epoch"] >= 3, JOB_TIMEOUT)
        draining = stack.workers[-1]
        draining.process.send_signal(signal.SIGTERM)  # the parent only, as a deploy would
        handed_back, _ = poll_job(client, job_id, lambda j: j["status"] == "queued", JOB_TIMEOUT)
        assert draining.process.wait(timeout=60) == 0  # it finished shutting down
        assert handed_back["attempts"] == 0
        stack.start_worker()
        job, _ = poll_job(client, job_id, finished, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert [e["epoch"] for e in job["history"]] == list(range(1, 31))
    assert job["result"]["execution"]["resumed_from_epoch"] >= 3


def test_idempotent_submit_on_the_real_store(stack: Stack) -> None:
    import uuid

    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    body = tiny_job(epochs=1)
    with stack.client() as client:
        first = client.post("/v1/jobs", json=body, headers=key)
        again = client.post("/v1/jobs", json=body, headers=key)
        other = client.post("/v1/jobs", json=tiny_job(epochs=2), headers=key)
        poll_job(client, first.json()["id"], finished, JOB_TIMEOUT)
    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 409)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
