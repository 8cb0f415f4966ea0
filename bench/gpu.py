"""Training throughput on this host's GPU against its CPU, for the seed model and a small CNN:
what a GPU host runs to see what its workers will do.

    .venv/bin/python -m bench.gpu [--rows 100000] [--epochs 2]

Each (model, device) pair trains a warm-up epoch, then ``--epochs`` timed epochs on synthetic
data in memory (the same arrays on both devices); samples/s is rows x epochs / seconds. On a
host without a GPU only the CPU rows are printed."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf


def seed_model() -> keras.Model:
    """The seed example: 784 → 10 → 20 → 20 → 1, mse / adam / mae."""
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(10, activation="relu"),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    return model


def small_cnn() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


CASES: dict[str, tuple[Callable[[], keras.Model], tuple[int, ...], int]] = {
    "seed model (batch 32)": (seed_model, (784,), 32),
    "small CNN 28x28 (batch 128)": (small_cnn, (28, 28, 1), 128),
}


def samples_per_second(build: Callable[[], keras.Model], x: np.ndarray, y: np.ndarray,
                       batch: int, epochs: int, device: str) -> float:  # fmt: skip
    with tf.device(device):
        keras.utils.set_random_seed(0)
        model = build()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up: tracing, allocation
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        return len(x) * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    devices = ["/CPU:0"] + (["/GPU:0"] if gpus else [])
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name") if gpus else None
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; GPU: {name or 'none'}")
    print(f"{args.rows:,} rows, {args.epochs} timed epochs after one warm-up\n")
    print("| model | device | samples/s | GPU / CPU |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, (build, shape, batch) in CASES.items():
        x = rng.random((args.rows, *shape), dtype=np.float32)
        y = rng.integers(0, 10, args.rows).astype(np.float32)
        cpu = None
        for device in devices:
            rate = samples_per_second(build, x, y, batch, args.epochs, device)
            cpu = cpu or rate
            ratio = f"{rate / cpu:.1f}x" if device != "/CPU:0" else ""
            print(f"| {label} | {device} | {rate:,.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
