"""A job handed back by a draining worker, or killed, then resumed, ends with the numbers of
the same job run undisturbed, bit for bit (CPU, in-memory data). The worker is asked to
drain at each boundary (a batch mid-epoch, the epoch's last batch, between epochs, during
validation, during evaluate) under several pacings. The model has Dropout, so the random
state must come back too, not only weights and optimizer.

Before: a drain stopped at the next batch and saved mid-epoch weights under the last recorded
epoch, so the resumed job re-trained part of an epoch (and, after an epoch's last batch, a
whole extra one): a different test loss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import worker.training
from fitq.settings import Settings
from tests.factories import tiny_arrays
from worker import drain
from worker.pacing import Pacing
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]
EPOCHS = 4
DRAIN_EPOCH = 1  # 0-based: the second epoch


def dropout_job(seed: int = 11) -> dict[str, Any]:
    train, validation, test = (tiny_arrays(rows=r, seed=s) for r, s in ((96, 1), (32, 2), (24, 3)))

    def split(arrays: dict[str, Any]) -> dict[str, Any]:
        return {"x": arrays["x"].tolist(), "y": arrays["y"].tolist()}

    return {
        "model": {
            "layers": [
                {"type": "Dense", "units": 8, "input_shape": [4], "activation": "relu"},
                {"type": "Dropout", "rate": 0.3},
                {"type": "Dense", "units": 1},
            ]
        },
        "compile": {"loss": "mse", "optimizer": "adam", "metrics": ["mae"]},
        "fit": {"batch_size": 16, "epochs": EPOCHS},
        "data": {"train": split(train), "validation": split(validation), "test": split(test)},
        "seed": seed,
    }


class _DrainAt(worker.training._StopAtBatch):
    """The batch check, which also asks the worker to drain at one chosen boundary."""

    boundary = ""

    def on_train_begin(self, logs: Any = None) -> None:
        self.epoch, self.fitting = 0, True

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_end(self, logs: Any = None) -> None:
        self.fitting = False

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.epoch == DRAIN_EPOCH and self.fitting:
            last = batch == self.params["steps"] - 1
            if (self.boundary, last) in (("mid-epoch", False), ("last batch", True)):
                drain.requested.set()
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.boundary == "between epochs" and epoch == DRAIN_EPOCH:
            drain.requested.set()

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        during = "during validation" if self.fitting else "during evaluate"
        if self.boundary == during and (not self.fitting or self.epoch == DRAIN_EPOCH):
            drain.requested.set()
        super().on_test_batch_end(batch, logs)


@pytest.fixture(params=["eager", "1 step a call", "3 steps a call"])
def pacing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    chosen = {
        "eager": Pacing(run_eagerly=True, steps_per_execution=1, reason="test"),
        "1 step a call": Pacing(run_eagerly=False, steps_per_execution=1, reason="test"),
        "3 steps a call": Pacing(run_eagerly=False, steps_per_execution=3, reason="test"),
    }[request.param]
    monkeypatch.setattr(worker.training, "plan_pacing", lambda *args, **kwargs: chosen)
    yield request.param


def outcome(client: TestClient, job_id: str) -> dict[str, Any]:
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    return {
        "history": job["history"],
        "test": job["result"]["test_metrics"],
        "loss": job["result"]["test_loss"],
    }


@pytest.mark.parametrize(
    "boundary",
    ["mid-epoch", "last batch", "between epochs", "during validation", "during evaluate"],
)
def test_a_drained_job_resumes_to_the_undisturbed_numbers(
    boundary: str, pacing: str, api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = api
    resent: list[str] = []
    runner.resend = lambda job_id, limit: resent.append(job_id)
    undisturbed = client.post("/v1/jobs", json=dropout_job()).json()["id"]
    assert runner.run(undisturbed) == RunResult.succeeded
    expected = outcome(client, undisturbed)

    monkeypatch.setattr(_DrainAt, "boundary", boundary)
    monkeypatch.setattr(worker.training, "_StopAtBatch", _DrainAt)
    job_id = client.post("/v1/jobs", json=dropout_job()).json()["id"]
    try:
        first = runner.run(job_id)
    finally:
        drain.requested.clear()
    if boundary == "during evaluate":  # training is over: the job finishes where it is
        assert first == RunResult.succeeded
    else:
        assert first == RunResult.handed_back and resent == [job_id]
        handed_back = client.get(f"/v1/jobs/{job_id}").json()
        assert handed_back["progress"]["epoch"] == DRAIN_EPOCH + 1  # the epoch it was in
        assert runner.run(job_id) == RunResult.succeeded
        resumed = client.get(f"/v1/jobs/{job_id}").json()["result"]["execution"]
        assert resumed["resumed_from_epoch"] == DRAIN_EPOCH + 1
    assert outcome(client, job_id) == expected


def _model_weights(client: TestClient, job_id: str, tmp_path: Path) -> list[Any]:
    import keras

    path = tmp_path / f"{job_id}.keras"
    path.write_bytes(client.get(f"/v1/jobs/{job_id}/model").content)
    return list(keras.models.load_model(path, safe_mode=True).get_weights())


class _WorkerDied(BaseException):
    """Not an Exception: nothing in the worker catches it, as nothing survives a SIGKILL."""


def test_a_job_killed_mid_run_resumes_from_its_checkpoint_to_the_same_numbers(
    api: Api, runner: JobRunner, epoch_hook
) -> None:
    from datetime import timedelta

    from fitq.store import repository as repo
    from fitq.store.db import transaction
    from fitq.store.types import utcnow
    from service.sweeper import sweep_once

    client, _ = api
    runner.settings = runner.settings.model_copy(update={"checkpoint_seconds": 1e-6})
    undisturbed = client.post("/v1/jobs", json=dropout_job()).json()["id"]
    assert runner.run(undisturbed) == RunResult.succeeded
    job_id = client.post("/v1/jobs", json=dropout_job()).json()["id"]

    def dies_in_epoch_3(history: list[Any]) -> None:
        if len(history) == 3:  # recorded, but its checkpoint not taken: back to epoch 2's
            raise _WorkerDied

    uninstall = epoch_hook(dies_in_epoch_3)
    with pytest.raises(_WorkerDied):
        runner.run(job_id)
    uninstall()
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with transaction(ctx.sessions) as session:  # its lease runs out
        repo.get_job_by_id(session, job_id).lease_until = utcnow() - timedelta(seconds=1)
    assert sweep_once(ctx).requeued == [job_id]
    assert runner.run(job_id) == RunResult.succeeded
    assert client.get(f"/v1/jobs/{job_id}").json()["result"]["execution"]["resumed_from_epoch"] == 2
    assert outcome(client, job_id) == outcome(client, undisturbed)


def test_a_drained_job_on_streamed_data_resumes_to_the_undisturbed_numbers(
    api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches read from disk are shuffled by fitq's own seeded generator: a resumed run
    takes the order of the epoch it resumes at, not the first epoch's."""
    client, _ = api
    runner.settings = runner.settings.model_copy(update={"in_memory_bytes": 1})  # stream
    runner.resend = lambda job_id, limit: None
    undisturbed = client.post("/v1/jobs", json=dropout_job()).json()["id"]
    assert runner.run(undisturbed) == RunResult.succeeded
    assert client.get(f"/v1/jobs/{undisturbed}").json()["result"]["execution"]["data"] == "streamed"

    monkeypatch.setattr(_DrainAt, "boundary", "between epochs")
    monkeypatch.setattr(worker.training, "_StopAtBatch", _DrainAt)
    job_id = client.post("/v1/jobs", json=dropout_job()).json()["id"]
    try:
        assert runner.run(job_id) == RunResult.handed_back
    finally:
        drain.requested.clear()
    assert runner.run(job_id) == RunResult.succeeded
    assert outcome(client, job_id) == outcome(client, undisturbed)


