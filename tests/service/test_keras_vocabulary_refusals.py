"""What the Keras vocabulary refuses, and how: a 422 naming the field, what was expected and
what was received (``POST /v1/validate``, the same checks as a submission)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from tests.factories import tiny_arrays, tiny_job


def _classes(width: int = 3) -> dict[str, Any]:
    arrays = tiny_arrays(rows=48)
    arrays["y"] = (arrays["y"] * 10 % width).astype(int).astype("float32")
    body = tiny_job(train=arrays)
    body["model"]["layers"][-1] = {"type": "Dense", "units": width, "activation": "softmax"}
    body["compile"] = {"loss": "sparse_categorical_crossentropy"}
    return body


def _patched(body: dict[str, Any], **parts: dict[str, Any]) -> dict[str, Any]:
    for key, value in parts.items():
        body[key] = {**body.get(key, {}), **value}
    return body


SCHEDULE = {
    "class_name": "ExponentialDecay",
    "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
}

CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "a misspelt loss": (
        _patched(tiny_job(), compile={"loss": "mean_sqared_error"}),
        "compile.loss",
        "received 'mean_sqared_error' (did you mean 'mean_squared_error'?)",
    ),
    "a misspelt metric": (
        _patched(tiny_job(), compile={"metrics": ["f1score"]}),
        "compile.metrics.0",
        "received 'f1score' (did you mean 'f1_score'?)",
    ),
    "a misspelt optimizer": (
        _patched(tiny_job(), compile={"optimizer": "nadamm"}),
        "compile.optimizer",
        "received 'nadamm' (did you mean 'nadam'?)",
    ),
    "two metrics of one name": (
        _patched(tiny_job(), compile={"metrics": ["mae", {"type": "auc", "name": "mae"}]}),
        "compile.metrics",
        "expected each metric name once, received 'mae' twice",
    ),
    "a schedule's values one short": (
        _patched(tiny_job(), compile={"optimizer": {"type": "sgd", "learning_rate": {
            "class_name": "PiecewiseConstantDecay",
            "config": {"boundaries": [10, 20], "values": [0.1, 0.01]}}}}),
        "compile.optimizer.learning_rate.config",
        "expected one value more than boundaries (3), received 2 values",
    ),
    "an unknown schedule": (
        _patched(tiny_job(), compile={"optimizer": {"type": "adam", "learning_rate": {
            "class_name": "CyclicDecay", "config": {}}}}),
        "compile.optimizer.learning_rate",
        "one of ExponentialDecay, InverseTimeDecay, PolynomialDecay, PiecewiseConstantDecay, "
        "CosineDecay, CosineDecayRestarts, received 'CyclicDecay'",
    ),
    "class_weight with a regression loss": (
        _patched(tiny_job(), fit={"class_weight": {"0": 2.0}}),
        "fit.class_weight",
        "expected a classification loss with class_weight, received 'mse'",
    ),
    "class_weight for a class the output lacks": (
        _patched(_classes(), fit={"class_weight": {"1": 2.0, "3": 1.5}}),
        "fit.class_weight",
        "expected class indices in [0, 3) (sparse_categorical_crossentropy with an output of "
        "width 3), received 3",
    ),
    "ReduceLROnPlateau over a schedule": (
        _patched(
            tiny_job(optimizer={"type": "adam", "learning_rate": SCHEDULE}),
            fit={"callbacks": [{"type": "ReduceLROnPlateau", "monitor": "loss"}]},
        ),
        "fit.callbacks.0",
        "ReduceLROnPlateau expected a number as compile.optimizer.learning_rate",
    ),
    "a callback monitoring what is not logged": (
        _patched(tiny_job(), fit={"callbacks": [{"type": "ReduceLROnPlateau"}]}),
        "fit.callbacks.0.monitor",
        "expected one of 'loss', 'mae', 'mse' (what this job logs), received 'val_loss'",
    ),
    "a callback twice": (
        _patched(tiny_job(), fit={"callbacks": [{"type": "TerminateOnNaN"}] * 2}),
        "fit",
        "expected each callback once, received TerminateOnNaN twice",
    ),
    "f1_score of several classes without an average": (
        _patched(_classes(), compile={"metrics": ["f1_score"]}),
        "compile.metrics.0",
        "f1_score without an average reports one value per class",
    ),
    "f1_score on scalar targets": (
        _patched(tiny_job(), compile={"loss": "binary_crossentropy", "metrics": ["f1_score"]}),
        "compile.metrics.0",
        "f1_score expected 2-D targets of shape [rows, 1]",
    ),
    "hinge targets outside [-1, 1]": (
        _patched(tiny_job(), compile={"loss": "hinge"}),
        "data.train.y",
        "hinge expected targets -1 or 1 (or 0 or 1), received values in",
    ),
    "a sparse metric on one-hot targets": (
        _patched(
            _classes(),
            compile={"loss": "categorical_crossentropy",
                     "metrics": [{"type": "sparse_top_k_categorical_accuracy", "k": 2}]},
        ),
        "compile.metrics",
        "sparse_top_k_categorical_accuracy expected integer class labels",
    ),
    "a graph layer called on a name not defined yet": (
        _patched(tiny_job(), model={"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "a", "units": 4, "inputs": ["b"]},
            {"type": "Dense", "name": "b", "units": 1}]}),
        "model",
        "expected layers.0.inputs to name model inputs or earlier layers, received 'b'",
    ),
    "a graph layer leading nowhere": (
        _patched(tiny_job(), model={"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "side", "units": 4},
            {"type": "Dense", "name": "out", "units": 1, "inputs": ["x"]}]}),
        "model",
        "expected every input and layer to lead to an output, received 'side' unused",
    ),
    "a merge layer in a stack": (
        _patched(tiny_job(), model={"input_shape": [4], "layers": [
            {"type": "Dense", "units": 4}, {"type": "Add"}]}),
        "model",
        "a layer of several inputs needs a graph model (inputs, outputs)",
    ),
    "a merge of shapes that do not broadcast": (
        _patched(tiny_job(), model={"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "a", "units": 3},
            {"type": "Add", "name": "sum", "inputs": ["a", "x"]},
            {"type": "Dense", "name": "out", "units": 1}]}),
        "model.layers.1.inputs",
        "Add expected inputs of one shape (or sizes of 1 to broadcast), received (None, 3), "
        "(None, 4)",
    ),
    "Subtract of three": (
        _patched(tiny_job(), model={"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "a", "units": 4},
            {"type": "Subtract", "name": "d", "inputs": ["a", "x", "x"]},
            {"type": "Dense", "name": "out", "units": 1}]}),
        "model.layers.1.inputs",
        "Subtract expected 2 inputs, received 3",
    ),
    "two model inputs, one array": (
        _patched(tiny_job(), model={"inputs": [{"name": "a", "shape": [2]},
                                               {"name": "b", "shape": [2]}],
                                    "layers": [{"type": "Concatenate", "name": "c",
                                                "inputs": ["a", "b"]}]}),
        "data.train.x",
        "expected an object of arrays keyed by the model's inputs ('a', 'b'), received one array",
    ),
    "two model inputs, the first layer unwired": (
        _patched(tiny_job(), model={"inputs": [{"name": "a", "shape": [2]},
                                               {"name": "b", "shape": [2]}],
                                    "layers": [{"type": "Dense", "name": "c", "units": 1}]}),
        "model",
        "expected layers.0.inputs to name the model input(s) it is called on",
    ),
    "EarlyStopping twice": (
        _patched(tiny_job(), fit={"early_stopping": {"patience": 1},
                                  "callbacks": [{"type": "EarlyStopping"}]}),
        "fit",
        "expected EarlyStopping in fit.early_stopping or fit.callbacks, received both",
    ),
    "ModelCheckpoint on a metric not logged": (
        _patched(tiny_job(), fit={"callbacks": [{"type": "ModelCheckpoint", "monitor": "val_acc",
                                                 "save_best_only": True}]}),
        "fit.callbacks.0.monitor",
        "received 'val_acc'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_refused_in_the_users_words(name: str, api: tuple[TestClient, Settings]) -> None:
    body, field, fragment = CASES[name]
    client, _ = api
    answer = client.post("/v1/validate", json=body)
    assert answer.status_code == 422, answer.json()
    error = answer.json()["error"]
    assert fragment in error["message"], error["message"]
    assert any(detail["loc"].startswith(field) for detail in error["details"]), error["details"]


def test_keras_names_and_aliases_are_stored_as_fitqs_names(
    api: tuple[TestClient, Settings],
) -> None:
    client, _ = api
    body = _patched(
        tiny_job(),
        compile={"loss": "MeanSquaredError", "metrics": ["mean_absolute_error"],
                 "optimizer": {"type": "Adam", "learning_rate": SCHEDULE}},
    )  # fmt: skip
    answer = client.post("/v1/validate", json=body)
    assert answer.status_code == 200, answer.json()
    job = client.post("/v1/jobs", json=body).json()
    compiled = job["spec"]["compile"]
    assert compiled["loss"]["type"] == "mse" and compiled["optimizer"]["type"] == "adam"
    assert compiled["optimizer"]["learning_rate"]["config"]["decay_steps"] == 10
    assert compiled["metrics"] == ["mean_absolute_error"]  # the key its history will use
