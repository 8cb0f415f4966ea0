"""Training throughput of a fitq worker against bare ``model.fit`` on the same arrays, and
many small jobs through two worker processes against the same jobs one after another in one
bare process.

    .venv/bin/python -m bench.worker_throughput [--rows 100000] [--epochs 2] [--jobs 200]

Throughput: the seed model (784→10→20→20→1, mse/adam, batch 32) on ``rows`` x 784 random
float32 rows, no validation or test data. Bare: ``model.fit`` in this (warm) process, timed
around the call. fitq: the same arrays uploaded once as a dataset (SDK, ``.npz``), then a job
whose ``result.train_seconds`` is the worker's own time around its ``fit`` — what the worker
adds to Keras (callbacks, progress writes, cancel checks), not the HTTP round trips.

Many jobs: ``jobs`` one-epoch seed jobs (1,000 rows by dataset id) submitted at once to an API
with two training worker processes; timed from the first POST until every job has
succeeded. Bare: the same build, compile, fit and evaluate ``jobs`` times in a row in this
process. Both on Redis + PostgreSQL, started here."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np

from bench.stack import redis_postgres_stack
from examples.seed_data import SEED_MODEL_LAYERS, seed_arrays
from fitq.client import Client

BATCH = 32


def seed_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(784,))])
    for layer in SEED_MODEL_LAYERS:
        model.add(keras.layers.Dense(layer["units"]))
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    return model


def bare_fit_seconds(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    model = seed_model(0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return time.perf_counter() - started


def job_body(dataset_id: str, epochs: int, *, test: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"train": {"dataset_id": dataset_id}}
    if test is not None:
        data["test"] = {"dataset_id": test}
    return {
        "model": {"layers": SEED_MODEL_LAYERS},
        "compile": {"loss": "mse", "optimizer": "adam", "metrics": ["mae"]},
        "fit": {"batch_size": BATCH, "epochs": epochs},
        "data": data,
        "seed": 0,
    }


def throughput(client: Client, rows: int, epochs: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.random((rows, 784), dtype=np.float32)
    y = (x @ (rng.standard_normal(784) / 28).astype(np.float32)).astype(np.float32)
    dataset = client.datasets.upload((x, y), name="throughput.npz")
    dataset = client.datasets.wait(dataset.id, timeout=600)
    if dataset.status != "ready":
        raise RuntimeError(f"dataset {dataset.id} ended {dataset.status}")
    bare_fit_seconds(x[:4096], y[:4096], 1)  # warm-up: this process's first trace
    bare, served = [], []
    for _ in range(repeats):
        bare.append(bare_fit_seconds(x, y, epochs))
        job = client.jobs.create(job_body(dataset.id, epochs))
        job = client.jobs.wait(job.id, timeout=1800, poll=0.2)
        if job.status != "succeeded" or job.result is None:
            raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}")
        served.append(job.result.train_seconds)
        execution = job.result.execution
    samples = rows * epochs
    bare_rate = samples / statistics.median(bare)
    served_rate = samples / statistics.median(served)
    return {
        "rows": rows,
        "epochs": epochs,
        "bare_samples_per_s": bare_rate,
        "fitq_samples_per_s": served_rate,
        "ratio": served_rate / bare_rate,
        "steps_per_execution": execution.get("steps_per_execution"),
    }


def many_jobs(client: Client, count: int) -> dict[str, Any]:
    arrays = seed_arrays()
    train = client.datasets.upload((arrays["x_train"], arrays["y_train"]), name="train.npz")
    test = client.datasets.upload((arrays["x_test"], arrays["y_test"]), name="test.npz")
    for dataset in (train, test):
        client.datasets.wait(dataset.id, timeout=120)
    body = job_body(train.id, 1, test=test.id)
    bare_started = time.perf_counter()
    for index in range(count):
        model = seed_model(index)
        model.fit(arrays["x_train"], arrays["y_train"], batch_size=BATCH, epochs=1, verbose=0)
        model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=BATCH, verbose=0)
    bare_seconds = time.perf_counter() - bare_started
    started = time.perf_counter()
    ids = [client.jobs.create({**body, "seed": index}).id for index in range(count)]
    for job_id in ids:
        job = client.jobs.wait(job_id, timeout=1800, poll=0.1)
        if job.status != "succeeded":
            raise RuntimeError(f"job {job_id} ended {job.status}: {job.error}")
    served_seconds = time.perf_counter() - started
    return {
        "jobs": count,
        "bare_jobs_per_min": 60 * count / bare_seconds,
        "fitq_jobs_per_min": 60 * count / served_seconds,
        "ratio": bare_seconds / served_seconds,
    }


def run(rows: int, epochs: int, jobs: int, repeats: int) -> dict[str, Any]:
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup, FITQ_MAX_ACTIVE_JOBS=str(max(jobs, 100)))
        stack.start_worker("ingest", "datasets")
        stack.start_worker("train")
        client = cleanup.enter_context(Client(stack.base_url, timeout=600))
        measured = {"throughput": throughput(client, rows, epochs, repeats)}
        stack.start_worker("train2")
        measured["many_jobs"] = many_jobs(client, jobs)
        return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    measured = run(args.rows, args.epochs, args.jobs, args.repeats)
    t, m = measured["throughput"], measured["many_jobs"]
    print("| measure | bare Keras | fitq | fitq / bare |\n|---|---|---|---|")
    print(
        f"| samples/s, {t['rows']:,} x 784, {t['epochs']} epochs (median of {args.repeats}) "
        f"| {t['bare_samples_per_s']:,.0f} | {t['fitq_samples_per_s']:,.0f} | {t['ratio']:.2f}x |"
    )
    print(
        f"| jobs/min, {m['jobs']} one-epoch seed jobs (fitq: 2 worker processes) "
        f"| {m['bare_jobs_per_min']:,.1f} | {m['fitq_jobs_per_min']:,.1f} | {m['ratio']:.2f}x |"
    )


if __name__ == "__main__":
    main()
