"""What checkpoints cost a job and what a crash would lose, through a running service on
Redis + PostgreSQL with the default cadence (``worker/checkpoints.py``: lose at most about
max(one epoch, 5 % of the time trained), spend at most 3 % of it saving).

    .venv/bin/python -m bench.checkpoints [--epochs 10 100 400 1200]

Each row is the seed model over its data by dataset id for that many epochs (about 0.1 s an
epoch here). Cost: ``result.execution.checkpoint_seconds`` over ``train_seconds`` (goal:
≤ 3 %). Loss: each gap between checkpoints (what a SIGKILL at its worst moment throws away)
over the larger of one epoch and 5 % of the time trained when the gap closes, for the gaps
of the second half of training (goal: ≤ 1, give or take an epoch). Where the two goals
conflict the cost wins: a save is only taken while saving stays under 3 % of the time
trained, so a short job never pays for one."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import redis_postgres_stack
from examples.seed_data import seed_job


def finished(client: httpx.Client, job_id: str) -> dict:
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
        time.sleep(0.05)
    assert job["status"] == "succeeded", job["error"]
    return job


def row(client: httpx.Client, body: dict, epochs: int) -> str:
    fit = {**body["fit"], "epochs": epochs}
    job = finished(client, client.post("/v1/jobs", json={**body, "fit": fit}).json()["id"])
    events, page = [], {"has_more": True, "data": []}
    while page["has_more"]:
        after = events[-1]["seq"] if events else 0
        page = client.get(f"/v1/jobs/{job['id']}/events", params={"after": after}).json()
        events += page["data"]
    start = datetime.fromisoformat(job["started_at"])

    def since_start(stamp: str) -> float:
        return (datetime.fromisoformat(stamp) - start).total_seconds()

    marks = [since_start(e["time"]) for e in events if e["type"] == "checkpoint"]
    elapsed = since_start(job["finished_at"])
    seconds = job["result"]["train_seconds"]
    epoch = seconds / epochs
    execution = job["result"]["execution"]
    cost = execution["checkpoint_seconds"] / seconds
    # Gaps closing in the second half of the job, each against the bound when it closes
    # (early on both goals cannot hold: 5 % of 2 s is 0.1 s, three saves' worth).
    ends = [*marks, elapsed]
    late = [(a, b) for a, b in itertools.pairwise(ends) if b >= elapsed / 2]
    worst = max(((b - a) / max(epoch, 0.05 * b) for a, b in late), default=None)
    first = f"{marks[0]:.1f} s" if marks else "none"
    # A gap closes at the first epoch end past the bound: allow that one epoch.
    met = cost <= 0.03 and (worst is None or worst <= 1.0 + epoch / max(0.05 * elapsed, epoch))
    return (
        f"| {epochs} | {seconds:.1f} | {execution['checkpoints']} | {cost:.1%} | {first} | "
        f"{'-' if worst is None else f'{worst:.2f}'} | {'met' if met else 'NOT met'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 100, 400, 1200])
    args = parser.parse_args()
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup)
        stack.start_worker()
        with httpx.Client(base_url=stack.base_url, timeout=120) as client:
            body = seed_job(epochs=1)
            first = finished(client, client.post("/v1/jobs", json=body).json()["id"])
            body["data"] = {
                s: {"dataset_id": d["dataset_id"]}
                for s, d in first["spec"]["data"].items()
                if isinstance(d, dict)
            }
            rows = [row(client, body, epochs) for epochs in args.epochs]
    print(
        "| epochs | trained (s) | checkpoints | saving / training | first checkpoint | "
        "longest gap in the second half / max(epoch, 5 % of time) | goal |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