def test_the_checkpoint_cadence_bounds_lost_work_and_its_cost() -> None:
    from worker.checkpoints import checkpoint_due

    def due(trained: float, since_last: float, saving: float = 0.0, save: float = 0.03) -> bool:
        return checkpoint_due(
            trained=trained,
            since_last=since_last,
            saving=saving,
            next_save=save,
            longest_interval=300,
        )

    assert not due(trained=0.9, since_last=0.9)  # a 1 s job: a save would cost over 3 %
    assert due(trained=100, since_last=100)  # an epoch of 100 s: save after each one
    assert not due(trained=1000, since_last=40)  # under 5 % of the time would be lost
    assert due(trained=1000, since_last=60)
    assert not due(trained=1000, since_last=60, saving=29.99)  # the cost budget is spent
    assert due(trained=10**6, since_last=300, saving=10**6)  # never more than 300 s apart


@pytest.mark.parametrize(
    ("fit", "optimizer"),
    [
        # Reduces at epoch 3 undisturbed (two epochs without a 10.0 improvement), so a resumed
        # run that forgot its counter after epoch 2 would train epoch 4 at the old rate.
        (
            {"callbacks": [{"type": "ReduceLROnPlateau", "patience": 2, "min_delta": 10.0}]},
            {"type": "adam", "learning_rate": 0.01},
        ),
        (
            {},
            {
                "type": "sgd",
                "learning_rate": {
                    "class_name": "ExponentialDecay",
                    "config": {"initial_learning_rate": 0.05, "decay_steps": 5, "decay_rate": 0.5},
                },
            },
        ),
        # mode "max": the worst val_loss, the first epoch's, is the one kept, so the resumed
        # run must carry the file saved before the drain and the best value it beats.
        (
            {"callbacks": [{"type": "ModelCheckpoint", "save_best_only": True, "mode": "max"}]},
            {"type": "adam", "learning_rate": 0.01},
        ),
    ],
    ids=["ReduceLROnPlateau", "ExponentialDecay", "ModelCheckpoint"],
)
def test_callbacks_and_schedules_resume_to_the_undisturbed_numbers(
    fit: dict[str, Any],
    optimizer: dict[str, Any],
    api: Api,
    runner: JobRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    client, _ = api
    runner.resend = lambda job_id, limit: None
    body = dropout_job()
    body["fit"].update(fit)
    body["compile"]["optimizer"] = optimizer
    undisturbed = client.post("/v1/jobs", json=body).json()["id"]
    assert runner.run(undisturbed) == RunResult.succeeded
    expected = outcome(client, undisturbed)

    monkeypatch.setattr(_DrainAt, "boundary", "between epochs")
    monkeypatch.setattr(worker.training, "_StopAtBatch", _DrainAt)
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    try:
        assert runner.run(job_id) == RunResult.handed_back
    finally:
        drain.requested.clear()
    assert runner.run(job_id) == RunResult.succeeded
    assert outcome(client, job_id) == expected
    if "ModelCheckpoint" in str(fit):
        results = [client.get(f"/v1/jobs/{j}").json()["result"] for j in (undisturbed, job_id)]
        assert results[0]["model_checkpoint"] == results[1]["model_checkpoint"]
        assert results[0]["model_checkpoint"]["saved_epoch"] == 1
        models = [_model_weights(client, j, tmp_path) for j in (undisturbed, job_id)]
        assert all((a == b).all() for a, b in zip(*models, strict=True))
    elif fit:  # the rate fell once, at epoch 3's end (each epoch logs the rate it trained at)
        rates = [epoch["learning_rate"] for epoch in expected["history"]]
        assert rates[:3] == pytest.approx([0.01] * 3) and rates[3] == pytest.approx(0.001)
