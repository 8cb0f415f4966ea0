"""Graph models of several inputs and outputs: data keyed by the Keras input and output names,
a loss, metrics and a loss weight per output. A job trains to the numbers of the same
functional model fitted by hand on dicts, through the API, the stored dataset and the
worker, and predicts keyed by output."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from worker.inference import ModelCache
from worker.ingest import DatasetIngestor
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]
L = keras.layers
SEED = 13

MODEL: dict[str, Any] = {
    "inputs": [{"name": "features", "shape": [3]}, {"name": "series", "shape": [4, 2]}],
    "layers": [
        {"type": "Flatten", "name": "flat", "inputs": ["series"]},
        {"type": "Concatenate", "name": "joined", "inputs": ["features", "flat"]},
        {"type": "Dense", "name": "hidden", "units": 8, "activation": "relu"},
        {"type": "Dense", "name": "price", "units": 1},
        {"type": "Dense", "name": "kind", "units": 3, "activation": "softmax",
         "inputs": ["hidden"]},
    ],
    "outputs": ["price", "kind"],
}  # fmt: skip
COMPILE: dict[str, Any] = {
    "loss": {"price": "mse", "kind": "sparse_categorical_crossentropy"},
    "loss_weights": {"price": 1.0, "kind": 0.5},
    "metrics": {"price": ["mae"], "kind": ["accuracy"]},
}


def _by_hand_model() -> keras.Model:
    features = keras.Input((3,), name="features")
    series = keras.Input((4, 2), name="series")
    flat = L.Flatten(name="flat")(series)
    joined = L.Concatenate(name="joined")([features, flat])
    hidden = L.Dense(8, activation="relu", name="hidden")(joined)
    price = L.Dense(1, name="price")(hidden)
    kind = L.Dense(3, activation="softmax", name="kind")(hidden)
    return keras.Model([features, series], [price, kind])


def _compile_by_hand(model: keras.Model) -> None:
    """COMPILE, as a script writes it."""
    model.compile(
        loss={"price": "mse", "kind": "sparse_categorical_crossentropy"},
        loss_weights={"price": 1.0, "kind": 0.5},
        optimizer="adam",
        metrics={"price": ["mae"], "kind": ["accuracy"]},
    )


def _data(rows: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = {
        "features": rng.random((rows, 3), dtype=np.float32),
        "series": rng.random((rows, 4, 2), dtype=np.float32),
    }
    total = x["features"].sum(axis=1) + x["series"].sum(axis=(1, 2))
    y = {
        "price": total.astype(np.float32),
        "kind": np.digitize(total, np.quantile(total, [1 / 3, 2 / 3])).astype(np.float32),
    }
    return x, y


def _listed(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {name: array.tolist() for name, array in arrays.items()}


def _body(**changes: Any) -> dict[str, Any]:
    (x, y), (tx, ty) = _data(48, 1), _data(16, 2)
    body = {
        "model": MODEL,
        "compile": COMPILE,
        "fit": {"batch_size": 16, "epochs": 3, "validation_split": 0.25},
        "data": {
            "train": {"x": _listed(x), "y": _listed(y)},
            "test": {"x": _listed(tx), "y": _listed(ty)},
        },
        "seed": SEED,
    }
    return {**body, **changes}


def test_a_job_of_two_inputs_and_two_outputs_trains_as_the_model_by_hand(
    api: Api, runner: JobRunner
) -> None:
    client, _ = api
    answer = client.post("/v1/jobs", json=_body())
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()

    (x, y), (tx, ty) = _data(48, 1), _data(16, 2)
    keras.utils.set_random_seed(SEED)
    model = _by_hand_model()
    _compile_by_hand(model)
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0)
    scores = model.evaluate(tx, ty, batch_size=16, verbose=0, return_dict=True)

    for key, values in history.history.items():
        assert [epoch[key] for epoch in job["history"]] == [float(v) for v in values], key
    result = job["result"]
    assert result["test_loss"] == scores["loss"]
    assert result["test_metrics"] == {k: v for k, v in scores.items() if k != "loss"}
    assert set(result["test_metrics"]) == {"price_loss", "kind_loss", "price_mae", "kind_accuracy"}
    summary = result["model_summary"]
    assert summary["inputs"] == {"features": [None, 3], "series": [None, 4, 2]}
    assert summary["outputs"] == {"price": [None, 1], "kind": [None, 3]}
    assert summary["total_params"] == model.count_params()
    stored = job["spec"]["data"]["train"]
    assert [g["name"] for g in stored["x_groups"]] == ["features", "series"]
    assert stored["x_shape"] == [48, 3 + 8]

    cache = ModelCache(runner.sessions, runner.artifacts)
    predicted = cache.predict(job_id, _listed(tx))
    expected = model.predict(tx, verbose=0)
    assert set(predicted["y"]) == {"price", "kind"}
    assert predicted["y"]["price"] == np.asarray(expected[0], dtype=np.float64).tolist()
    assert predicted["y"]["kind"] == np.asarray(expected[1], dtype=np.float64).tolist()


def test_several_outputs_share_one_loss_and_stream_from_memory_maps(
    api: Api, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One loss for every output, as Keras applies it; data larger than the in-memory limit
    streams its named groups batch by batch."""
    client, settings = api
    monkeypatch.setattr(runner, "settings", settings.model_copy(update={"in_memory_bytes": 1}))
    body = _body(compile={"loss": "mse", "metrics": {"price": ["mae"]}})
    for split in ("train", "test"):  # one row per class: what mse takes for a softmax
        kinds = np.asarray(body["data"][split]["y"]["kind"], dtype=int)
        body["data"][split]["y"]["kind"] = np.eye(3)[kinds].tolist()
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    assert runner.run(answer.json()["id"]) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{answer.json()['id']}").json()
    assert job["result"]["execution"]["data"] == "streamed"
    assert set(job["history"][-1]) == {
        "epoch", "loss", "price_loss", "kind_loss", "price_mae",
        "val_loss", "val_price_loss", "val_kind_loss", "val_price_mae",
    }  # fmt: skip


