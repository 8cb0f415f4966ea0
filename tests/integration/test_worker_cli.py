"""``fitq worker`` on this CPU host: it starts a CPU worker that writes its heartbeat row,
trains what the API routes to it, and removes its row when told to stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.factories import tiny_job
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import REPO_ROOT, Stack, child_env, finished, poll_job, spawn, wait_for


def container_health(env: dict[str, str]) -> int:
    """The worker image's HEALTHCHECK command, run on this host."""
    command = [sys.executable, "-m", "worker.healthcheck"]
    return subprocess.run(command, env=child_env(env), cwd=REPO_ROOT, check=False).returncode


def test_fitq_worker_serves_the_cpu_queue_and_leaves_cleanly(tmp_path: Path) -> None:
    env = {"FITQ_DATA_DIR": str(tmp_path / "fitq"), **FAST_RECOVERY}
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
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=60) == 0
            assert client.get("/readyz").json()["workers"] == {}  # the row left with it
            assert container_health(env) == 1
        assert "fitq-cpu0" in worker.log()
    finally:
        worker.stop()
        stack.stop()
