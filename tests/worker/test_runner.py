"""A job's life in the worker, driven without Celery: submit over the in-process API, run the
job runner, read the job back."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.artifacts import model_key
from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from tests.factories import diverging_job, tiny_arrays, tiny_job
from worker.lease_renewal import LeaseRenewal
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]


def submit(client: TestClient, body: dict) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_job_runs_to_succeeded_with_results_and_a_loadable_model(
    api: Api, runner: JobRunner, tmp_path
) -> None:
    client, _ = api
    test = tiny_arrays(rows=20, seed=3)
    job_id = submit(client, tiny_job(epochs=3, test=test))

    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1
    assert job["progress"] == {"epoch": 3, "epochs": 3, "eta_seconds": None, "queue_position": None}
    assert [e["epoch"] for e in job["history"]] == [1, 2, 3]
    result = job["result"]
    assert set(result["test_metrics"]) == {"mae", "mse"}
    assert result["model_summary"]["total_params"] == 4 * 8 + 8 + 8 + 1
    assert result["execution"]["data"] == "in_memory"
    assert result["environment"]["backend"] == "tensorflow"
    assert result["model_url"] == f"/v1/jobs/{job_id}/model"

    download = client.get(result["model_url"])
    assert download.status_code == 200
    path = tmp_path / "model.keras"
    path.write_bytes(download.content)
    model = keras.models.load_model(path, safe_mode=True)
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    assert np.isclose(scores["loss"], result["test_loss"], rtol=1e-6)


def test_the_model_is_saved_as_the_users_own_compile_would_save_it(
    api: Api, runner: JobRunner, tmp_path
) -> None:
    """fitq's execution choices (eager for this short job, steps per call) stay out of the
    file: loaded, it predicts in graph mode as the hand-trained model does, bit for bit."""
    client, _ = api
    train, test = tiny_arrays(), tiny_arrays(rows=20, seed=3)
    job_id = submit(client, tiny_job(epochs=3, seed=11, train=train, test=test))
    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["result"]["execution"]["run_eagerly"] is True  # fitq's choice for 12 steps
    path = tmp_path / "model.keras"
    path.write_bytes(client.get(f"/v1/jobs/{job_id}/model").content)
    loaded = keras.models.load_model(path, safe_mode=True)
    keras.utils.set_random_seed(11)
    by_hand = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    by_hand.compile(loss="mse", optimizer="adam", metrics=["mae", "mse"])
    by_hand.fit(train["x"], train["y"], batch_size=16, epochs=3, verbose=0)
    hand_path = tmp_path / "by_hand.keras"
    by_hand.save(hand_path)
    execution = ("run_eagerly", "steps_per_execution", "jit_compile")
    ours = keras.models.load_model(path, safe_mode=True).get_compile_config()
    theirs = keras.models.load_model(hand_path, safe_mode=True).get_compile_config()
    assert [ours[k] for k in execution] == [theirs[k] for k in execution] == [False, 1, False]
    np.testing.assert_array_equal(
        loaded.predict(test["x"], verbose=0), by_hand.predict(test["x"], verbose=0)
    )


def test_a_second_delivery_is_ignored(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job_id = submit(client, tiny_job(epochs=1))
    assert runner.run(job_id) == RunResult.succeeded
    assert runner.run(job_id) == RunResult.duplicate
    assert client.get(f"/v1/jobs/{job_id}").json()["attempts"] == 1


def test_nan_loss_fails_non_finite_loss_with_history(api: Api, runner: JobRunner) -> None:
    client, _ = api
    job_id = submit(client, diverging_job(epochs=10))
    assert runner.run(job_id) == RunResult.failed
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"]["type"] == "non_finite_loss"
    assert "NaN or infinite" in job["error"]["message"]
    assert job["history"] and job["history"][-1]["loss"] is None
    assert job["result"] is None


def test_missing_data_fails_data_error(api: Api, runner: JobRunner) -> None:
    client, settings = api
    job_id = submit(client, tiny_job(epochs=1))
    dataset_id = client.get(f"/v1/jobs/{job_id}").json()["spec"]["data"]["train"]["dataset_id"]
    (settings.resolved_artifacts_dir / "datasets" / dataset_id / "x.npy").unlink()
    assert runner.run(job_id) == RunResult.failed
    error = client.get(f"/v1/jobs/{job_id}").json()["error"]
    assert error["type"] == "data_error"
    assert dataset_id in error["message"]


def test_a_worker_that_lost_its_lease_writes_nothing(
    api: Api, runner: JobRunner, epoch_hook
) -> None:
    client, _ = api
    job_id = submit(client, tiny_job(epochs=3))

    def taken_over(history):
        # The sweeper re-queued the job and another worker claimed attempt 2.
        with transaction(runner.sessions) as session:
            job = repo.get_job_by_id(session, job_id)
            assert job is not None
            job.attempt += 1

    epoch_hook(taken_over, before_report=True)
    assert runner.run(job_id) == RunResult.lost
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempts"]) == ("running", 2)
    assert job["history"] == []  # nothing written by the stale attempt


def test_lease_renewal_renews_and_notices_a_lost_lease() -> None:
    beats: list[float] = []

    def beat() -> bool:
        beats.append(time.monotonic())
        return len(beats) < 3

    with LeaseRenewal(beat, interval=0.01) as renewal:
        assert renewal.lost.wait(timeout=5)
    assert len(beats) == 3


def test_a_full_disk_fails_the_job_clearly_and_leaves_no_file(
    api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    client, settings = api
    job_id = submit(client, tiny_job(epochs=1))

    def full(key, source):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner.artifacts, "put_file", full)
    assert runner.run(job_id) == RunResult.failed
    error = client.get(f"/v1/jobs/{job_id}").json()["error"]
    assert error["type"] == "training_error"
    assert "ran out of disk space" in error["message"]
    assert not (settings.resolved_artifacts_dir / "jobs" / job_id / "model.keras").exists()


def test_a_worker_failure_around_training_fails_the_job_with_its_cause(
    api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker image once lacked prometheus_client: every job's metrics call raised after
    its claim, and the job waited out its lease into worker_lost. Now it fails at once."""
    import worker.runner

    def missing_module() -> None:
        raise ModuleNotFoundError("No module named 'prometheus_client'")

    monkeypatch.setattr(worker.runner, "job_metrics", missing_module)
    client, _ = api
    job_id = submit(client, tiny_job(epochs=1))
    assert runner.run(job_id) == RunResult.failed
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"] == {
        "type": "worker_error",
        "message": "the worker failed: ModuleNotFoundError: No module named 'prometheus_client'",
    }


