"""Fault drills: each injects one fault into a running service on PostgreSQL + Redis (the
machine's, a database and db index of the drill's own; a private redis-server where Redis
itself is stopped) and counts what came out. The table goes into BENCHMARKS.md.

    .venv/bin/python -m bench.faults [--only NAME ...]

Columns: ``submitted``; ``succeeded``; ``failed`` by error type; ``stuck`` (not finished
long after the fault); ``duplicated`` (jobs listed beyond those submitted: a keyed POST
retried counts once); ``same numbers`` (succeeded jobs whose test loss, test metrics and
per-epoch history equal the undisturbed run of the same spec bit for bit); ``recovery``
(seconds from the fault, or from the service's return, until work went on: see each row's
note). Real processes throughout: uvicorn, Celery workers, SIGKILL and SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.stack import redis_postgres_stack
from tests.factories import tiny_arrays, tiny_job
from tests.processes import Child, Stack, free_port, pool_child, wait_for
from tests.services import PrivateRedis
from tests.tcp_proxy import TcpProxy

LONG, SHORT = 30, 2  # epochs: long enough to be killed mid-training; many quick ones
SETTLE_SECONDS = 300  # a job not finished this long after its drill's fault is stuck
# The faster sweep of the test suite, so a drill's waits are the mechanism's, not the poll's.
QUICK_SWEEP = {"FITQ_SWEEP_INTERVAL_SECONDS": "0.5", "FITQ_HEARTBEAT_SECONDS": "1"}


def body(epochs: int) -> dict[str, Any]:
    return tiny_job(epochs=epochs, train=tiny_arrays(rows=2000), test=tiny_arrays(rows=200, seed=1))


def numbers(job: dict[str, Any]) -> tuple[Any, ...]:
    result = job["result"]
    return (result["test_loss"], sorted(result["test_metrics"].items()), job["history"])


@dataclass
class Drill:
    name: str
    note: str = ""
    submitted: int = 0
    ids: list[str] = field(default_factory=list)
    epochs: dict[str, int] = field(default_factory=dict)  # job id -> its spec's epochs
    recovery: float | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    listed: int = 0

    def submit(self, client: httpx.Client, epochs: int, key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        response = client.post("/v1/jobs", json=body(epochs), headers=headers)
        response.raise_for_status()
        job_id = response.json()["id"]
        if job_id not in self.epochs:
            self.submitted += 1
            self.ids.append(job_id)
        self.epochs[job_id] = epochs
        return job_id

    def settle(self, client: httpx.Client) -> None:
        """Waits for every job to finish (or ``SETTLE_SECONDS``), then lists them."""
        deadline = time.monotonic() + SETTLE_SECONDS
        for job_id in self.ids:
            while True:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.jobs.append(job)
        self.listed = listed_jobs(client)

    def row(self, reference: dict[int, tuple[Any, ...]]) -> str:
        done = [j for j in self.jobs if j["status"] == "succeeded"]
        failed = Counter(j["error"]["type"] for j in self.jobs if j["status"] == "failed")
        stuck = sum(j["status"] in ("queued", "running") for j in self.jobs)
        same = sum(numbers(j) == reference.get(self.epochs[j["id"]]) for j in done)
        failures = ", ".join(f"{n} {kind}" for kind, n in sorted(failed.items())) or "0"
        recovery = "—" if self.recovery is None else f"{self.recovery:.1f}"
        return (
            f"| {self.name} | {self.submitted} | {len(done)} | {failures} | {stuck} | "
            f"{self.listed - self.submitted} | {same}/{len(done)} | {recovery} | {self.note} |"
        )


def listed_jobs(client: httpx.Client) -> int:
    count, after = 0, None
    while True:
        page = client.get("/v1/jobs", params={"limit": 100, **({"after": after} if after else {})})
        count += len(page.json()["data"])
        if not page.json()["has_more"]:
            return count
        after = page.json()["next_after"]


def until(client: httpx.Client, job_id: str, check: Callable[[dict[str, Any]], bool]) -> float:
    """Polls the job until ``check``; the monotonic time it held."""
    wait_for(lambda: check(client.get(f"/v1/jobs/{job_id}").json()), 120, 0.02, job_id)
    return time.monotonic()


# --- the drills -----------------------------------------------------------------------------


def undisturbed(cleanup: ExitStack, reference: dict[int, tuple[Any, ...]]) -> Drill:
    drill = Drill("none (the reference)", "the numbers every other row is held to")
    stack = redis_postgres_stack(cleanup)
    stack.start_worker()
    with stack.client() as client:
        for epochs in (LONG, SHORT, LONG, SHORT):
            drill.submit(client, epochs)
        drill.settle(client)
    for job in drill.jobs:
        reference.setdefault(drill.epochs[job["id"]], numbers(job))
    return drill


Job = dict[str, Any]


def mid_training(
    drill: Drill,
    stack: Stack,
    fault: Callable[[Child], None],
    back: Callable[[Job], bool],
) -> Drill:
    """Two long jobs on one worker; ``fault(worker)`` once the first is at epoch 3; recovery
    from the fault until ``back(first job)``; then every job to its end."""
    worker = stack.start_worker()
    with stack.client() as client:
        first = drill.submit(client, LONG)
        drill.submit(client, LONG)
        until(client, first, lambda j: j["progress"]["epoch"] >= 3)
        struck = time.monotonic()
        fault(worker)
        drill.recovery = until(client, first, back) - struck
        drill.settle(client)
    return drill


def retried(job: Job) -> bool:
    return job["attempts"] == 2 and job["status"] == "running"


def killed_pool_child(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "pool child SIGKILLed mid-training (the OOM killer), lease 60 s",
        "recovery: kill to the job running again (Celery reports the death; no lease wait)",
    )
    stack = redis_postgres_stack(cleanup, **QUICK_SWEEP)

    def kill_the_child(worker: Child) -> None:
        os.kill(pool_child(worker.process.pid), signal.SIGKILL)

    return mid_training(drill, stack, kill_the_child, retried)


def killed_worker(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "whole worker SIGKILLed (host lost), lease 10 s, a new worker started at once",
        "recovery: kill to the job running again (the lease must end first)",
    )
    stack = redis_postgres_stack(cleanup, FITQ_LEASE_SECONDS="10", **QUICK_SWEEP)

    def replace_the_host(worker: Child) -> None:
        worker.kill()
        stack.start_worker()

    return mid_training(drill, stack, replace_the_host, retried)


def drained_worker(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "worker drained by SIGTERM mid-training (a deploy), a new worker started",
        "recovery: SIGTERM to the job running again on the new worker, from its epoch",
    )
    stack = redis_postgres_stack(cleanup, **QUICK_SWEEP)

    def deploy(worker: Child) -> None:
        os.kill(worker.process.pid, signal.SIGTERM)  # the Celery parent, as docker stop does
        worker.process.wait(timeout=120)
        stack.start_worker()

    return mid_training(
        drill, stack, deploy, lambda j: j["status"] == "running" and j["progress"]["epoch"] > 3
    )


def private_redis_stack(cleanup: ExitStack, **env: str) -> tuple[Stack, PrivateRedis]:
    workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
    server = PrivateRedis(workdir)
    server.start()
    cleanup.callback(server.stop)
    return redis_postgres_stack(cleanup, FITQ_BROKER_URL=server.url, **env), server


def redis_restarted(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "Redis restarted with 20 jobs queued, no re-sends (their messages must survive)",
        "recovery: Redis back to the first job running",
    )
    stack, redis_server = private_redis_stack(cleanup, FITQ_RESEND_AFTER_SECONDS="3600")
    with stack.client() as client:
        for _ in range(20):
            drill.submit(client, SHORT)
        redis_server.stop()
        redis_server.start()
        back = time.monotonic()
        stack.start_worker()
        drill.recovery = until(client, drill.ids[0], lambda j: j["status"] != "queued") - back
        drill.settle(client)
    return drill


def redis_down_past_the_lease(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "Redis down 30 s (6 leases of 5 s), 10 jobs queued before and 2 submitted during",
        "recovery: Redis back to the first job running",
    )
    stack, redis_server = private_redis_stack(
        cleanup,
        FITQ_LEASE_SECONDS="5",
        FITQ_RESEND_AFTER_SECONDS="1",
        FITQ_SEND_TIMEOUT_SECONDS="1",
        **QUICK_SWEEP,
    )
    with stack.client() as client:
        for _ in range(10):
            drill.submit(client, SHORT)
        redis_server.stop()
        for _ in range(2):
            drill.submit(client, SHORT)  # 202, queued: sent once the broker is back
        time.sleep(30)
        redis_server.start()
        back = time.monotonic()
        stack.start_worker()
        drill.recovery = until(client, drill.ids[0], lambda j: j["status"] != "queued") - back
        drill.settle(client)
    return drill


@dataclass
class Answers:
    """Every poll's (started, seconds, status) while the store goes away and comes back."""

    seen: list[tuple[float, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def poll(self, base_url: str, job_id: str, stop: threading.Event) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"/v1/jobs/{job_id}").status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    self.seen.append((started, time.monotonic() - started, status))
                time.sleep(0.05)


def keyed_submitter(drill: Drill, base_url: str, stop: threading.Event) -> None:
    """Submits with an Idempotency-Key, retrying each key until it is answered 202."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        while not stop.is_set():
            key, deadline = uuid.uuid4().hex, time.monotonic() + 120
            while True:
                try:
                    drill.submit(client, SHORT, key)
                    break
                except httpx.HTTPError:  # a 503 or a refused connection: same key again
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            time.sleep(0.5)


def store_outage(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill("PostgreSQL unreachable 20 s: 4 pollers, keyed submissions, a job training")
    forwarder = TcpProxy(("127.0.0.1", 5432), free_port())
    forwarder.start()
    cleanup.callback(forwarder.cut)
    stack = redis_postgres_stack(cleanup, FITQ_LEASE_SECONDS="10", **QUICK_SWEEP)
    through = stack.env["FITQ_DATABASE_URL"].replace(":5432/", f":{forwarder.port}/")
    assert stack.api is not None
    stack.api.stop()
    stack.env = {**stack.env, "FITQ_DATABASE_URL": through}  # API and worker alike
    stack.start_api()
    stack.start_worker()
    answers, stop = Answers(), threading.Event()
    with stack.client() as client:
        first = drill.submit(client, LONG)
        until(client, first, lambda j: j["progress"]["epoch"] >= 2)
        threads = [
            threading.Thread(target=answers.poll, args=(stack.base_url, first, stop))
            for _ in range(4)
        ] + [threading.Thread(target=keyed_submitter, args=(drill, stack.base_url, stop))]
        for thread in threads:
            thread.start()
        time.sleep(2)
        cut = time.monotonic()
        forwarder.cut()
        time.sleep(20)
        forwarder.start()
        back = time.monotonic()
        time.sleep(10)
        stop.set()
        for thread in threads:
            thread.join()
        drill.settle(client)
    during = [(s, d, c) for s, d, c in answers.seen if cut <= s and s + d < back]
    waits = sorted(d for _, d, c in during if c == 503)
    served = [s + d for s, d, c in answers.seen if c == 200 and s > back]
    drill.recovery = min(served) - back if served else None
    others = Counter(c for _, _, c in during if c != 503)
    drill.note = (
        f"{len(waits)} polls answered 503 in {waits[len(waits) // 2]:.1f} s (median), "
        f"{waits[-1]:.1f} s (slowest); other answers during it: {dict(others) or 'none'}; "
        "recovery: the store back to the first poll served"
        if waits
        else "no poll was answered 503"
    )
    return drill


def api_killed(cleanup: ExitStack, _: dict) -> Drill:
    drill = Drill(
        "API SIGKILLed with 8 clients submitting keyed jobs, restarted",
        "recovery: kill to the API answering again; every client retries its key",
    )
    stack = redis_postgres_stack(cleanup, **QUICK_SWEEP)
    stack.start_worker()
    stop = threading.Event()
    threads = [
        threading.Thread(target=keyed_submitter, args=(drill, stack.base_url, stop))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    assert stack.api is not None
    killed = time.monotonic()
    stack.api.kill()
    stack.start_api(port=int(stack.base_url.rsplit(":", 1)[1]))  # where the clients retry
    drill.recovery = time.monotonic() - killed
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    with stack.client() as client:
        drill.settle(client)
    return drill


DRILLS: dict[str, Callable[[ExitStack, dict], Drill]] = {
    "undisturbed": undisturbed,
    "pool-child": killed_pool_child,
    "worker-kill": killed_worker,
    "drain": drained_worker,
    "redis-restart": redis_restarted,
    "redis-outage": redis_down_past_the_lease,
    "store-outage": store_outage,
    "api-kill": api_killed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(DRILLS)[1:], default=list(DRILLS)[1:])
    args = parser.parse_args()
    reference: dict[int, tuple[Any, ...]] = {}
    rows = []
    for name in ["undisturbed", *args.only]:
        started = time.monotonic()
        with ExitStack() as cleanup:
            drill = DRILLS[name](cleanup, reference)
        rows.append(drill.row(reference))
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(
        "| fault | submitted | succeeded | failed | stuck | duplicated | same numbers | "
        "recovery (s) | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
