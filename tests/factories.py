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
