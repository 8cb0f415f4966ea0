"""The embedded stack (SQLite, the filesystem broker) under many concurrent submissions, as
``fitq serve`` runs it for every laptop user: uploads and jobs sent at once from several
clients all end well, each job trains once, and no worker dies. (The kombu filesystem
transport wrote messages in place: a worker read a half-written one and exited, and messages
piled up behind it.) ``FITQ_STRESS_COUNT`` raises the count; the suite sends 160."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.factories import tiny_job
from tests.integration.conftest import api_stack
from tests.processes import wait_for

COUNT = int(os.environ.get("FITQ_STRESS_COUNT", "160"))  # half uploads, half jobs
CLIENTS = 8


def submit(base_url: str, index: int) -> tuple[str, str]:
    with httpx.Client(base_url=base_url, timeout=120) as client:
        if index % 2:
            content = f"a,b,y\n{index},1,2\n3,4,{index}\n".encode()
            files = {"file": (f"d{index}.csv", content)}
            response = client.post("/v1/datasets", files=files, data={"target": "y"})
            kind = "datasets"
        else:
            response = client.post("/v1/jobs", json=tiny_job(epochs=1, seed=index))
            kind = "jobs"
    assert response.status_code == 202, response.text
    return kind, response.json()["id"]


def test_many_concurrent_uploads_and_jobs_lose_nothing(tmp_path: Path) -> None:
    with api_stack(tmp_path) as stack:
        ingest = stack.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        trainer = stack.start_worker()
        with ThreadPoolExecutor(CLIENTS) as pool:
            sent = list(pool.map(lambda i: submit(stack.base_url, i), range(COUNT)))
        with stack.client() as client:

            def ended(kind: str, item_id: str) -> dict[str, Any] | None:
                item = client.get(f"/v1/{kind}/{item_id}").json()
                done = item["status"] in {"succeeded", "failed", "cancelled", "ready"}
                return item if done else None

            results = [wait_for(lambda k=k, i=i: ended(k, i), 600, 0.2, i) for k, i in sent]
        for worker in (ingest, trainer):
            assert worker.process.poll() is None, worker.log()[-3000:]
            assert "Unrecoverable error" not in worker.log()
    statuses = {(kind, item["status"]) for (kind, _), item in zip(sent, results, strict=True)}
    assert statuses == {("jobs", "succeeded"), ("datasets", "ready")}, statuses
    assert {item["attempts"] for item in results if "attempts" in item} == {1}