def _kinds(body: dict[str, Any]) -> list[float]:
    return list(body["data"]["train"]["y"]["kind"])


def _refusal(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/validate", json=body)
    assert answer.status_code == 422, answer.text
    return dict(answer.json()["error"]["details"][0])


def test_validate_summarizes_named_inputs_and_outputs(api: Api) -> None:
    client, _ = api
    answer = client.post("/v1/validate", json=_body())
    assert answer.status_code == 200, answer.text
    summary = answer.json()["model_summary"]
    assert summary["outputs"] == {"price": [None, 1], "kind": [None, 3]}


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        (lambda b: b["data"]["train"].update(x=b["data"]["train"]["x"]["features"]),
         "data.train.x", "keyed by the model's inputs ('features', 'series'), received one array"),
        (lambda b: b["data"]["train"]["x"].update(serie=b["data"]["train"]["x"].pop("series")),
         "data.train.x.serie", "did you mean 'series'"),
        (lambda b: b["data"]["test"]["y"].pop("kind"),
         "data.test.y", "received none for 'kind'"),
        (lambda b: b["compile"].update(metrics=["mae"]),
         "compile.metrics", "received a list"),
        (lambda b: b["compile"].update(loss={"price": "mse", "knd": "mse"}),
         "compile.loss", "did you mean 'kind'"),
        (lambda b: b["compile"].update(loss_weights={"prize": 1.0}),
         "compile.loss_weights", "did you mean 'price'"),
        (lambda b: b["fit"].update(class_weight={"0": 2.0}),
         "fit.class_weight", "only for a model of one output"),
        (lambda b: b["data"]["train"]["y"].update(kind=[k + 1 for k in _kinds(b)]),
         "data.train.y.kind", "fitq encodes labels for a model of one output only"),
        (lambda b: b["fit"].update(early_stopping={"monitor": "val_kind_acc"}),
         "fit.early_stopping.monitor", "'val_kind_accuracy'"),
        (lambda b: b["data"].update(standardize=True),
         "data.standardize", "for a model of one input"),
        (lambda b: b["fit"].update(callbacks=[{"type": "EarlyStopping",
                                               "monitor": "val_kind_loss"}]),
         "fit.callbacks.0.mode", "expected mode 'min' with monitor 'val_kind_loss'"),
    ],
    ids=["one-array", "unknown-input", "missing-output", "metrics-list", "loss-key",
         "weight-key", "class-weight", "labels", "monitor", "standardize", "auto-mode"],
)  # fmt: skip
def test_named_data_and_per_output_settings_are_refused_in_the_users_words(
    api: Api, change: Any, loc: str, message: str
) -> None:
    body = _body()
    body["compile"] = {**COMPILE}
    change(body)
    detail = _refusal(api[0], body)
    assert detail["loc"] == loc
    assert message in detail["message"]


