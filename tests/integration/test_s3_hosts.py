"""Two hosts that share no disk: the API on one data dir, the workers on another, artifacts
in S3 (a real S3-protocol server process), jobs and queues on PostgreSQL and Redis. An upload
is parsed, trained on, downloaded and served, each side reading what the other wrote."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import keras
import numpy as np

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.integration.test_datasets import upload
from tests.processes import Stack, finished, poll_job
from tests.s3 import CREDENTIALS, make_bucket, s3_server
from tests.services import postgres_database, redis_db


def test_api_and_workers_on_separate_hosts_share_artifacts_through_s3(tmp_path: Path) -> None:
    with ExitStack() as cleanup:
        endpoint = cleanup.enter_context(s3_server(tmp_path))
        make_bucket(endpoint, "fitq")
        shared = {
            **FAST_RECOVERY,
            **CREDENTIALS,
            "FITQ_DATABASE_URL": cleanup.enter_context(postgres_database()),
            "FITQ_BROKER_URL": cleanup.enter_context(redis_db()),
            "FITQ_ARTIFACTS_URL": "s3://fitq/deployment",
            "FITQ_S3_ENDPOINT_URL": endpoint,
        }
        hosts = {name: tmp_path / name for name in ("api-host", "worker-host")}
        for path in hosts.values():
            path.mkdir()
        api = Stack({**shared, "FITQ_DATA_DIR": str(hosts["api-host"] / "data")}, hosts["api-host"])
        workers = Stack(
            {**shared, "FITQ_DATA_DIR": str(hosts["worker-host"] / "data")}, hosts["worker-host"]
        )
        migrate(api.env)
        cleanup.callback(api.stop)
        cleanup.callback(workers.stop)
        api.start_api()
        workers.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        workers.start_worker()

        rows = [f"{a / 100},{(a % 7) / 7},{a / 50 + (a % 7) / 7}" for a in range(200)]
        with api.client() as client:
            dataset = upload(client, "sums.csv", "\n".join(["a,b,y", *rows]).encode(), target="y")
            assert dataset["status"] == "ready", dataset["error"]
            body = {
                "model": {"layers": [
                    {"type": "Dense", "units": 8, "activation": "relu", "input_shape": [2]},
                    {"type": "Dense", "units": 1},
                ]},
                "compile": {"loss": "mse", "optimizer": "adam", "metrics": ["mae"]},
                "fit": {"epochs": 3, "batch_size": 16},
                "data": {"train": {"dataset_id": dataset["id"]}, "test_split": 0.2},
                "seed": 3,
            }  # fmt: skip
            job_id = client.post("/v1/jobs", json=body).json()["id"]
            job, _ = poll_job(client, job_id, finished, 180)
            assert job["status"] == "succeeded", job["error"]
            downloaded = tmp_path / "model.keras"
            downloaded.write_bytes(client.get(f"/v1/jobs/{job_id}/model").content)
            x = [[0.5, 0.25], [0.1, 0.9]]
            served = client.post(f"/v1/jobs/{job_id}/predict", json={"x": x}).json()["y"]

    model = keras.models.load_model(downloaded, safe_mode=True)
    np.testing.assert_allclose(model.predict(np.array(x), verbose=0), served, rtol=1e-6)
    # Nothing went through a shared directory: each host only has its own cache.
    assert not (hosts["api-host"] / "data" / "artifacts").exists()
    assert not (hosts["worker-host"] / "data" / "artifacts").exists()
    cached = hosts["worker-host"] / "data" / "cache" / "datasets" / dataset["id"]
    assert (cached / "x.npy").is_file()
