"""A real Celery worker whose installation is broken, as the worker image once was (no
prometheus_client, which every job's metrics need): each job ends ``failed`` / ``worker_error``
at once with the missing module named, instead of running, being retried by the sweeper and
ending ``worker_lost`` minutes later with the cause in no API response."""

from __future__ import annotations

from pathlib import Path

from tests.factories import tiny_job
from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import Stack, finished, poll_job


def test_a_worker_missing_a_module_fails_its_jobs_with_the_cause(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "prometheus_client"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'prometheus_client'\")\n"
    )
    env = {"FITQ_DATA_DIR": str(tmp_path / "fitq"), **FAST_RECOVERY}
    migrate(env)
    stack = Stack(env, tmp_path)
    try:
        stack.start_api()  # the API has its own metrics: only the worker gets the broken path
        stack.env = {**env, "PYTHONPATH": str(shim.parent)}
        stack.start_worker()
        with stack.client() as client:
            job_id = client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"]
            job, _ = poll_job(client, job_id, finished, 60)
    finally:
        stack.stop()
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # not retried by the sweeper
    assert job["error"] == {
        "type": "worker_error",
        "message": "the worker failed: ModuleNotFoundError: No module named 'prometheus_client'",
    }