def test_a_sequential_model_takes_one_array(api: Api) -> None:
    x, y = _data(8, 1)
    body = {
        "model": {"layers": [{"type": "Dense", "units": 1, "input_shape": [3]}]},
        "compile": {"loss": "mse"},
        "data": {"train": {"x": {"features": x["features"].tolist()}, "y": y["price"].tolist()}},
    }
    detail = _refusal(api[0], body)
    assert detail["loc"] == "data.train.x"
    assert "expected one array" in detail["message"]


def test_a_dataset_reference_names_the_columns_of_each_input_and_output(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner
) -> None:
    """An uploaded CSV's feature and target columns grouped by the reference's ``inputs``
    and ``outputs``: the job trains as the model by hand on those columns as dicts."""
    client, _ = api
    rng = np.random.default_rng(3)
    table = rng.random((40, 5)).astype(np.float32)
    lines = ["u,v,w,p,q"] + [",".join(repr(float(v)) for v in row) for row in table]
    upload = client.post(
        "/v1/datasets", files={"file": ("t.csv", "\n".join(lines).encode())}, data={"target": "p,q"}
    )
    assert upload.status_code == 202, upload.text
    dataset_id = upload.json()["id"]
    ingestor.run(dataset_id)
    model = {
        "inputs": [{"name": "left", "shape": [2]}, {"name": "right", "shape": [1]}],
        "layers": [
            {"type": "Concatenate", "name": "both", "inputs": ["left", "right"]},
            {"type": "Dense", "name": "h", "units": 4, "activation": "tanh"},
            {"type": "Dense", "name": "first", "units": 1},
            {"type": "Dense", "name": "second", "units": 1, "inputs": ["h"]},
        ],
        "outputs": ["first", "second"],
    }
    reference = {
        "dataset_id": dataset_id,
        "inputs": {"left": ["w", "u"], "right": ["v"]},
        "outputs": {"first": ["q"], "second": ["p"]},
    }
    body = {
        "model": model,
        "compile": {"loss": "mae"},
        "fit": {"batch_size": 8, "epochs": 2, "shuffle": False},
        "data": {"train": reference},
        "seed": 4,
    }
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    assert runner.run(answer.json()["id"]) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{answer.json()['id']}").json()

    keras.utils.set_random_seed(4)
    left, right = keras.Input((2,), name="left"), keras.Input((1,), name="right")
    h = L.Dense(4, activation="tanh", name="h")(L.Concatenate(name="both")([left, right]))
    first, second = L.Dense(1, name="first")(h), L.Dense(1, name="second")(h)
    by_hand = keras.Model([left, right], [first, second])
    by_hand.compile(loss="mae", optimizer="adam")
    x = {"left": table[:, [2, 0]], "right": table[:, [1]]}
    y = {"first": table[:, 4], "second": table[:, 3]}
    history = by_hand.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for key, values in history.items():
        assert [epoch[key] for epoch in job["history"]] == [float(v) for v in values], key

    reference["inputs"] = {"left": ["w", "uu"], "right": ["v"]}
    detail = _refusal(client, body)
    assert detail["loc"] == "data.train.inputs.left"
    assert "columns of the dataset ('u', 'v', 'w'), received 'uu'" in detail["message"]


