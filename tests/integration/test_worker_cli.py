"""``fitq worker`` on this CPU host: it starts a CPU worker that writes its heartbeat row,
trains what the API routes to it, and removes its row when told to stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import tiny_job
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import (
    REPO_ROOT,
    Stack,
    child_env,
    finished,
    free_port,
    poll_job,
    spawn,
    wait_for,
)


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def container_health(env: dict[str, str]) -> int:
    """The worker image's HEALTHCHECK command, run on this host."""
    command = [sys.executable, "-m", "worker.healthcheck"]
    return subprocess.run(command, env=child_env(env), cwd=REPO_ROOT, check=False).returncode


def test_fitq_worker_serves_the_cpu_queue_and_leaves_cleanly(tmp_path: Path) -> None:
    metrics_port = free_port()
    env = {
        "FITQ_DATA_DIR": str(tmp_path / "fitq"),
        "FITQ_WORKER_METRICS_PORT": str(metrics_port),
        "FITQ_LOG_FORMAT": "json",
        **FAST_RECOVERY,
    }
    migrate(env)
    stack = Stack(env, tmp_path)
    stack.start_api()
    command = [sys.executable, "-m", "fitq", "worker", "--gpus", "none"]
    worker = spawn(command, child_env(env), tmp_path / "fitq-worker.log")
    try:
        with stack.client() as client:

            def workers() -> dict[str, int]:
                assert worker.process.poll() is None, worker.log()
                return client.get("/readyz").json()["workers"]

            assert wait_for(workers, 120, 0.2, "the worker's heartbeat") == {"cpu": 1}
            job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
            job, _ = poll_job(client, job_id, finished, 120)
            assert job["status"] == "succeeded", job["error"]
            assert job["spec"]["resources"] == {"gpus": 0}
            assert container_health(env) == 0
            scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            assert sample(scraped, "fitq_epochs_trained_total", queue="cpu") == 2
            count = "fitq_job_duration_seconds_count"
            assert sample(scraped, count, queue="cpu", result="succeeded") == 1
            assert sample(scraped, "fitq_job_queue_wait_seconds_count", queue="cpu") == 1
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=60) == 0
            assert client.get("/readyz").json()["workers"] == {}  # the row left with it
            assert container_health(env) == 1
        assert "fitq-cpu0" in worker.log()
        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        about_the_job = [line for line in lines if job_id in line["message"]]
        assert about_the_job, worker.log()
        # A duplicate message (the sweeper re-sends a job a slow pool child has not yet
        # claimed) is logged about the job too.
        assert all(line.get("job_id") == job_id for line in about_the_job), about_the_job
        assert all(line.get("tenant") == "default" for line in about_the_job)
    finally:
        worker.stop()
        stack.stop()
