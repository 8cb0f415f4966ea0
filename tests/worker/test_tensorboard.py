"""The TensorBoard callback: its logs are kept with the job as a .tar.gz that TensorBoard's
own reader takes, and asking for them changes no number."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import tensorflow as tf
from fastapi.testclient import TestClient

from fitq.settings import Settings
from tests.factories import tiny_arrays, tiny_job
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]


def _run(client: TestClient, runner: JobRunner, callbacks: list[dict]) -> dict:
    body = tiny_job(epochs=3, seed=3, test=tiny_arrays(rows=20, seed=2))
    body["fit"].update(validation_split=0.25, callbacks=callbacks)
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    assert runner.run(job_id) == RunResult.succeeded
    return client.get(f"/v1/jobs/{job_id}").json()


def _summaries(directory: Path) -> list[tuple[str, float | None]]:
    """(tag, scalar or None) of every summary in a directory's event files, as TensorBoard
    reads them (TensorFlow's event file reader)."""
    found = []
    for events in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                numeric = tensor is not None and tensor.ndim == 0 and tensor.dtype.kind == "f"
                scalar = float(tensor) if numeric else None
                found.append((value.tag, scalar))
    return found


def test_the_logs_are_kept_and_read_by_tensorboard(api: Api, runner: JobRunner, tmp_path) -> None:
    client, _ = api
    plain = _run(client, runner, [])
    logged = _run(client, runner, [{"type": "TensorBoard", "histogram_freq": 1}])
    assert logged["history"] == plain["history"]  # the callback changes no number
    assert logged["result"]["test_loss"] == plain["result"]["test_loss"]
    assert plain["result"]["tensorboard_url"] is None
    assert client.get(f"/v1/jobs/{plain['id']}/tensorboard").status_code == 404

    url = logged["result"]["tensorboard_url"]
    assert url == f"/v1/jobs/{logged['id']}/tensorboard"
    answer = client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    train = _summaries(next(Path(tmp_path).glob("*/train")))
    losses = [value for tag, value in train if tag == "epoch_loss"]
    assert losses == [e["loss"] for e in logged["history"]]
    validation = _summaries(next(Path(tmp_path).glob("*/validation")))
    assert len([tag for tag, _ in validation if tag == "epoch_loss"]) == 3
    assert any("kernel" in tag for tag, _ in train)  # histogram_freq=1

    from fitq.client import Client  # the SDK streams the same file

    sdk = Client(
        "http://testserver", transport=httpx.MockTransport(lambda r: client.get(r.url.path))
    )
    saved = sdk.jobs.download_tensorboard(logged["id"], tmp_path / "logs.tar.gz")
    assert saved.read_bytes() == answer.content

    client.delete(f"/v1/jobs/{logged['id']}")
    assert client.get(url).status_code == 404
