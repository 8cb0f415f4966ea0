"""``GET /v1/jobs`` with 10,000 jobs in PostgreSQL: latency of the first page and of a deep
page (by cursor), over HTTP to the API under uvicorn, as a client sees it.

    .venv/bin/python -m bench.job_list [--jobs 10000] [--requests 200]

Jobs are written straight into the store (one tenant holds most of them, others share the
table, a fifth are finished), so the measure is the list query and its JSON, not submitting."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import redis_postgres_stack
from fitq.ids import JOB_PREFIX, new_id
from fitq.spec.job import EXAMPLE_JOB
from fitq.store.db import make_engine, make_session_factory, transaction
from fitq.store.models import Job

SPEC = {
    "model": EXAMPLE_JOB["model"], "compile": EXAMPLE_JOB["compile"], "seed": 7,
    "fit": {"batch_size": 32, "epochs": 10},
    "data": {"train": {"dataset_id": "ds_bench", "rows": 1000, "x_shape": [1000, 2], "y_shape": [1000]}},
}  # fmt: skip


def fill(database_url: str, count: int) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        for i in range(count):
            session.add(
                Job(
                    id=new_id(JOB_PREFIX),
                    tenant_id="default" if i % 10 else f"other{i % 7}",
                    status="succeeded" if i % 5 == 0 else "queued",
                    queue="cpu",
                    spec=SPEC,
                    epochs=10,
                    epoch=10 if i % 5 == 0 else 0,
                    history=[{"loss": 0.5, "mae": 0.4}] * (10 if i % 5 == 0 else 0),
                    attempt=0,
                    sends=1,
                    event_seq=1,
                    cancel_requested=False,
                )
            )


def timed(
    client: httpx.Client, path: str, params: dict[str, str | int], requests: int
) -> list[float]:
    client.get(path, params=params)  # warm
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, params=params)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return seconds


LABELS = {
    "first": "first page, 20 jobs",
    "deep": "page ~3,000 jobs deep (cursor)",
    "queued": "first page of ?status=queued",
}


def run(jobs: int, requests: int) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms) of each request in ``LABELS``."""
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup, FITQ_SWEEPER_ENABLED="false")
        fill(stack.env["FITQ_DATABASE_URL"], jobs)
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            first = timed(client, "/v1/jobs", {"limit": 20}, requests)
            cursor = client.get("/v1/jobs", params={"limit": 100}).json()["next_after"]
            for _ in range(30):  # ~3,000 jobs deep
                cursor = client.get("/v1/jobs", params={"limit": 100, "after": cursor}).json()[
                    "next_after"
                ]
            deep = timed(client, "/v1/jobs", {"limit": 20, "after": cursor}, requests)
            queued = timed(client, "/v1/jobs", {"limit": 20, "status": "queued"}, requests)
    return {
        name: {
            "p50_ms": statistics.median(seconds) * 1000,
            "p99_ms": statistics.quantiles(seconds, n=100)[98] * 1000,
        }
        for name, seconds in (("first", first), ("deep", deep), ("queued", queued))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    measured = run(args.jobs, args.requests)
    print(f"{args.jobs:,} jobs in PostgreSQL; {args.requests} sequential requests each; ms")
    print("| request | p50 | p99 |")
    print("|---|---|---|")
    for name, label in LABELS.items():
        print(f"| {label} | {measured[name]['p50_ms']:.1f} | {measured[name]['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
