"""A large upload end to end: generate a CSV of at least 1 GB, upload it, wait for the ingest,
train one epoch on it, and report memory and throughput.

    .venv/bin/python -m bench.datasets [--mb 1024] [--in-memory-mb 256]

It starts its own API, ingest worker and training worker on the machine's Redis and PostgreSQL
(a database and a Redis db index of its own), with ``FITQ_IN_MEMORY_BYTES`` below the array's
size so the epoch streams from the memory maps. Memory is sampled from /proc every 20 ms:
the API's resident set during the upload, the training process's during the job (anonymous
memory and file-backed pages of the memory maps reported apart)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from bench.stack import redis_postgres_stack

FEATURES = 50


def write_csv(path: Path, megabytes: int) -> int:
    """Rows of 50 features and a target; a 16 MB block of distinct rows, repeated."""
    rng = np.random.default_rng(0)
    x = rng.random((30_000, FEATURES))
    y = x @ rng.standard_normal(FEATURES)
    block = "\n".join(",".join(f"{v:.6f}" for v in (*row, t)) for row, t in zip(x, y, strict=True))
    block_bytes = (block + "\n").encode()
    with open(path, "wb") as f:
        f.write((",".join([*(f"f{i}" for i in range(FEATURES)), "y"]) + "\n").encode())
        while f.tell() < megabytes * 2**20:
            f.write(block_bytes)
    return path.stat().st_size


def memory(pid: int) -> dict[str, int]:
    """Resident set, anonymous and file-backed parts, in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


class Sampler:
    """Peak memory of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = memory(pid)
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                now = memory(self.pid)
            except FileNotFoundError:
                return
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self, key: str) -> int:
        return self.peak[key] - self.before[key]


def pool_child(pid: int) -> int:
    """The Celery prefork child that trains (the worker's only child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="CSV size in MiB")
    parser.add_argument("--in-memory-mb", type=int, default=256, help="FITQ_IN_MEMORY_BYTES")
    args = parser.parse_args()

    with ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        csv = workdir / "big.csv"
        size = write_csv(csv, args.mb)
        stack = redis_postgres_stack(cleanup, FITQ_IN_MEMORY_BYTES=str(args.in_memory_mb * 2**20))
        stack.start_worker("ingest", "datasets")
        trainer = stack.start_worker("train")
        assert stack.api is not None
        with httpx.Client(base_url=stack.base_url, timeout=3600) as client:
            with Sampler(stack.api.process.pid) as api_memory, open(csv, "rb") as f:
                started = time.perf_counter()
                response = client.post(
                    "/v1/datasets", files={"file": ("big.csv", f)}, data={"target": "y"}
                )
                upload_seconds = time.perf_counter() - started
            dataset_id = response.raise_for_status().json()["id"]
            while (dataset := client.get(f"/v1/datasets/{dataset_id}").json())[
                "status"
            ] == "processing":
                time.sleep(0.2)
            ingest_seconds = time.perf_counter() - started - upload_seconds
            if dataset["status"] != "ready":
                raise SystemExit(f"ingest failed: {dataset['error']}")
            array_bytes = dataset["rows"] * (FEATURES + 1) * 4
            body = {
                "model": {"layers": [
                    {"type": "Dense", "units": 32, "activation": "relu", "input_shape": [FEATURES]},
                    {"type": "Dense", "units": 1},
                ]},
                "compile": {"loss": "mse"},
                "fit": {"batch_size": 4096, "epochs": 1},
                "data": {"train": {"dataset_id": dataset_id}},
                "seed": 1,
            }  # fmt: skip
            child = pool_child(trainer.process.pid)
            with Sampler(child) as worker_memory:
                started = time.perf_counter()
                job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
                while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in (
                    "queued",
                    "running",
                ):
                    time.sleep(0.2)
                train_seconds = time.perf_counter() - started
            if job["status"] != "succeeded":
                raise SystemExit(f"job failed: {job['error']}")

    mib = 2**20
    print(
        f"CSV {size / mib:,.0f} MiB, {dataset['rows']:,} rows x {FEATURES} features; stored arrays {array_bytes / mib:,.0f} MiB"
    )
    print("| measure | value | goal |")
    print("|---|---|---|")
    print(
        f"| upload throughput | {size / mib / upload_seconds:,.0f} MiB/s ({upload_seconds:.1f} s) | |"
    )
    print(
        f"| API peak RSS growth during upload | {api_memory.growth('VmRSS') / mib:,.0f} MiB | < 100 MiB |"
    )
    print(
        f"| ingest (parse, stats, .npy) | {size / mib / ingest_seconds:,.0f} MiB/s ({ingest_seconds:.1f} s) | |"
    )
    print(
        f"| one epoch, batch 4096 ({job['result']['execution']['data']}) | {train_seconds:.1f} s | |"
    )
    anon, total = worker_memory.growth("RssAnon"), worker_memory.growth("VmRSS")
    print(
        f"| training process peak RSS growth / array bytes | {total / array_bytes:.2f}x ({total / mib:,.0f} MiB) | < 1.5x |"
    )
    print(
        f"| of which anonymous memory (file-backed pages are page cache) | {anon / array_bytes:.2f}x ({anon / mib:,.0f} MiB) | |"
    )


if __name__ == "__main__":
    main()
