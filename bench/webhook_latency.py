"""How soon a client learns that a job ended: a signed webhook against polling, in one run.

    .venv/bin/python -m bench.webhook_latency [--jobs 20] [--poll 1.0]

It starts its own stack on the machine's Redis and PostgreSQL (the API under uvicorn, a
training worker and a webhooks worker, as compose runs them) and a receiver on loopback
(``FITQ_WEBHOOK_ALLOW_LOOPBACK``). For each of ``--jobs`` one-epoch jobs, one after
another, it records when the job ended (its ``finished_at``), when the receiver got its
signed ``job.succeeded`` and when a client polling ``GET /v1/jobs/{id}`` every ``--poll``
seconds (the SDK's ``jobs.wait`` default), from a random moment after the submission,
first saw it finished. Times are this machine's
one clock. The webhook's latency is the worker's commit, its send to the queue, the
webhooks worker's claim and the signed POST."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import redis_postgres_stack
from fitq import verify_webhook
from fitq.queues import WEBHOOKS_QUEUE
from tests.factories import tiny_job
from tests.webhook_receiver import Receiver


def finished_at(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()


def poll_until_finished(
    client: httpx.Client, job_id: str, poll: float, phase: float
) -> tuple[float, dict[str, Any]]:
    """A client that polls every ``poll`` s, starting ``phase`` s after the submission (a
    client's polls fall at any moment of a job's end, not in step with it)."""
    time.sleep(phase)
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return time.time(), job
        time.sleep(poll)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    webhook, polled = [], []
    phases = random.Random(0)
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup, FITQ_WEBHOOK_ALLOW_LOOPBACK="true")
        stack.start_worker()
        stack.start_worker("hooks", WEBHOOKS_QUEUE)
        receiver = cleanup.enter_context(Receiver())
        client = cleanup.enter_context(httpx.Client(base_url=stack.base_url, timeout=60))
        hook = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["job.succeeded"]}
        ).json()
        for index in range(args.jobs + 1):  # the first warms the worker up, not counted
            job_id = client.post("/v1/jobs", json=tiny_job(epochs=1, seed=index)).json()["id"]
            phase = phases.uniform(0, args.poll)
            seen_at, job = poll_until_finished(client, job_id, args.poll, phase)
            deadline = time.monotonic() + 60
            while len(receiver.received) < index + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            delivery = client.get(
                f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 1}
            ).json()["data"][0]
            assert delivery["subject_id"] == job_id, delivery
            last = receiver.received[-1]
            event = verify_webhook(last.body, last.headers, hook["secret"])
            assert event["data"]["id"] == job_id
            if index:
                webhook.append(last.at - finished_at(job))
                polled.append(seen_at - finished_at(job))

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return f"median {statistics.median(values) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"

    print(f"{args.jobs} jobs; from a job's end until the client knows:")
    print(f"  signed webhook: {summary(webhook)}")
    print(f"  polling every {args.poll:g} s: {summary(polled)}")
    print(
        f"  webhook / polling (medians): {statistics.median(webhook) / statistics.median(polled):.2f}x"
    )


if __name__ == "__main__":
    main()