def test_spec_from_keras_reads_a_model_of_several_outputs_and_its_compile() -> None:
    from fitq import spec_from_keras

    model = _by_hand_model()
    model.compile(
        loss={"price": "mse", "kind": keras.losses.SparseCategoricalCrossentropy()},
        loss_weights={"price": 1.0, "kind": 0.5},
        optimizer=keras.optimizers.Adam(0.01),
        metrics={"price": ["mae"], "kind": ["accuracy"]},
    )
    spec = spec_from_keras(model, batch_size=16)
    assert spec["compile"]["loss"] == {
        "price": "mse",
        "kind": {"type": "sparse_categorical_crossentropy", "from_logits": False},
    }
    assert spec["compile"]["loss_weights"] == {"price": 1.0, "kind": 0.5}
    assert spec["compile"]["metrics"] == {"price": ["mae"], "kind": ["accuracy"]}
    assert [i["name"] for i in spec["model"]["inputs"]] == ["features", "series"]
    assert spec["model"]["outputs"] == ["price", "kind"]


def test_a_normalization_without_statistics_is_adapted_to_its_inputs_training_rows(
    api: Api, runner: JobRunner, tmp_path
) -> None:
    """``norm = Normalization(); norm.adapt(x_train["series"])`` on one input of two, as a
    script writes it; and a downloaded model that carries such a layer is accepted back as
    a spec (``spec_from_keras``), its Normalization adapted to the new job's data."""
    from fitq import spec_from_keras

    client, _ = api
    model_spec = {
        **MODEL,
        "layers": [
            {"type": "Normalization", "name": "norm", "inputs": ["series"]},
            {"type": "Flatten", "name": "flat", "inputs": ["norm"]},
            *MODEL["layers"][1:],
        ],
    }
    body = _body(model=model_spec)
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert runner.run(job_id) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{job_id}").json()

    (x, y), _ = _data(48, 1), None
    keras.utils.set_random_seed(SEED)
    norm = L.Normalization(name="norm")
    norm.adapt(x["series"])
    features, series = keras.Input((3,), name="features"), keras.Input((4, 2), name="series")
    flat = L.Flatten(name="flat")(norm(series))
    hidden = L.Dense(8, activation="relu", name="hidden")(L.Concatenate()([features, flat]))
    price = L.Dense(1, name="price")(hidden)
    kind = L.Dense(3, activation="softmax", name="kind")(hidden)
    model = keras.Model([features, series], [price, kind])
    _compile_by_hand(model)
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0)
    for key, values in history.history.items():
        assert [epoch[key] for epoch in job["history"]] == [float(v) for v in values], key
    assert job["result"]["model_summary"]["layers"][0]["params"] == 2 * 2 + 1

    path = tmp_path / "model.keras"
    path.write_bytes(client.get(f"/v1/jobs/{job_id}/model").content)
    again = spec_from_keras(keras.models.load_model(path), batch_size=16)
    assert again["model"]["layers"][0]["type"] == "Normalization"
    resubmitted = client.post("/v1/validate", json={**again, "data": body["data"], "seed": 1})
    assert resubmitted.status_code == 200, resubmitted.text


def test_a_normalization_without_statistics_is_refused_inside_the_model(api: Api) -> None:
    model_spec = {
        **MODEL,
        "layers": [*MODEL["layers"][:2], {"type": "Normalization", "name": "norm"},
                   *MODEL["layers"][2:]],
    }  # fmt: skip
    model_spec["layers"][3] = {**model_spec["layers"][3], "inputs": ["norm"]}
    detail = _refusal(api[0], _body(model=model_spec))
    assert detail["loc"] == "model.layers.2"
    assert "only on a model input" in detail["message"]
