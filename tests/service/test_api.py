"""The HTTP API in-process: the error envelope, submit-time checks, ids, listing."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from tests.factories import cnn_job, tiny_job

Api = tuple[TestClient, Settings]


def assert_envelope(response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_submit_returns_202_queued_with_location_and_no_arrays(api: Api) -> None:
    client, _ = api
    response = client.post("/v1/jobs", json=tiny_job())
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["progress"] == {"epoch": 0, "epochs": 2, "eta_seconds": None, "queue_position": 1}
    train = job["spec"]["data"]["train"]
    assert train["dataset_id"].startswith("ds_")
    assert (train["rows"], train["x_shape"], train["y_shape"]) == (64, [64, 4], [64])
    assert "x" not in train
    assert job["spec"]["seed"] == 7
    assert client.get(f"/v1/jobs/{job['id']}").json() == job


def test_seed_is_picked_and_recorded_when_absent(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    del body["seed"]
    job = client.post("/v1/jobs", json=body).json()
    assert isinstance(job["spec"]["seed"], int)


def test_validation_errors_use_the_envelope_with_clean_locations(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    body["model"]["layers"][0]["units"] = 0
    body["compile"]["optimizer"] = {"type": "adam", "learning_rate": -1}
    error = assert_envelope(client.post("/v1/jobs", json=body), 422, "validation_error")
    locs = [d["loc"] for d in error["details"]]
    assert locs == ["model.layers.0.units", "compile.optimizer.learning_rate"]
    assert error["details"][0]["received"] == 0
    assert error["message"].startswith("model.layers.0.units: ")
    assert "(and 1 more)" in error["message"]


def test_large_inputs_are_not_echoed_back(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    body["data"]["train"]["x"][5] = [1.0]  # ragged
    error = assert_envelope(client.post("/v1/jobs", json=body), 422, "validation_error")
    assert error["details"][0]["loc"] == "data.train.x"
    assert error["details"][0]["received"] == "an array of length 64"


def test_nan_literal_in_json_is_refused(api: Api) -> None:
    client, _ = api
    raw = json.dumps(tiny_job()).replace('"learning_rate"', '"x"')
    raw = raw.replace('"optimizer": "adam"', '"optimizer": {"type": "adam", "learning_rate": NaN}')
    response = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    error = assert_envelope(response, 422, "validation_error")
    assert error["details"][0]["loc"] == "compile.optimizer.learning_rate"
    assert error["details"][0]["received"] == "NaN"


def test_malformed_json_is_a_422_envelope(api: Api) -> None:
    client, _ = api
    response = client.post("/v1/jobs", content=b"{", headers={"content-type": "application/json"})
    assert_envelope(response, 422, "validation_error")


def test_shape_mismatch_is_refused_before_queueing(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    body["model"]["layers"][0]["input_shape"] = [5]
    error = assert_envelope(client.post("/v1/jobs", json=body), 422, "validation_error")
    assert error["details"][0]["loc"] == "data.train.x"
    assert "expected rows of shape [5]" in error["message"]
    assert client.get("/v1/jobs").json()["data"] == []


def test_dataset_references_must_exist_and_can_be_reused(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    body["data"]["test"] = {"dataset_id": "ds_01ARZ3NDEKTSV4RRFFQ69G5FAV"}
    error = assert_envelope(client.post("/v1/jobs", json=body), 422, "validation_error")
    assert error["details"][0]["loc"] == "data.test.dataset_id"

    first = client.post("/v1/jobs", json=tiny_job()).json()
    reused = tiny_job()
    reused["data"]["train"] = {"dataset_id": first["spec"]["data"]["train"]["dataset_id"]}
    second = client.post("/v1/jobs", json=reused)
    assert second.status_code == 202
    assert second.json()["spec"]["data"]["train"] == first["spec"]["data"]["train"]


@pytest.mark.parametrize("job_id", ["job_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "job_../../x"])
def test_unknown_or_malformed_ids_are_404(api: Api, job_id: str) -> None:
    client, _ = api
    assert_envelope(client.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    assert_envelope(client.get(f"/v1/jobs/{job_id}/model"), 404, "not_found")


def test_the_files_of_an_unfinished_job_are_a_409_not_a_404(api: Api) -> None:
    """A queued job exists; its model (and its TensorBoard logs) come when it ends."""
    client, _ = api
    body = tiny_job(epochs=1)
    body["fit"]["callbacks"] = [{"type": "TensorBoard"}]
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    model = client.get(f"/v1/jobs/{job_id}/model")
    assert_envelope(model, 409, "conflict")
    assert "is queued; its model is kept once it succeeds" in model.json()["error"]["message"]
    assert_envelope(client.get(f"/v1/jobs/{job_id}/tensorboard"), 409, "conflict")


def test_list_pages_newest_first_with_a_cursor(api: Api) -> None:
    client, _ = api
    ids = [client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"] for _ in range(5)]
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = client.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            assert page["next_after"] is None
            break
        after = page["next_after"]
    assert seen == ids[::-1]
    assert len(client.get("/v1/jobs", params={"status": "queued"}).json()["data"]) == 5
    assert client.get("/v1/jobs", params={"status": "running"}).json()["data"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"status": "done"}, {"after": "garbage!"}]
)
def test_bad_list_parameters_are_422(api: Api, params: dict) -> None:
    client, _ = api
    assert_envelope(client.get("/v1/jobs", params=params), 422, "validation_error")


def test_validate_answers_the_summary_and_work_without_queueing(api: Api) -> None:
    client, _ = api
    response = client.post("/v1/validate", json=cnn_job(epochs=3))
    assert response.status_code == 200, response.text
    report = response.json()
    summary = report["model_summary"]
    assert [
        (layer["type"], layer["output_shape"], layer["params"]) for layer in summary["layers"]
    ] == [
        ("Conv2D", [None, 6, 6, 4], 3 * 3 * 1 * 4 + 4),
        ("MaxPooling2D", [None, 3, 3, 4], 0),
        ("Flatten", [None, 36], 0),
        ("Dense", [None, 3], 36 * 3 + 3),
    ]
    assert summary["total_params"] == summary["trainable_params"] == 151
    assert report["estimated_work"] == {"train_rows": 96, "epochs": 3, "samples_x_epochs": 288}
    assert client.get("/v1/jobs").json()["data"] == []


def test_health(api: Api) -> None:
    client, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "workers": {}}
