"""The seed example's data and job, generated from a fixed seed: 1,000 training, 200
validation and 200 test rows of 784 features, with a noisy linear target."""

from __future__ import annotations

from typing import Any

import numpy as np

SEED_MODEL_LAYERS: list[dict[str, Any]] = [
    {"type": "Dense", "units": 10, "input_shape": [784]},
    {"type": "Dense", "units": 20},
    {"type": "Dense", "units": 20},
    {"type": "Dense", "units": 1},
]


def seed_arrays(
    rows: tuple[int, int, int] = (1000, 200, 200), features: int = 784, data_seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(data_seed)
    n = sum(rows)
    x = rng.random((n, features), dtype=np.float32)
    w = (rng.standard_normal(features) / np.sqrt(features)).astype(np.float32)
    y = (x @ w + 0.05 * rng.standard_normal(n)).astype(np.float32)
    a, b = rows[0], rows[0] + rows[1]
    return {
        "x_train": x[:a], "y_train": y[:a],
        "x_val": x[a:b], "y_val": y[a:b],
        "x_test": x[b:], "y_test": y[b:],
    }  # fmt: skip


def seed_job(
    arrays: dict[str, np.ndarray] | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 42,
) -> dict[str, Any]:
    """The seed example as a JobCreate body (JSON-ready)."""
    arrays = arrays if arrays is not None else seed_arrays()
    data: dict[str, Any] = {
        "train": {"x": arrays["x_train"].tolist(), "y": arrays["y_train"].tolist()}
    }
    if "x_val" in arrays:
        data["validation"] = {"x": arrays["x_val"].tolist(), "y": arrays["y_val"].tolist()}
    if "x_test" in arrays:
        data["test"] = {"x": arrays["x_test"].tolist(), "y": arrays["y_test"].tolist()}
    return {
        "model": {"layers": SEED_MODEL_LAYERS},
        "compile": {"loss": "mse", "optimizer": "adam", "metrics": ["mae"]},
        "fit": {"batch_size": batch_size, "epochs": epochs},
        "data": data,
        "seed": seed,
    }


if __name__ == "__main__":  # python -m examples.seed_data > examples/seed_job.json
    import json
    import sys

    json.dump(seed_job(), sys.stdout)
