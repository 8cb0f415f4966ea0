"""``fitq serve`` on embedded defaults, and the standalone processes' refusal to start on an
un-migrated database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from examples.seed_data import seed_job
from fitq.cli import api_command, worker_command
from fitq.settings import Settings
from tests.factories import tiny_job
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
        # The README's one command that checks it: the hand run beside the job's result.
        compared = subprocess.run(
            [sys.executable, "examples/seed_example.py", "--compare", job_id],
            env={**env, "FITQ_URL": base}, cwd=REPO_ROOT, capture_output=True, text=True,
        )  # fmt: skip
        assert compared.returncode == 0, compared.stdout + compared.stderr
        assert compared.stdout.count(" same") == 2 and "DIFFERENT" not in compared.stdout
    finally:
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=60) == 0
    # Its children went with it.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "data")], capture_output=True)
    assert leftover.stdout == b""


def child_with(parent: int, argument: str) -> int | None:
    """The pid of ``parent``'s child process whose command line has ``argument``."""
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        if argument in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"):
            return int(pid)
    return None


def test_fitq_serve_starts_a_killed_worker_again_and_keeps_serving(tmp_path: Path) -> None:
    """SIGKILL of the training worker (as the OOM killer does) stopped the whole of
    ``fitq serve`` before; now the API answers throughout and the worker comes back."""
    port = free_port()
    env = child_env({"FITQ_DATA_DIR": str(tmp_path / "data"), "FITQ_HEARTBEAT_SECONDS": "1"})
    command = [sys.executable, "-m", "fitq", "serve", "--port", str(port)]
    serve = spawn(command, env, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def training_workers() -> int | None:
                assert serve.process.poll() is None, serve.log()
                try:
                    return client.get("/readyz").json()["workers"].get("cpu", 0)
                except (httpx.HTTPError, ValueError):
                    return None

            wait_for(training_workers, 120, 0.2, "a live training worker")
            killed = child_with(serve.process.pid, "cpu")  # the training worker: -Q cpu
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            wait_for(lambda: "killed by SIGKILL" in serve.log(), 30, 0.1, "the supervisor")
            assert client.get("/healthz").status_code == 200  # the API never went away
            # Readiness shows the queue unserved until the worker is back (its heartbeat
            # row went with it; before, the row outlived it and the new worker took it over).
            wait_for(lambda: training_workers() == 0, 10, 0.05, "readiness to show it gone")
            wait_for(
                lambda: child_with(serve.process.pid, "cpu") not in (None, killed), 30, 0.1, "anew"
            )
            job_id = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"]
            job, _ = poll_job(client, job_id, finished, 180)
        assert job["status"] == "succeeded", (job["error"], serve.log())
        assert "the training worker started again" in serve.log()
    finally:
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=60) == 0


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
