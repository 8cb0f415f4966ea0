"""End-to-end time of a job through fitq against the same Keras calls run by hand in a warm
process, measured side by side in one run.

    .venv/bin/python -m bench.service_vs_keras [--repeats 5] [--url http://HOST:PORT]

Without --url it starts its own stack on the machine's Redis and PostgreSQL (a database and a
Redis db index of its own): the API under uvicorn and one Celery worker, as compose runs them.
A job's time runs from POST /v1/jobs until a client polling every 10 ms sees it succeeded; its
data was stored by an earlier job and is referenced by dataset id, so the timed request is
small. The hand-run baseline runs in this process after a warm-up run, arrays in memory.
The seed job is also set against ``python examples/seed_example.py`` run cold, imports and
all, as a user without fitq would run it (same seed: the same test loss and MAE)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import keras

from bench.stack import redis_postgres_stack
from examples.seed_data import seed_arrays, seed_job

SEED = 42
REPO_ROOT = Path(__file__).resolve().parents[1]


def hand_run(arrays: dict[str, Any], epochs: int, validation: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    for units in (10, 20, 20, 1):
        model.add(keras.layers.Dense(units))
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        batch_size=32,
        epochs=epochs,
        validation_data=(arrays["x_val"], arrays["y_val"]) if validation else None,
        verbose=0,
    )
    scores = model.evaluate(
        arrays["x_test"], arrays["y_test"], batch_size=32, verbose=0, return_dict=True
    )
    return time.perf_counter() - started, scores


def service_run(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict]:
    started = time.perf_counter()
    job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
    return elapsed, job


def by_reference(
    client: httpx.Client, arrays: dict[str, Any], epochs: int, validation: bool
) -> dict:
    """Store the data once through a first (warm-up) job; later jobs reference its datasets."""
    if not validation:
        arrays = {k: v for k, v in arrays.items() if not k.endswith("_val")}
    body = seed_job(arrays, epochs=epochs, seed=SEED)
    _, job = service_run(client, body)
    body["data"] = {
        split: {"dataset_id": ref["dataset_id"]}
        for split, ref in job["spec"]["data"].items()
        if ref
    }
    return body


def measure(
    client: httpx.Client, name: str, arrays: dict, epochs: int, validation: bool, repeats: int
) -> dict:
    body = by_reference(client, arrays, epochs, validation)
    hand_run(arrays, epochs, validation)  # warm-up: tracing, allocator
    hand_times, service_times = [], []
    identical = True
    for _ in range(repeats):
        seconds, scores = hand_run(arrays, epochs, validation)
        hand_times.append(seconds)
        seconds, job = service_run(client, body)
        service_times.append(seconds)
        identical &= job["result"]["test_loss"] == scores["loss"]
        identical &= job["result"]["test_metrics"]["mae"] == scores["mae"]
    hand, service = statistics.median(hand_times), statistics.median(service_times)
    return {
        "case": name,
        "hand_s": hand,
        "service_s": service,
        "ratio": service / hand,
        "overhead_ms": (service - hand) * 1000,
        "identical": identical,
    }


def cold_script(repeats: int) -> dict:
    """``python examples/seed_example.py`` from a cold start (imports included), as a user
    without fitq runs it; wall seconds and the test loss / MAE it prints (every digit)."""
    times, printed = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        printed = subprocess.run(
            [sys.executable, str(REPO_ROOT / "examples" / "seed_example.py"), "--json"],
            capture_output=True, text=True, check=True, env={**os.environ},
        ).stdout  # fmt: skip
        times.append(time.perf_counter() - started)
    scores = json.loads(printed.strip().splitlines()[-1])
    return {
        "seconds": statistics.median(times),
        "loss": scores["test_loss"],
        "mae": scores["test_metrics"]["mae"],
    }


def run(repeats: int, url: str | None = None) -> dict:
    """The two warm cases (``rows``) and the seed job against the cold script (``cold``)."""
    with ExitStack() as cleanup:
        if url is None:
            stack = redis_postgres_stack(cleanup)
            stack.start_worker()
            url = stack.base_url
        seed = seed_arrays()
        tiny = seed_arrays(rows=(32, 0, 32))
        with httpx.Client(base_url=url, timeout=120) as client:
            seed_row = measure(
                client, "seed job (1,000 rows, 10 epochs, validation)", seed, 10, True, repeats
            )
            tiny_row = measure(client, "1 epoch, 32 rows", tiny, 1, False, repeats)
            _, job = service_run(client, by_reference(client, seed, 10, True))
    cold = cold_script(repeats)
    result = job["result"]
    cold["same_numbers"] = (
        result["test_loss"] == cold["loss"] and result["test_metrics"]["mae"] == cold["mae"]
    )
    cold["ratio"] = seed_row["service_s"] / cold["seconds"]
    return {"rows": [seed_row, tiny_row], "cold": cold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--url", help="a running fitq API; default: start one on Redis + PostgreSQL"
    )
    args = parser.parse_args()
    measured = run(args.repeats, args.url)
    print(f"median of {args.repeats}; service = POST until a 10 ms poll sees succeeded")
    print(
        "| case | hand-run Keras (s) | fitq (s) | fitq / hand-run | overhead (ms) | same numbers |"
    )
    print("|---|---|---|---|---|---|")
    for r in measured["rows"]:
        print(
            f"| {r['case']} | {r['hand_s']:.3f} | {r['service_s']:.3f} | {r['ratio']:.2f}x "
            f"| {r['overhead_ms']:.0f} | {'yes' if r['identical'] else 'NO'} |"
        )
    cold = measured["cold"]
    print(
        f"| seed job vs the cold script (python examples/seed_example.py) | {cold['seconds']:.3f} "
        f"| {measured['rows'][0]['service_s']:.3f} | {cold['ratio']:.2f}x | "
        f"| {'yes' if cold['same_numbers'] else 'NO'} |"
    )


if __name__ == "__main__":
    main()
