"""Cancel latency and recovery time through a running service on Redis + PostgreSQL.

    .venv/bin/python -m bench.lifecycle [--runs 10]

Cancel latency: the seed job (data by dataset id) is started, and once it has finished its
first epoch, ``POST /v1/jobs/{id}/cancel`` is timed until a client polling every 10 ms sees
``cancelled``; median of ``runs``. Recovery: the training worker is SIGKILLed mid-job and a
new one started at once; timed from the kill until the job is ``running`` again (lease
expiry + sweep + the new worker's start), with the lease settings printed beside it."""

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
from examples.seed_data import seed_job

RECOVERY = {
    "FITQ_LEASE_SECONDS": "10",
    "FITQ_HEARTBEAT_SECONDS": "2",
    "FITQ_SWEEP_INTERVAL_SECONDS": "1",
}


def wait(client: httpx.Client, job_id: str, done) -> dict:
    while not done(job := client.get(f"/v1/jobs/{job_id}").json()):
        time.sleep(0.01)
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup, **RECOVERY)
        stack.start_worker()
        with httpx.Client(base_url=stack.base_url, timeout=120) as client:
            body = seed_job(epochs=50)
            first = client.post("/v1/jobs", json=body).json()
            wait(client, first["id"], lambda j: j["status"] == "running")
            client.post(f"/v1/jobs/{first['id']}/cancel")
            wait(client, first["id"], lambda j: j["status"] == "cancelled")
            body["data"] = {
                s: {"dataset_id": d["dataset_id"]}
                for s, d in first["spec"]["data"].items()
                if isinstance(d, dict)
            }

            latencies = []
            for _ in range(args.runs):
                job_id = client.post("/v1/jobs", json=body).json()["id"]
                wait(client, job_id, lambda j: j["progress"]["epoch"] >= 1)
                started = time.perf_counter()
                client.post(f"/v1/jobs/{job_id}/cancel")
                job = wait(
                    client, job_id, lambda j: j["status"] in ("cancelled", "succeeded", "failed")
                )
                latencies.append(time.perf_counter() - started)
                assert job["status"] == "cancelled", job["status"]

            job_id = client.post("/v1/jobs", json=body).json()["id"]
            wait(client, job_id, lambda j: j["progress"]["epoch"] >= 1)
            killed = time.perf_counter()
            stack.workers[-1].kill()
            stack.start_worker()
            wait(client, job_id, lambda j: j["status"] == "running" and j["attempts"] == 2)
            recovery = time.perf_counter() - killed
            client.post(f"/v1/jobs/{job_id}/cancel")

    print("| measure | value | goal |")
    print("|---|---|---|")
    print(
        f"| cancel latency, seed job, median of {args.runs} | {statistics.median(latencies) * 1000:.0f} ms (max {max(latencies) * 1000:.0f} ms) | ≤ 2 s |"
    )
    lease = ", ".join(f"{k}={v}" for k, v in RECOVERY.items())
    print(f"| worker SIGKILLed → its job running again | {recovery:.1f} s ({lease}) | |")


if __name__ == "__main__":
    main()