def test_a_job_whose_runner_cannot_be_built_fails_with_the_cause(
    api: Api, runner: JobRunner
) -> None:
    from worker.worker_error import fail_unstarted

    client, _ = api
    job_id = submit(client, tiny_job(epochs=1))
    lease = runner._lease
    broken = ImportError("libcudart.so.12: cannot open shared object file")
    assert fail_unstarted(runner.sessions, job_id, "host:1", lease, broken)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error"]["type"]) == ("failed", "worker_error")
    assert "ImportError: libcudart.so.12" in job["error"]["message"]
    # A second delivery of the same message finds nothing queued and leaves the job alone.
    assert not fail_unstarted(runner.sessions, job_id, "host:2", lease, broken)
    assert client.get(f"/v1/jobs/{job_id}").json()["error"]["type"] == "worker_error"


def test_a_model_lost_from_the_artifact_store_is_a_clear_404(api: Api, runner: JobRunner) -> None:
    """A volume not kept across `down` / `up` lost the file: the API says so, never a 500."""
    client, _ = api
    job_id = submit(client, tiny_job(epochs=1))
    assert runner.run(job_id) == RunResult.succeeded
    runner.artifacts.delete(model_key(job_id))
    response = client.get(f"/v1/jobs/{job_id}/model")
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found"
    assert error["message"].startswith(f"the model of job '{job_id}' is missing")
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
