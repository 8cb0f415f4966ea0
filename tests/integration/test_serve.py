"""``fitq serve`` on embedded defaults, and the standalone processes' refusal to start on an
un-migrated database."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from examples.seed_data import seed_job
from fitq.cli import api_command, worker_command
from fitq.settings import Settings
from tests.processes import REPO_ROOT, child_env, finished, free_port, poll_job, spawn, wait_for


def test_fitq_serve_runs_the_seed_example_on_embedded_defaults(
    tmp_path: Path, seed: dict[str, Any]
) -> None:
    port = free_port()
    env = child_env({"FITQ_DATA_DIR": str(tmp_path / "data")})
    serve = spawn(
        [sys.executable, "-m", "fitq", "serve", "--port", str(port)], env, tmp_path / "serve.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert serve.process.poll() is None, serve.log()
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, 0.1, "fitq serve")
        assert (tmp_path / "data" / "fitq.db").exists()  # migrated on start
        with httpx.Client(base_url=base, timeout=60) as client:
            job_id = client.post("/v1/jobs", json=seed_job(seed["arrays"], seed=42)).json()["id"]
            job, _ = poll_job(client, job_id, finished, 180)
        assert job["status"] == "succeeded", (job["error"], serve.log())
        assert job["result"]["test_loss"] == seed["scores"]["loss"]
        assert job["result"]["test_metrics"]["mae"] == seed["scores"]["mae"]
    finally:
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=60) == 0
    # Its children went with it.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "data")], capture_output=True)
    assert leftover.stdout == b""


def test_standalone_api_and_worker_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    env = child_env({"FITQ_DATA_DIR": str(data_dir)})
    settings = Settings(data_dir=data_dir)
    for name, command in [
        ("api", api_command("127.0.0.1", free_port())),
        ("worker", worker_command(settings)),
    ]:
        done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, timeout=120)
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode != 0, f"{name} started on an un-migrated database"
        assert "fitq db upgrade" in output, output[-2000:]
