"""Small specs and arrays for tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def tiny_arrays(rows: int = 64, features: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, features), dtype=np.float32)
    y = (x.sum(axis=1) + 0.1 * rng.standard_normal(rows)).astype(np.float32)
    return {"x": x, "y": y}


def tiny_job(
    epochs: int = 2, features: int = 4, optimizer: Any = "adam", seed: int = 7, **data: Any
) -> dict[str, Any]:
    train = data.get("train") or tiny_arrays(features=features)
    body: dict[str, Any] = {
        "model": {
            "layers": [
                {"type": "Dense", "units": 8, "input_shape": [features], "activation": "relu"},
                {"type": "Dense", "units": 1},
            ]
        },
        "compile": {"loss": "mse", "optimizer": optimizer, "metrics": ["mae", "mse"]},
        "fit": {"batch_size": 16, "epochs": epochs},
        "data": {"train": {"x": train["x"].tolist(), "y": train["y"].tolist()}},
        "seed": seed,
    }
    test = data.get("test")
    if test is not None:
        body["data"]["test"] = {"x": test["x"].tolist(), "y": test["y"].tolist()}
    return body


def diverging_job(epochs: int = 5) -> dict[str, Any]:
    """SGD with a huge learning rate: the loss turns NaN or infinite within an epoch or two."""
    arrays = tiny_arrays(features=4)
    arrays["x"] = arrays["x"] * 100
    return tiny_job(epochs=epochs, optimizer={"type": "sgd", "learning_rate": 10.0}, train=arrays)


def image_arrays(rows: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    """8x8x1 images; the label says whether the upper half is brighter (3 classes by margin)."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 8, 8, 1), dtype=np.float32)
    diff = x[:, :4].mean(axis=(1, 2, 3)) - x[:, 4:].mean(axis=(1, 2, 3))
    y = np.digitize(diff, [-0.03, 0.03]).astype(np.float32)
    return {"x": x, "y": y}


CNN_LAYERS: list[dict[str, Any]] = [
    {
        "type": "Conv2D",
        "filters": 4,
        "kernel_size": 3,
        "activation": "relu",
        "input_shape": [8, 8, 1],
    },
    {"type": "MaxPooling2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
]


def cnn_job(epochs: int = 3, seed: int = 5) -> dict[str, Any]:
    train, test = image_arrays(), image_arrays(rows=32, seed=1)
    return {
        "model": {"layers": CNN_LAYERS},
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": {"type": "adam", "learning_rate": 0.01},
            "metrics": ["accuracy"],
        },
        "fit": {"batch_size": 16, "epochs": epochs},
        "data": {
            "train": {"x": train["x"].tolist(), "y": train["y"].tolist()},
            "test": {"x": test["x"].tolist(), "y": test["y"].tolist()},
        },
        "seed": seed,
    }


def sequence_arrays(rows: int = 96, steps: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Sequences of 10 steps x 2 features; the target is the last step's running sum."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, steps, 2)).astype(np.float32)
    y = x[:, :, 0].sum(axis=1, dtype=np.float32) * 0.1
    return {"x": x, "y": y}


LSTM_LAYERS: list[dict[str, Any]] = [
    {"type": "LSTM", "units": 8, "input_shape": [10, 2]},
    {"type": "Dense", "units": 1},
]


def lstm_job(epochs: int = 3, seed: int = 9) -> dict[str, Any]:
    train = sequence_arrays()
    return {
        "model": {"layers": LSTM_LAYERS},
        "compile": {"loss": "huber", "optimizer": "rmsprop", "metrics": ["mae", "rmse"]},
        "fit": {"batch_size": 16, "epochs": epochs, "validation_split": 0.25},
        "data": {"train": {"x": train["x"].tolist(), "y": train["y"].tolist()}, "test_split": 0.2,
                 "shuffle_before_split": True},
        "seed": seed,
    }  # fmt: skip
