"""The SDK and the ``fitq`` client commands against a real API and real workers (embedded
defaults): upload arrays, a DataFrame and a CSV, train, watch, page, read events, download,
predict, cancel, and typed errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from fitq import Client
from fitq.client import Conflict, NotFound, ValidationError
from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.factories import tiny_arrays, tiny_job
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import REPO_ROOT, Stack, child_env


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    workdir = tmp_path_factory.mktemp("sdk")
    env = {"FITQ_DATA_DIR": str(workdir / "fitq"), **FAST_RECOVERY}
    migrate(env)
    stack = Stack(env, workdir)
    try:
        stack.start_api()
        stack.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        stack.start_worker()
        with Client(stack.base_url) as sdk:
            yield sdk
    finally:
        stack.stop()


def regression(dataset_id: str, epochs: int = 3, features: int = 4) -> dict:
    body = tiny_job(epochs=epochs, features=features)
    body["data"] = {"train": {"dataset_id": dataset_id}, "test_split": 0.25}
    return body


def test_arrays_to_trained_model_to_predictions(client: Client, tmp_path: Path) -> None:
    arrays = tiny_arrays(rows=64)
    dataset = client.datasets.wait(client.datasets.upload((arrays["x"], arrays["y"])).id, 60)
    assert (dataset.status, dataset.rows) == ("ready", 64)

    seen: list[int] = []
    job = client.jobs.create(regression(dataset.id))
    job = client.jobs.wait(
        job.id, timeout=120, poll=0.05, on_update=lambda j: seen.append(j.progress.epoch)
    )
    assert job.status == "succeeded", job.error
    assert seen == sorted(seen) and seen[-1] == 3
    assert job.result is not None and set(job.result.test_metrics) == {"mae", "mse"}

    events = list(client.jobs.events(job.id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.data["epoch"] for e in events if e.type == "epoch"] == [1, 2, 3]

    path = client.jobs.download_model(job.id, tmp_path / "model.keras")
    model = keras.models.load_model(path, safe_mode=True)
    x = arrays["x"][:5]
    served = client.jobs.predict(job.id, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), served.y, rtol=1e-6)


def test_dataframes_lists_cancel_and_typed_errors(client: Client) -> None:
    frame = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    frame["target"] = frame["a"] * 2 - frame["b"]
    dataset = client.datasets.wait(client.datasets.upload(frame, target="target").id, 60)
    assert dataset.status == "ready" and dataset.feature_names == ["a", "b"]

    body = tiny_job(epochs=500, features=2)
    body["data"] = {"train": {"dataset_id": dataset.id}}
    long = client.jobs.create(body)
    cancelled = client.jobs.cancel(long.id)
    assert cancelled.cancel_requested
    assert client.jobs.wait(long.id, timeout=60, poll=0.05).status == "cancelled"
    assert client.jobs.cancel(long.id).status == "cancelled"  # repeating is harmless
    quick = client.jobs.wait(client.jobs.create(regression(dataset.id, 1, features=2)).id, 60)
    with pytest.raises(Conflict):  # a job that already succeeded
        client.jobs.cancel(quick.id)

    listed = [job.id for job in client.jobs.list(page_size=1)]
    assert long.id in listed and len(listed) == len(set(listed)) >= 2
    assert dataset.id in [d.id for d in client.datasets.list(page_size=1)]

    with pytest.raises(NotFound):
        client.jobs.get("job_01AAAAAAAAAAAAAAAAAAAAAAAA")
    bad = tiny_job()
    bad["fit"]["epochs"] = 0
    with pytest.raises(ValidationError) as invalid:
        client.jobs.create(bad)
    assert invalid.value.details[0]["loc"] == "fit.epochs"


def fitq_command(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env({"FITQ_URL": str(client.http.base_url)})
    command = [sys.executable, "-m", "fitq", *args]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)


def test_the_cli_submits_with_data_and_waits_with_progress(client: Client, tmp_path: Path) -> None:
    rows = ["a,b,y", *(f"{i / 40},{(i % 5) / 5},{i / 20}" for i in range(40))]
    (tmp_path / "train.csv").write_text("\n".join(rows))
    spec = tiny_job(epochs=3, features=2)
    spec["data"] = {"test_split": 0.25}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = fitq_command(
        client, "submit", str(tmp_path / "spec.json"), "--data", str(tmp_path / "train.csv"),
        "--target", "y", "--wait",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "epoch 3/3" in done.stderr  # the progress bar's last state
    assert "test loss" in done.stdout and "test mae" in done.stdout
    job_id = done.stderr.split()[1]

    listed = json.loads(fitq_command(client, "jobs", "--json").stdout)
    assert job_id in [job["id"] for job in listed]
    logs = fitq_command(client, "logs", job_id).stdout.splitlines()
    assert sum(" epoch " in line for line in logs) == 3 and "status=succeeded" in logs[-1]
    target = tmp_path / "downloaded.keras"
    assert fitq_command(client, "model", job_id, "-o", str(target)).returncode == 0
    assert keras.models.load_model(target, safe_mode=True).count_params() > 0
    datasets = fitq_command(client, "datasets", "list", "--json").stdout
    assert "train.csv" in datasets

    missing = fitq_command(client, "show", "job_01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.returncode == 1 and "404 not_found" in missing.stderr

    # Piped (as here), the list is plain tab-separated lines with every id whole.
    plain = fitq_command(client, "jobs").stdout.splitlines()
    assert plain[0].split("\t") == ["id", "status", "epoch", "created", "test loss"]
    assert job_id in [line.split("\t")[0] for line in plain[1:]]

    # What cannot be done here is one line and exit code 2, never a traceback.
    unwritable = fitq_command(client, "model", job_id, "-o", str(tmp_path / "missing" / "m.keras"))
    assert unwritable.returncode == 2, unwritable.stderr
    assert "No such file or directory" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr
    not_a_spec = fitq_command(client, "submit", str(tmp_path / "train.csv"))
    assert not_a_spec.returncode == 2 and "Traceback" not in not_a_spec.stderr
    assert "is not a JSON job body (the data goes in --data)" in not_a_spec.stderr
