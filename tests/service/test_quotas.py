"""Per-tenant quotas and per-job limits: each refusal names the limit and the value received."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store.migrate import upgrade
from service.main import create_app
from tests.factories import tiny_job


@pytest.fixture
def limited(embedded_settings: Settings) -> Iterator[TestClient]:
    settings = embedded_settings.model_copy(
        update={
            "max_active_jobs": 2,
            "max_dataset_bytes": 5_000,
            "max_sample_epochs": 1_000,
            "max_batch_size": 16,
            "max_sequence_length": 12,
        }
    )
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        yield client


def test_active_jobs_beyond_the_quota_are_429_with_retry_after(limited: TestClient) -> None:
    first = limited.post("/v1/jobs", json=tiny_job(epochs=2)).json()["id"]
    limited.post("/v1/jobs", json=tiny_job(epochs=2))
    refused = limited.post("/v1/jobs", json=tiny_job(epochs=2))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    error = refused.json()["error"]
    assert error["type"] == "quota_exceeded"
    assert "at most 2 queued or running jobs (FITQ_MAX_ACTIVE_JOBS)" in error["message"]
    limited.post(f"/v1/jobs/{first}/cancel")
    assert limited.post("/v1/jobs", json=tiny_job(epochs=2)).status_code == 202


def test_usage_reports_what_is_used_of_each_quota(limited: TestClient) -> None:
    limited.post("/v1/jobs", json=tiny_job(epochs=2))
    usage = limited.get("/v1/usage").json()
    assert usage["tenant"] == "default"
    assert usage["active_jobs"] == {"used": 1, "limit": 2}
    assert usage["dataset_bytes"]["limit"] == 5_000
    assert 0 < usage["dataset_bytes"]["used"] <= 5_000
    assert usage["sample_epochs_per_job"] == 1_000
    assert usage["batch_size_per_job"] == 16
    assert usage["sequence_length_per_job"] == 12


def test_stored_bytes_beyond_the_quota_are_refused(limited: TestClient) -> None:
    big = b"a,y\n" + b"1.5,2.5\n" * 1_000  # 8 kB
    refused = limited.post("/v1/datasets", files={"file": ("d.csv", big)}, data={"target": "y"})
    assert refused.status_code == 403
    assert "FITQ_MAX_DATASET_BYTES" in refused.json()["error"]["message"]
    assert limited.get("/v1/datasets").json()["data"] == []


def test_rows_times_epochs_beyond_the_limit_are_422(limited: TestClient) -> None:
    refused = limited.post("/v1/jobs", json=tiny_job(epochs=20))  # 64 rows x 20 epochs
    assert refused.status_code == 422
    detail = refused.json()["error"]["details"][0]
    assert detail["loc"] == "fit.epochs"
    assert (
        "at most 1,000 training rows x epochs (FITQ_MAX_SAMPLE_EPOCHS), received 1,280"
        in detail["message"]
    )


def test_batch_size_beyond_the_limit_is_422(limited: TestClient) -> None:
    body = tiny_job()
    body["fit"]["batch_size"] = 17
    detail = limited.post("/v1/validate", json=body).json()["error"]["details"][0]
    assert detail["loc"] == "fit.batch_size"
    assert "at most 16 (FITQ_MAX_BATCH_SIZE), received 17" in detail["message"]
    body["fit"]["batch_size"] = 16
    assert limited.post("/v1/validate", json=body).status_code == 200


def sequence_job(steps: int, first_layer: dict) -> dict:
    """Sequences of ``steps`` integer tokens (or 1-feature steps) into a recurrent model."""
    tokens = [[float((row + step) % 5) for step in range(steps)] for row in range(32)]
    layers = [first_layer, {"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]
    body = tiny_job()
    body["model"]["layers"] = layers
    body["data"]["train"] = {"x": tokens, "y": [float(r % 2) for r in range(32)]}
    return body


@pytest.mark.parametrize(
    ("first_layer", "index", "into"),
    [
        (
            {"type": "Embedding", "input_dim": 5, "output_dim": 3, "input_shape": [13]},
            0,
            "Embedding",
        ),
        ({"type": "Reshape", "target_shape": [13, 1], "input_shape": [13]}, 1, "GRU"),
    ],
    ids=["embedding", "recurrent"],
)
def test_sequences_beyond_the_limit_are_422_at_the_layer(
    limited: TestClient, first_layer: dict, index: int, into: str
) -> None:
    refused = limited.post("/v1/validate", json=sequence_job(13, first_layer))
    detail = refused.json()["error"]["details"][0]
    assert refused.status_code == 422
    assert detail["loc"] == f"model.layers.{index}"
    assert (
        f"at most 12 steps (FITQ_MAX_SEQUENCE_LENGTH), received 13 steps into {into}"
        in detail["message"]
    )
    first_layer["input_shape"] = [12]
    if "target_shape" in first_layer:
        first_layer["target_shape"] = [12, 1]
    assert limited.post("/v1/validate", json=sequence_job(12, first_layer)).status_code == 200
