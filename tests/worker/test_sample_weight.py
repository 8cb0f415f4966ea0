"""Sample weights, inline or a dataset column: a job trains, validates and evaluates as
``fit(sample_weight=…)``, ``validation_data=(x, y, w)`` and ``evaluate(sample_weight=…)``
by hand, bit for bit."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from worker.ingest import DatasetIngestor
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]
SEED = 17


def _split(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 3), dtype=np.float32)
    y = (x @ np.array([1.0, -1.0, 2.0], dtype=np.float32)).astype(np.float32)
    w = rng.uniform(0.0, 3.0, rows).astype(np.float32)
    return {"x": x, "y": y, "w": w}


def _sent(split: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "x": split["x"].tolist(),
        "y": split["y"].tolist(),
        "sample_weight": split["w"].tolist(),
    }


def _hand_model() -> keras.Model:
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    return model


SPEC: dict[str, Any] = {
    "model": {"layers": [
        {"type": "Dense", "units": 6, "activation": "relu", "input_shape": [3]},
        {"type": "Dense", "units": 1},
    ]},
    "compile": {"loss": "mse", "metrics": ["mae"]},
    "seed": SEED,
}  # fmt: skip


def _run(client: TestClient, runner: JobRunner, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    assert runner.run(answer.json()["id"]) == RunResult.succeeded
    return dict(client.get(f"/v1/jobs/{answer.json()['id']}").json())


def _assert_same(job: dict[str, Any], history: dict[str, list[float]], scores: dict) -> None:
    for key, values in history.items():
        assert [epoch[key] for epoch in job["history"]] == [float(v) for v in values], key
    assert job["result"]["test_loss"] == scores["loss"]
    assert job["result"]["test_metrics"] == {"mae": scores["mae"]}


@pytest.mark.parametrize("validation", ["validation data", "validation_split"])
def test_inline_sample_weights_train_as_fit_by_hand(
    validation: str, api: Api, runner: JobRunner
) -> None:
    train, valid, test = _split(64, 1), _split(16, 2), _split(16, 3)
    data: dict[str, Any] = {"train": _sent(train), "test": _sent(test)}
    fit: dict[str, Any] = {"batch_size": 16, "epochs": 3}
    if validation == "validation data":
        data["validation"] = _sent(valid)
    else:
        fit["validation_split"] = 0.25
    job = _run(api[0], runner, {**SPEC, "fit": fit, "data": data})

    model = _hand_model()
    extra: dict[str, Any] = (
        {"validation_data": (valid["x"], valid["y"], valid["w"])}
        if validation == "validation data"
        else {"validation_split": 0.25}
    )
    history = model.fit(
        train["x"], train["y"], sample_weight=train["w"], batch_size=16, epochs=3, verbose=0,
        **extra,
    )  # fmt: skip
    scores = model.evaluate(
        test["x"], test["y"], sample_weight=test["w"], batch_size=16, verbose=0, return_dict=True
    )
    _assert_same(job, history.history, scores)
    unweighted = _hand_model().fit(train["x"], train["y"], batch_size=16, epochs=1, verbose=0)
    assert job["history"][0]["loss"] != unweighted.history["loss"][0]  # the weights counted


@pytest.mark.parametrize("where", ["a feature column", "a target column"])
def test_a_dataset_column_of_weights_trains_as_fit_by_hand(
    where: str, api: Api, ingestor: DatasetIngestor, runner: JobRunner
) -> None:
    client, _ = api
    table = _split(48, 4)
    lines = ["a,b,c,y,weight"] + [
        ",".join(repr(float(v)) for v in (*row, y, w))
        for row, y, w in zip(table["x"], table["y"], table["w"], strict=True)
    ]
    target = "y" if where == "a feature column" else "y,weight"
    upload = client.post(
        "/v1/datasets",
        files={"file": ("w.csv", "\n".join(lines).encode())},
        data={"target": target},
    )
    assert upload.status_code == 202, upload.text
    ingestor.run(upload.json()["id"])
    reference = {"dataset_id": upload.json()["id"], "sample_weight": "weight"}
    fit = {"batch_size": 16, "epochs": 3, "validation_split": 0.25}
    job = _run(client, runner, {**SPEC, "fit": fit, "data": {"train": reference}})

    history = _hand_model().fit(
        table["x"], table["y"], sample_weight=table["w"], batch_size=16, epochs=3,
        validation_split=0.25, verbose=0,
    )  # fmt: skip
    for key, values in history.history.items():
        assert [epoch[key] for epoch in job["history"]] == [float(v) for v in values], key

    reference["sample_weight"] = "wieght"
    refused = client.post("/v1/validate", json={**SPEC, "data": {"train": reference}})
    assert refused.status_code == 422
    detail = refused.json()["error"]["details"][0]
    assert detail["loc"] == "data.train.sample_weight"
    assert "did you mean 'weight'" in detail["message"]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0] * 63, "expected as many rows in sample_weight as in x (64), received 63"),
        ([1.0] * 63 + [-1.0], "expected weights ≥ 0, received -1"),
        ([[1.0]] * 64, "expected one weight per row (rank 1)"),
        ("class_weight", "expected class_weight or sample weights on the training data"),
    ],
    ids=["rows", "negative", "rank", "with class_weight"],
)
def test_bad_sample_weights_are_refused(weights: Any, message: str, api: Api) -> None:
    train = _split(64, 1)
    body: dict[str, Any] = {**SPEC, "data": {"train": {**_sent(train), "sample_weight": weights}}}
    if weights == "class_weight":  # Keras takes one or the other
        train["y"] = (train["y"] > 0).astype(np.float32)
        body = {
            **SPEC,
            "model": {"layers": [{"type": "Dense", "units": 1, "activation": "sigmoid",
                                  "input_shape": [3]}]},
            "compile": {"loss": "binary_crossentropy"},
            "fit": {"class_weight": {"1": 2.0}},
            "data": {"train": _sent(train)},
        }  # fmt: skip
    refused = api[0].post("/v1/validate", json=body)
    assert refused.status_code == 422
    assert message in refused.json()["error"]["details"][0]["message"]


def test_streamed_batches_carry_their_rows_weights(
    api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the in-memory limit each batch is read with its rows' weights: all weights
    zero but one row's, the first epoch's loss is that row's alone, weighted as Keras does."""
    client, settings = api
    monkeypatch.setattr(runner, "settings", settings.model_copy(update={"in_memory_bytes": 1}))
    train = _split(16, 5)
    train["w"] = np.zeros(16, dtype=np.float32)
    train["w"][3] = 1.0
    fit = {"batch_size": 16, "epochs": 1, "shuffle": False}
    job = _run(client, runner, {**SPEC, "fit": fit, "data": {"train": _sent(train)}})
    assert job["result"]["execution"]["data"] == "streamed"
    model = _hand_model()
    scores = model.evaluate(train["x"], train["y"], sample_weight=train["w"], verbose=0)
    assert job["history"][0]["loss"] == pytest.approx(scores[0], rel=1e-5)
