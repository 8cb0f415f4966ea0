"""Fine-tuning: a job that starts from an earlier job's trained model trains to the numbers
of loading that ``.keras`` by hand, freezing the same layers, compiling and fitting."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from tests.factories import tiny_arrays, tiny_job
from worker.runner import JobRunner, RunResult

Api = tuple[TestClient, Settings]


def _submit(client: TestClient, body: dict[str, Any]) -> str:
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _fine_tuning(source: str, train: dict, test: dict, **model: Any) -> dict[str, Any]:
    return {
        "model": {"from_job": source, **model},
        "compile": {"loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.05},
                    "metrics": ["mae"]},
        "fit": {"batch_size": 16, "epochs": 3, "validation_split": 0.25},
        "data": {"train": {"x": train["x"].tolist(), "y": train["y"].tolist()},
                 "test": {"x": test["x"].tolist(), "y": test["y"].tolist()}},
        "seed": 5,
    }  # fmt: skip


def test_a_fine_tuned_job_equals_loading_the_model_and_fitting_it_by_hand(
    api: Api, runner: JobRunner, tmp_path
) -> None:
    client, _ = api
    source = _submit(client, tiny_job(epochs=2))
    assert runner.run(source) == RunResult.succeeded
    source_file = tmp_path / "source.keras"
    source_file.write_bytes(client.get(f"/v1/jobs/{source}/model").content)

    train, test = tiny_arrays(seed=4), tiny_arrays(rows=24, seed=6)
    tuned = _submit(client, _fine_tuning(source, train, test, freeze=[0]))
    job = client.get(f"/v1/jobs/{tuned}").json()
    source_spec = client.get(f"/v1/jobs/{source}").json()["spec"]["model"]
    assert job["spec"]["model"]["layers"] == source_spec["layers"]  # copied: it says what it is
    assert (job["spec"]["model"]["from_job"], job["spec"]["model"]["freeze"]) == (source, [0])
    assert runner.run(tuned) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{tuned}").json()
    summary = job["result"]["model_summary"]
    assert summary["trainable_params"] == 8 + 1  # the first Dense's 40 are frozen

    keras.utils.set_random_seed(5)
    model = keras.models.load_model(source_file, safe_mode=True)
    model.layers[0].trainable = False
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.05), metrics=["mae"])
    history = model.fit(
        train["x"], train["y"], batch_size=16, epochs=3, validation_split=0.25, verbose=0
    )
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    for key, values in history.history.items():
        assert [epoch[key] for epoch in job["history"]] == values, key
    assert job["result"]["test_loss"] == scores["loss"]
    assert job["result"]["test_metrics"] == {"mae": scores["mae"]}

    tuned_file = tmp_path / "tuned.keras"
    tuned_file.write_bytes(client.get(f"/v1/jobs/{tuned}/model").content)
    before = keras.models.load_model(source_file).layers[0].get_weights()
    after = keras.models.load_model(tuned_file).layers[0].get_weights()
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)  # the frozen layer kept its trained weights


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ({"from_job": "job_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
         "expected one of your jobs, received unknown id"),
        ({"from_job": "SOURCE", "freeze": [5]}, "expected freeze to name layers 0..1, received 5"),
        ({"from_job": "SOURCE", "freeze": ["dense"]}, "its layers have no names: use indices"),
        ({"from_job": "QUEUED"}, "expected a succeeded job with a trained model"),
        ({"input_shape": [4], "layers": [{"type": "Dense", "units": 1}], "freeze": [0]},
         "expected freeze only with from_job"),
    ],
)  # fmt: skip
def test_what_cannot_be_fine_tuned_is_refused(
    model: dict[str, Any], fragment: str, api: Api, runner: JobRunner
) -> None:
    client, _ = api
    source = _submit(client, tiny_job(epochs=1))
    queued = _submit(client, tiny_job(epochs=1))
    assert runner.run(source) == RunResult.succeeded
    ids = {"SOURCE": source, "QUEUED": queued}
    named = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in model.items()}
    body = _fine_tuning("x", tiny_arrays(), tiny_arrays(rows=8))
    body["model"] = named
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["error"]["message"]


def test_a_source_trained_with_standardize_fine_tunes_with_its_normalization(
    api: Api, runner: JobRunner, tmp_path
) -> None:
    """The source's model starts with the Normalization adapted to its data: the job's
    layers say so (layer 0, what ``freeze`` counts), and the numbers are load_model's."""
    client, _ = api
    body = tiny_job(epochs=2)
    body["data"]["standardize"] = True
    source = _submit(client, body)
    assert runner.run(source) == RunResult.succeeded
    source_file = tmp_path / "source.keras"
    source_file.write_bytes(client.get(f"/v1/jobs/{source}/model").content)

    train, test = tiny_arrays(seed=4), tiny_arrays(rows=24, seed=6)
    tuned = _submit(client, _fine_tuning(source, train, test, freeze=[0, 1]))
    job = client.get(f"/v1/jobs/{tuned}").json()
    assert job["spec"]["model"]["layers"][0] == {
        "type": "Normalization", "input_shape": [4], "mean": None, "variance": None,
        "invert": False, "name": None, "inputs": None, "trainable": None,
    }  # fmt: skip
    assert runner.run(tuned) == RunResult.succeeded
    job = client.get(f"/v1/jobs/{tuned}").json()
    assert job["result"]["model_summary"]["layers"][0]["params"] == 2 * 4 + 1

    keras.utils.set_random_seed(5)
    model = keras.models.load_model(source_file, safe_mode=True)
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.05), metrics=["mae"])
    history = model.fit(
        train["x"], train["y"], batch_size=16, epochs=3, validation_split=0.25, verbose=0
    )
    for key, values in history.history.items():
        assert [epoch[key] for epoch in job["history"]] == values, key

    again = _fine_tuning(source, train, test)
    again["data"]["standardize"] = True
    answer = client.post("/v1/jobs", json=again)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["loc"] == "data.standardize"
