"""Hostile input: nothing a user sends becomes code or a file path, and every trick is a 4xx
(or a failed dataset) with a message that says what was expected."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.store.migrate import upgrade
from service.main import create_app
from tests.factories import tiny_arrays, tiny_job
from worker.ingest import DatasetIngestor

Api = tuple[TestClient, Settings]


def post_raw(client: TestClient, text: str, path: str = "/v1/jobs"):
    return client.post(path, content=text, headers={"content-type": "application/json"})


KERAS_CONFIG = {
    "class_name": "Sequential",
    "config": {"layers": [{"class_name": "Lambda", "config": {"function": "os.system"}}]},
}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda b: b.update(model=KERAS_CONFIG), "model.layers"),
        (lambda b: b["model"]["layers"].append({"type": "Lambda", "function": "os.system"}), "model.layers.2"),
        (lambda b: b["model"]["layers"][0].update(module="os", registered_name="system"), "model.layers.0.module"),
        (lambda b: b["compile"].update(loss={"type": "mse", "module": "evil", "class_name": "Loss"}), "compile.loss.module"),
        (lambda b: b["model"]["layers"][0].update(units=10**30), "model.layers.0.units"),
        (lambda b: b.update(seed=10**100), "seed"),
        (lambda b: b["data"]["train"].update(x=[[[1.0, 2.0, 3.0, 4.0]]] * 64), "data.train.x"),
        (lambda b: b["data"]["train"].update(x=[1.0] * 64), "data.train.x"),
    ],
    ids=["keras config", "lambda layer", "module and registered_name", "custom loss",
         "huge units", "huge seed", "rank too high", "rank too low"],
)  # fmt: skip
def test_hostile_specs_are_422(api: Api, change, loc: str) -> None:
    client, _ = api
    body = tiny_job()
    change(body)
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == loc
    assert client.get("/v1/jobs").json()["data"] == []


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_json_are_refused(api: Api, literal: str) -> None:
    client, _ = api
    text = json.dumps(tiny_job()).replace(
        '"seed": 7', f'"seed": 7, "fit": {{"max_runtime_seconds": {literal}}}'
    )
    text = text.replace('"fit": {"batch_size": 16, "epochs": 2}, ', "")
    response = post_raw(client, text)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"].startswith("fit.max_runtime_seconds")


@pytest.mark.parametrize(
    "job_id",
    ["\uff4a\uff4f\uff42_01ARZ3NDEKTSV4RRFFQ69G5FAV", "job_01ARZ3NDEKTSV4RRFFQ69G5FA\u202e", "job_%2e%2e%2fetc",
     "job_01ARZ3NDEKTSV4RRFFQ69G5FAV%00", "..%2F..%2Fetc%2Fpasswd"],
)  # fmt: skip
def test_tricky_ids_are_404(api: Api, job_id: str) -> None:
    client, _ = api
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/model", f"/v1/datasets/{job_id}"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["type"] == "not_found"


def test_a_keras_model_uploaded_as_data_is_refused(
    api: Api, ingestor: DatasetIngestor, tmp_path
) -> None:
    client, _ = api
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    for name, form in (("model.npz", {}), ("model.csv", {"target": "y"}), ("model.keras", {})):
        response = client.post("/v1/datasets", files={"file": (name, path.read_bytes())}, data=form)
        if name.endswith(".keras"):
            assert response.status_code == 422  # not an accepted format at all
            continue
        dataset_id = response.json()["id"]
        ingestor.run(dataset_id)
        dataset = client.get(f"/v1/datasets/{dataset_id}").json()
        assert dataset["status"] == "failed", dataset
        assert "expected" in dataset["error"]["message"]


def test_any_body_over_the_request_limit_is_413(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"max_request_bytes": 2_000})
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=tiny_job())  # several kB of JSON
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "payload_too_large"
        streamed = client.post(
            "/v1/validate",
            content=(
                chunk
                for chunk in [
                    json.dumps(tiny_job()).encode()[i : i + 1000] for i in range(0, 20_000, 1000)
                ]
            ),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert client.get("/v1/jobs").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[" * 30_000 + "]" * 30_000,
            "at most 32 levels deep, received 30,000 levels (FITQ_MAX_JSON_DEPTH)",
        ),
        ('{"model":' * 40 + "1" + "}" * 40, "at most 32 levels deep, received 40 levels"),
        (
            json.dumps({"x": list(range(100_001))}),
            "received one with 100,001 (FITQ_MAX_JSON_ITEMS); send larger data",
        ),
        (
            json.dumps({"x": [[[0]] * 50_000] * 21}),
            "received 1,050,023 (FITQ_MAX_JSON_CONTAINERS); send larger data",
        ),
    ],
    ids=["brackets", "objects", "wide", "many"],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/validate", "/v1/jobs/job_0/predict"])
def test_json_too_deep_too_wide_or_too_many_is_422_before_parsing(
    api: Api, path: str, body: str, message: str
) -> None:
    client, _ = api
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert message in error["message"]
    assert error["details"][0]["loc"] == "body"


def test_a_job_just_inside_the_json_limits_is_accepted(api: Api) -> None:
    client, settings = api
    body = tiny_job(features=2)
    rows = settings.max_json_items  # the row arrays are as wide as the limit allows
    body["data"]["train"] = {"x": [[0.5, 0.25]] * rows, "y": [1.0] * rows}
    response = client.post("/v1/validate", json=body)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/jobs", "GET, HEAD, POST"),
        ("/v1/jobs/job_0", "DELETE, GET, HEAD"),
        ("/v1/datasets", "GET, HEAD, POST"),
    ],
)
def test_a_wrong_method_is_405_listing_every_method_of_the_path(
    api: Api, path: str, allowed: str
) -> None:
    client, _ = api
    response = client.request("PATCH", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["message"] == "Method Not Allowed"


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"x": [[1.0]]}', "text/plain", "bytes that are not a JSON body"),
        (b'{"x": [[1.0, "\xff"]]}', "application/json", "not UTF-8 at offset"),
        (b"abc", "multipart/form-data", "does not parse (Missing boundary in multipart.)"),
    ],
    ids=["text-plain", "not-utf8", "broken-multipart"],
)
def test_bodies_that_do_not_parse_are_422(
    api: Api, content: bytes, content_type: str, message: str
) -> None:
    client, _ = api
    path = "/v1/datasets" if content_type.startswith("multipart") else "/v1/jobs/job_0/predict"
    response = client.post(path, content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert message in json.dumps(response.json()["error"])


def test_empty_rows_and_nul_characters_are_422(api: Api) -> None:
    client, _ = api
    body = tiny_job()
    body["data"]["train"] = {"x": [[]], "y": [[]]}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert "expected values in every row, received an empty shape (1, 0)" in response.text
    upload = client.post(
        "/v1/datasets", files={"file": ("d.csv", b"a,b\n1,2\n")}, data={"target": "b\x00"}
    )
    assert upload.status_code == 422
    assert "without NUL characters" in upload.json()["error"]["message"]


def _keras_body(keras_config: Any) -> dict[str, Any]:
    body = tiny_job()
    body["model"] = {"keras_config": keras_config}
    return body


@pytest.mark.parametrize(
    ("keras_config", "loc", "message"),
    [
        ({"class_name": "Sequential", "config": [1, 2]}, "model.keras_config.config", "expected an object, received list"),
        ({"class_name": "Sequential", "config": {"layers": [{"class_name": "InputLayer", "config": [4]}]}},
         "model.keras_config.config.layers.0.config", "expected an object, received list"),
        ({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 1, "kernel_initializer": {"class_name": "Zeros", "config": "x"}}}]}},
         "model.keras_config.config.layers.0.config.kernel_initializer.config", "expected an object, received str"),
        ("[" * 100_000 + "]" * 100_000, "model.keras_config", "nested too deep"),
        (" " * 1_000_001, "model.keras_config", "at most 1,000,000 characters"),
    ],
    ids=["config-list", "layer-config-list", "initializer-config-str", "string-100000-deep", "string-too-long"],
)  # fmt: skip
def test_malformed_keras_configs_are_422_never_500(
    api: Api, keras_config: Any, loc: str, message: str
) -> None:
    client, _ = api
    response = client.post("/v1/jobs", json=_keras_body(keras_config))
    assert response.status_code == 422, response.text
    detail = response.json()["error"]["details"][0]
    assert (detail["loc"], message in detail["message"]) == (loc, True), detail


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_short_inline_arrays_are_422_never_500(
    api: Api, literal: str
) -> None:
    """The refusal echoes what was received: short arrays come back as sent, and a NaN in
    one used to make that echo unencodable (500)."""
    client, _ = api
    job = tiny_job(train=tiny_arrays(rows=4))
    job["data"]["train"]["x"][0][0] = 123456.5  # a marker the literal replaces
    body = json.dumps(job).replace("123456.5", literal, 1)
    predict = "/v1/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV/predict"
    for path, text in (("/v1/jobs", body), (predict, f'{{"x": [[{literal}, 1.0]]}}')):
        response = post_raw(client, text, path)
        assert response.status_code in (404, 422), response.text
        if response.status_code == 422:
            assert "expected finite numbers" in response.json()["error"]["message"]


def test_two_content_type_headers_are_422_before_the_body_is_read(api: Api) -> None:
    """JSON first and text second: the body's JSON limits read the last header and skipped
    the body, which the parser then read as JSON by the first (a 15 M-row predict body cost
    the API 2 GB)."""
    client, _ = api
    headers = [("content-type", "application/json"), ("content-type", "text/plain")]
    response = client.post("/v1/jobs", content=json.dumps(tiny_job()), headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"].startswith("expected one Content-Type header, received 2")
    assert client.get("/v1/jobs").json()["data"] == []


def test_a_model_whose_activations_would_not_fit_is_422_naming_the_layer(api: Api) -> None:
    """8 k parameters, but one Conv2D(4096, 1) output holds 16.8 M values a row: at batch
    128 the activations of one batch come to ~17 GB (it trained on a smaller input and held
    the worker at 2.8 GB). The estimate comes from the inferred shapes, before anything runs."""
    client, _ = api
    x = np.zeros((2, 64, 64, 1)).tolist()
    body = {
        "model": {"layers": [
            {"type": "Conv2D", "filters": 4096, "kernel_size": 1, "padding": "same", "input_shape": [64, 64, 1]},
            {"type": "GlobalAveragePooling2D"},
            {"type": "Dense", "units": 1},
        ]},
        "compile": {"loss": "mse", "optimizer": "adam"},
        "fit": {"batch_size": 128, "epochs": 1},
        "data": {"train": {"x": x, "y": [0.0, 1.0]}},
    }  # fmt: skip
    for path in ("/v1/validate", "/v1/jobs"):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["error"]["details"][0]
        assert detail["loc"] == "model.layers.0"
        assert "FITQ_MAX_ACTIVATION_BYTES" in detail["message"]
        assert (
            "most of it from Conv2D ([64, 64, 4096] values a row x batch 128)" in detail["message"]
        )
    body["fit"]["batch_size"] = 2  # the same model on small batches fits
    assert client.post("/v1/validate", json=body).status_code == 200


@pytest.mark.parametrize(
    ("value", "what"), [("1", "a string ('1')"), (True, "a boolean (True)"), (None, "null (None)")]
)
@pytest.mark.parametrize("array", ["x", "y"])
def test_inline_values_that_are_not_json_numbers_are_422_naming_where(
    api: Api, value: Any, what: str, array: str
) -> None:
    """NumPy reads "1" and true as numbers and null as NaN; the README says JSON numbers."""
    client, _ = api
    job = tiny_job(train=tiny_arrays(rows=40))
    rows = job["data"]["train"][array]
    if array == "x":
        rows[30][2] = value
    else:
        rows[30] = value
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 422, response.text
    detail = response.json()["error"]["details"][0]
    assert detail["loc"] == f"data.train.{array}", detail
    index = "[30, 2]" if array == "x" else "[30]"
    assert detail["message"] == f"expected JSON numbers, received {what} at index {index}"
