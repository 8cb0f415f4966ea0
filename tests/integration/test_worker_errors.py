"""Failures of the worker, not of the job, on a real Celery worker:

- one whose installation is broken, as the worker image once was (no prometheus_client,
  which every job's metrics need): each job ends ``failed`` / ``worker_error`` at once with
  the missing module named, instead of being retried by the sweeper into ``worker_lost``
  minutes later with the cause in no API response;
- a pool child killed under its job: retried at the sweeper's next pass, not a lease later."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.factories import tiny_arrays, tiny_job
from tests.integration.conftest import api_stack
from tests.processes import finished, poll_job, pool_child


def test_a_worker_missing_a_module_fails_its_jobs_with_the_cause(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "prometheus_client"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'prometheus_client'\")\n"
    )
    with api_stack(tmp_path) as stack:
        # The API has its own metrics: only the worker gets the broken path.
        stack.env = {**stack.env, "PYTHONPATH": str(shim.parent)}
        stack.start_worker()
        with stack.client() as client:
            job_id = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"]
            job, _ = poll_job(client, job_id, finished, 60)
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # not retried by the sweeper
    assert job["error"] == {
        "type": "worker_error",
        "message": "the worker failed: ModuleNotFoundError: No module named 'prometheus_client'",
    }


def test_a_killed_pool_child_has_its_job_retried_without_waiting_out_the_lease(
    tmp_path: Path,
) -> None:
    """Celery's parent reports a dead pool child at once (WorkerLostError): the job goes back
    to the queue at the sweeper's next pass, not a 60 s lease later, as an attempt."""
    with api_stack(tmp_path, FITQ_LEASE_SECONDS="60", FITQ_HEARTBEAT_SECONDS="5") as stack:
        worker = stack.start_worker()
        with stack.client() as client:
            body = tiny_job(epochs=40, train=tiny_arrays(rows=2000))
            job_id = client.post("/v1/jobs", json=body).json()["id"]
            poll_job(client, job_id, lambda j: j["progress"]["epoch"] >= 1, 60)
            child = pool_child(worker.process.pid)
            killed_at = time.monotonic()
            os.kill(child, signal.SIGKILL)  # as the OOM killer would
            poll_job(client, job_id, lambda j: j["attempts"] == 2, 30)
            retried_after = time.monotonic() - killed_at
            job, _ = poll_job(client, job_id, finished, 120)
    assert retried_after < 20, retried_after  # the lease alone would take 60 s
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job["error"]
    assert "released for a retry" in worker.log()
