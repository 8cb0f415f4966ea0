"""Jobs that train from uploaded datasets: equal to hand-run Keras in memory, label encoding and
standardisation carried by the downloaded model, streaming above the in-memory limit."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from worker.ingest import DatasetIngestor
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]


def dataset(api: Api, ingestor: DatasetIngestor, name: str, content: bytes, **form: str) -> str:
    client, _ = api
    response = client.post("/v1/datasets", files={"file": (name, content)}, data=form)
    assert response.status_code == 202, response.text
    dataset_id = response.json()["id"]
    ingestor.run(dataset_id)
    assert client.get(f"/v1/datasets/{dataset_id}").json()["status"] == "ready"
    return dataset_id


def run(api: Api, runner: JobRunner, body: dict) -> dict:
    client, _ = api
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert runner.run(response.json()["id"]) == RunResult.succeeded
    return client.get(f"/v1/jobs/{response.json()['id']}").json()


def download(api: Api, job: dict, tmp_path) -> keras.Model:
    path = tmp_path / "model.keras"
    path.write_bytes(api[0].get(job["result"]["model_url"]).content)
    return keras.models.load_model(path, safe_mode=True)


def regression_csv(rows: int = 200, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((rows, 3)) * [1, 100, 1000]).astype(np.float32)
    y = (x @ np.array([1.0, 0.01, 0.001], dtype=np.float32)).astype(np.float32)
    lines = ["a,b,c,y"] + [
        ",".join(repr(float(v)) for v in (*r, t)) for r, t in zip(x, y, strict=True)
    ]
    return "\n".join(lines).encode(), x, y


def regression_job(dataset_id: str, **data: object) -> dict:
    return {
        "model": {"layers": [
            {"type": "Dense", "units": 8, "activation": "relu", "input_shape": [3]},
            {"type": "Dense", "units": 1},
        ]},
        "compile": {"loss": "mse", "metrics": ["mae"]},
        "fit": {"batch_size": 16, "epochs": 3},
        "data": {"train": {"dataset_id": dataset_id}, "test_split": 0.25, **data},
        "seed": 3,
    }  # fmt: skip


def test_a_job_from_an_uploaded_csv_equals_hand_run_keras(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner
) -> None:
    content, x, y = regression_csv()
    dataset_id = dataset(api, ingestor, "d.csv", content, target="y")
    job = run(api, runner, regression_job(dataset_id, standardize=True))

    keras.utils.set_random_seed(3)  # by hand, as the README's spec describes
    x_train, y_train, x_test, y_test = x[:150], y[:150], x[150:], y[150:]
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    model = keras.Sequential([
        keras.Input(shape=(3,)), norm,
        keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1),
    ])  # fmt: skip
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(x_train, y_train, batch_size=16, epochs=3, verbose=0)
    scores = model.evaluate(x_test, y_test, batch_size=16, verbose=0, return_dict=True)

    assert job["result"]["test_loss"] == scores["loss"]
    assert job["result"]["execution"]["standardize"] is True
    layers = job["result"]["model_summary"]["layers"]
    assert (layers[0]["type"], layers[0]["params"]) == ("Normalization", 7)


def test_standardisation_travels_with_the_downloaded_model(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner, tmp_path
) -> None:
    content, x, _ = regression_csv()
    job = run(
        api,
        runner,
        regression_job(dataset(api, ingestor, "d.csv", content, target="y"), standardize=True),
    )
    model = download(api, job, tmp_path)
    norm = model.layers[0]
    assert isinstance(norm, keras.layers.Normalization)
    np.testing.assert_allclose(np.ravel(norm.mean), x[:150].mean(axis=0), rtol=1e-4)
    # Raw rows in, standardised inside: the model needs no preprocessing from its user.
    scores = model.evaluate(x[150:], _[150:], batch_size=16, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(job["result"]["test_loss"], rel=1e-5)


def iris_like(rows: int = 120, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["setosa", "versicolor", "virginica"])[rng.integers(0, 3, rows)]
    centers = {"setosa": 0.0, "versicolor": 2.0, "virginica": 4.0}
    x = np.array([[centers[lab]] * 4 for lab in labels]) + rng.normal(0, 0.3, (rows, 4))
    return x.astype(np.float32), labels


def classifier(dataset_id: str, loss: str, metrics: list[str]) -> dict:
    return {
        "model": {"layers": [
            {"type": "Dense", "units": 8, "activation": "relu", "input_shape": [4]},
            {"type": "Dense", "units": 3, "activation": "softmax"},
        ]},
        "compile": {"loss": loss, "optimizer": {"type": "adam", "learning_rate": 0.05}, "metrics": metrics},
        "fit": {"batch_size": 16, "epochs": 15},
        "data": {"train": {"dataset_id": dataset_id}, "test_split": 0.25},
        "seed": 1,
    }  # fmt: skip


@pytest.mark.parametrize(("loss", "metric"), [
    ("sparse_categorical_crossentropy", "sparse_categorical_accuracy"),
    ("categorical_crossentropy", "categorical_accuracy"),
])  # fmt: skip
def test_text_labels_are_encoded_and_mapped_back(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner, tmp_path, loss: str, metric: str
) -> None:
    x, labels = iris_like()
    lines = ["f1,f2,f3,f4,species"] + [
        ",".join([*map(str, r), lab]) for r, lab in zip(x, labels, strict=True)
    ]
    dataset_id = dataset(api, ingestor, "iris.csv", "\n".join(lines).encode(), target="species")
    job = run(api, runner, classifier(dataset_id, loss, [metric]))
    assert job["result"]["labels"] == ["setosa", "versicolor", "virginica"]
    assert job["result"]["test_metrics"][metric] > 0.9

    model = download(api, job, tmp_path)
    predicted = np.array(job["result"]["labels"])[model.predict(x[90:], verbose=0).argmax(axis=1)]
    assert (predicted == labels[90:]).mean() == pytest.approx(job["result"]["test_metrics"][metric])


def test_integer_classes_are_encoded_for_sparse_crossentropy(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner
) -> None:
    x, labels = iris_like()
    codes = {"setosa": 3, "versicolor": 7, "virginica": 9}
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.array([codes[lab] for lab in labels]))
    dataset_id = dataset(api, ingestor, "d.npz", buffer.getvalue())
    validated = api[0].post(
        "/v1/validate", json=classifier(dataset_id, "sparse_categorical_crossentropy", ["accuracy"])
    )
    assert validated.json()["label_encoding"] == {
        "classes": [3.0, 7.0, 9.0],
        "names": None,
        "one_hot": False,
    }
    job = run(api, runner, classifier(dataset_id, "sparse_categorical_crossentropy", ["accuracy"]))
    assert job["result"]["labels"] == [3, 7, 9]
    assert job["result"]["test_metrics"]["accuracy"] > 0.9


def test_too_many_classes_for_the_output_is_refused(api: Api, ingestor: DatasetIngestor) -> None:
    x, _ = iris_like()
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.arange(len(x)) % 5 + 10)
    dataset_id = dataset(api, ingestor, "d.npz", buffer.getvalue())
    response = api[0].post(
        "/v1/jobs", json=classifier(dataset_id, "sparse_categorical_crossentropy", [])
    )
    assert response.status_code == 422
    assert (
        "expected at most 3 classes (the output width), received 5"
        in response.json()["error"]["message"]
    )


def test_large_data_streams_from_memory_maps(
    api: Api, ingestor: DatasetIngestor, runner: JobRunner
) -> None:
    content, _, _ = regression_csv(rows=400)
    dataset_id = dataset(api, ingestor, "d.csv", content, target="y")
    runner.settings = runner.settings.model_copy(update={"in_memory_bytes": 1_000})
    body = regression_job(dataset_id, standardize=True)
    body["fit"] |= {"epochs": 4, "validation_split": 0.2}
    job = run(api, runner, body)
    assert job["result"]["execution"]["data"] == "streamed"
    assert job["result"]["execution"]["data_bytes"] > 1_000
    losses = [e["loss"] for e in job["history"]]
    assert losses[-1] < losses[0] and all("val_loss" in e for e in job["history"])
    assert job["result"]["test_loss"] is not None
