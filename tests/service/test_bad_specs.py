"""A table of bad specs: each is refused at submit with 422, the field's path, and a message
saying what was expected and what was received; nothing is queued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from tests.factories import tiny_arrays, tiny_job

Body = dict[str, Any]


def layers(*specs: dict[str, Any], shape: list[int] | None = None) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        body["model"] = {"input_shape": shape or [4], "layers": list(specs)}

    return apply


def setting(path: str, value: Any) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return apply


def classes(n: int, rows: int = 64) -> Callable[[Body], None]:
    """Train on integer labels 0..n-1 (as floats, the way JSON carries them)."""

    def apply(body: Body) -> None:
        body["data"]["train"]["y"] = [float(i % n) for i in range(rows)]

    return apply


def both(*changes: Callable[[Body], None]) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        for change in changes:
            change(body)

    return apply


def seq(steps: int = 10, features: int = 3) -> Callable[[Body], None]:
    """Sequence data: x of shape (64, steps, features)."""

    def apply(body: Body) -> None:
        x = tiny_arrays(rows=64 * steps, features=features)["x"].reshape(64, steps, features)
        body["data"]["train"]["x"] = x.tolist()

    return apply


DENSE1 = {"type": "Dense", "units": 1}
CASES: list[tuple[str, Callable[[Body], None], str, str]] = [
    # --- pydantic: fields, ranges, allowlists -------------------------------------------
    ("unknown top-level field", setting("priority", 1), "priority", "unknown field"),
    ("unknown layer type", layers({"type": "Lambda"}), "model.layers.0", "received 'Lambda'"),
    ("misspelt layer type", layers({"type": "Dence", "units": 1}), "model.layers.0",
     "received 'Dence' (did you mean 'Dense'?)"),
    ("layer without type", layers({"units": 1}), "model.layers.0", "expected a 'type' field"),
    ("unknown layer argument", layers({"type": "Dense", "units": 1, "kernel": "x"}),
     "model.layers.0.kernel", "unknown field"),
    ("zero units", layers({"type": "Dense", "units": 0}), "model.layers.0.units", "greater than or equal to 1"),
    ("units not a number", layers({"type": "Dense", "units": "ten"}), "model.layers.0.units", "expected an integer (a JSON number, not a string: no quotes), received a string ('ten')"),
    ("unknown activation", layers({"type": "Dense", "units": 1, "activation": "mish"}),
     "model.layers.0.activation", "'relu'"),
    ("unknown initializer", layers({"type": "Dense", "units": 1, "kernel_initializer": "x"}),
     "model.layers.0.kernel_initializer", "'glorot_uniform'"),
    ("negative l2", layers({"type": "Dense", "units": 1, "kernel_regularizer": {"l2": -1}}),
     "model.layers.0.kernel_regularizer.l2", "greater than or equal to 0"),
    ("dropout rate 1", layers({"type": "Dropout", "rate": 1.0}, DENSE1), "model.layers.0.rate", "less than 1"),
    ("unknown padding", layers({"type": "Conv1D", "filters": 1, "kernel_size": 1, "padding": "full"},
     shape=[4, 1]), "model.layers.0.padding", "'valid'"),
    ("kernel size 0", layers({"type": "Conv2D", "filters": 1, "kernel_size": 0}, shape=[4, 4, 1]),
     "model.layers.0.kernel_size", "greater than or equal to 1"),
    ("reshape with two -1", layers({"type": "Reshape", "target_shape": [-1, -1]}, DENSE1),
     "model.layers.0.target_shape", "at most one -1"),
    ("reshape with 0", layers({"type": "Reshape", "target_shape": [0, 4]}, DENSE1),
     "model.layers.0.target_shape", "dimensions ≥ 1"),
    ("no layers", layers(), "model.layers", "at least 1 item"),
    ("input shape twice", lambda b: b["model"].update(input_shape=[4]), "model",
     "received both"),
    ("input shape on a later layer", layers(DENSE1, {"type": "Dense", "units": 1, "input_shape": [1]}),
     "model", "received it on layers.1"),
    ("negative input dim", lambda b: b["model"]["layers"][0].update(input_shape=[-4]),
     "model.layers.0.input_shape.0", "greater than or equal to 1"),
    ("unknown loss", setting("compile.loss", "hingee"), "compile.loss",
     "received 'hingee' (did you mean 'hinge'?)"),
    ("loss argument of another loss", setting("compile.loss", {"type": "mse", "delta": 1.0}),
     "compile.loss.delta", "unknown field"),
    ("huber delta 0", setting("compile.loss", {"type": "huber", "delta": 0}), "compile.loss.delta",
     "greater than 0"),
    ("unknown optimizer", setting("compile.optimizer", "adamux"), "compile.optimizer",
     "received 'adamux' (did you mean 'adamax'?)"),
    ("negative learning rate", setting("compile.optimizer", {"type": "sgd", "learning_rate": -0.1}),
     "compile.optimizer.learning_rate", "greater than 0"),
    ("momentum on adam", setting("compile.optimizer", {"type": "adam", "momentum": 0.9}),
     "compile.optimizer.momentum", "unknown field"),
    ("both clips", setting("compile.optimizer", {"type": "sgd", "clipnorm": 1, "clipvalue": 1}),
     "compile.optimizer", "at most one of clipnorm, clipvalue and global_clipnorm, received clipnorm and clipvalue"),
    ("unknown metric", setting("compile.metrics", ["f1"]), "compile.metrics.0", "f1_score, received 'f1'"),
    ("duplicate metric", setting("compile.metrics", ["mae", "mae"]), "compile.metrics", "'mae' twice"),
    ("batch size 0", setting("fit.batch_size", 0), "fit.batch_size", "greater than or equal to 1"),
    ("epochs not integer", setting("fit.epochs", 2.5), "fit.epochs", "expected an integer, received a number (2.5)"),
    ("epochs as text", setting("fit.epochs", "10"), "fit.epochs", "a JSON number, not a string"),
    ("seed as boolean", setting("seed", False), "seed", "expected an integer, received a boolean (False)"),
    ("shuffle as text", setting("fit.shuffle", "yes"), "fit.shuffle", "expected true or false, received a string ('yes')"),
    ("units as boolean", layers({"type": "Dense", "units": True}), "model.layers.0.units", "received a boolean"),
    ("shape of text", layers({"type": "Dense", "units": 1}, shape=["4"]), "model.input_shape.0", "received a string ('4')"),
    ("validation_split 1", setting("fit.validation_split", 1.0), "fit.validation_split", "less than 1"),
    ("patience negative", setting("fit.early_stopping", {"patience": -1}),
     "fit.early_stopping.patience", "greater than or equal to 0"),
    ("seed too large", setting("seed", 2**40), "seed", "less than or equal to"),
    ("spec version 2", setting("spec_version", 2), "spec_version", "1"),
    ("test_split 0", setting("data.test_split", 0), "data.test_split", "greater than 0"),
    ("test_split and test", both(setting("data.test_split", 0.2),
     setting("data.test", {"x": [[0.0] * 4], "y": [0.0]})), "data", "received both"),
    ("validation_split and validation", both(setting("fit.validation_split", 0.2),
     setting("data.validation", {"x": [[0.0] * 4], "y": [0.0]})), "body", "received both"),
    ("ragged x", setting("data.train", {"x": [[1.0, 2.0, 3.0, 4.0], [1.0]], "y": [1.0, 2.0]}),
     "data.train.x", "ragged rows"),
    ("x rows ≠ y rows", setting("data.train", {"x": [[1.0] * 4], "y": [1.0, 2.0]}), "data.train",
     "as many rows in y as in x (1), received 2"),
    ("string in y", setting("data.train", {"x": [[1.0] * 4], "y": ["a"]}), "data.train.y", "non-numeric"),
    ("malformed dataset id", setting("data.test", {"dataset_id": "../x"}), "data.test.dataset_id",
     "expected a dataset id like 'ds_…'"),
    # --- shape and parameter checks ------------------------------------------------------
    ("x rows of the wrong width", layers(DENSE1, shape=[5]), "data.train.x",
     "expected rows of shape [5] (the model's input), received rows of shape [4]"),
    ("output width ≠ targets", layers({"type": "Dense", "units": 3}), "data.train.y",
     "expected targets of shape [3] (the model's output), received targets of shape []"),
    ("Conv2D on flat rows", layers({"type": "Conv2D", "filters": 1, "kernel_size": 2}, DENSE1),
     "model.layers.0", "Conv2D expected an input of rank 4 (batch, height, width, channels), received shape (None, 4)"),
    ("LSTM on flat rows", layers({"type": "LSTM", "units": 2}), "model.layers.0",
     "LSTM expected an input of rank 3"),
    ("GlobalAveragePooling1D on flat rows", layers({"type": "GlobalAveragePooling1D"}, DENSE1),
     "model.layers.0", "expected an input of rank 3"),
    ("kernel larger than the input", both(seq(), layers({"type": "Conv1D", "filters": 1,
     "kernel_size": 11}, {"type": "Flatten"}, DENSE1, shape=[10, 3])), "model.layers.0",
     "expected an input large enough for its window"),
    ("pool larger than the input", both(seq(), layers({"type": "MaxPooling1D", "pool_size": 11},
     {"type": "Flatten"}, DENSE1, shape=[10, 3])), "model.layers.0", "output of size (None, 0, 3)"),
    ("reshape to the wrong size", layers({"type": "Reshape", "target_shape": [3]}, DENSE1),
     "model.layers.0", "expected a target shape of 4 values"),
    ("reshape -1 that does not divide", layers({"type": "Reshape", "target_shape": [3, -1]}, DENSE1),
     "model.layers.0", "whose size divides 4"),
    ("embedding not first", layers(DENSE1, {"type": "Embedding", "input_dim": 5, "output_dim": 2}),
     "model.layers.1", "Embedding only as the first layer"),
    ("token ids out of range", layers({"type": "Embedding", "input_dim": 3, "output_dim": 2},
     {"type": "Flatten"}, DENSE1), "data.train.x", "integer token ids in [0, 3)"),
    ("sparse labels with one output", both(classes(3), setting("compile.loss",
     "sparse_categorical_crossentropy")), "model.layers", "output of width ≥ 2"),
    ("sparse labels out of range", both(classes(5), setting("compile.loss",
     "sparse_categorical_crossentropy"), layers({"type": "Dense", "units": 3})), "data.train.y",
     "integer class labels in [0, 3), received values in [0, 4]"),
    ("sparse labels not integers", both(setting("compile.loss", "sparse_categorical_crossentropy"),
     layers({"type": "Dense", "units": 3})), "data.train.y", "that are not all integers"),
    ("categorical with width 1", setting("compile.loss", "categorical_crossentropy"),
     "model.layers", "use binary_crossentropy for two classes"),
    ("binary targets outside [0, 1]", both(classes(3), setting("compile.loss",
     "binary_crossentropy")), "data.train.y", "expected targets in [0, 1], received values in [0, 2]"),
    ("monitor not logged", setting("fit.early_stopping", {"monitor": "val_mae"}),
     "fit.early_stopping.monitor", "expected one of 'loss', 'mae', 'mse'"),
    ("test_split leaving no rows", setting("data.test_split", 0.99), "data.test_split",
     "leaves rows on both sides"),
    ("over the parameter budget", layers({"type": "Dense", "units": 100_000}, DENSE1),
     "model.layers", "expected at most 1,000 parameters (FITQ_MAX_PARAMS)"),
]  # fmt: skip


@pytest.fixture
def client(embedded_settings: Settings) -> TestClient:
    from fitq.store.migrate import upgrade
    from service.main import create_app

    settings = embedded_settings.model_copy(update={"max_params": 1_000})
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("change", "loc", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_spec_is_refused_with_field_and_reason(
    client: TestClient, change: Callable[[Body], None], loc: str, fragment: str
) -> None:
    body = tiny_job()
    change(body)
    for path in ("/v1/validate", "/v1/jobs"):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert error["details"][0]["loc"] == loc, error
        assert fragment in error["details"][0]["message"], error
    assert client.get("/v1/jobs").json()["data"] == []  # nothing was queued


def test_the_table_is_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
