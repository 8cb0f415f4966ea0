"""Sweeps on real processes (the API, Celery workers, Redis, PostgreSQL): trials run on two workers at most ``parallelism`` at once, Hyperband prunes, and
the sweep goes on through an API restart and a worker killed mid-trial; the CLI follows one
to its best trial."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fitq import Client
from fitq.schemas import SweepRead
from tests.factories import tiny_arrays, tiny_job
from tests.processes import REPO_ROOT, Stack, child_env

TIMEOUT = 240
# On Redis + PostgreSQL, as compose runs it: the embedded store's trials are the same jobs,
# whose restarts tests/integration/test_restarts.py covers there.
pytestmark = pytest.mark.parametrize("stack", ["redis-postgres"], indirect=True)


def sweep_body(max_trials: int, parallelism: int, epochs: int = 6) -> dict[str, Any]:
    job = tiny_job(epochs=epochs, train=tiny_arrays(rows=600))
    job.pop("seed")
    job["fit"]["validation_split"] = 0.25
    return {
        "job": job,
        "space": {
            "compile.optimizer.learning_rate": {
                "type": "float",
                "low": 1e-4,
                "high": 0.3,
                "log": True,
            },
            "model.layers.0.units": {"type": "int", "low": 4, "high": 32, "step": 4},
        },
        "sampler": "tpe",
        "pruner": "hyperband",
        "max_trials": max_trials,
        "parallelism": parallelism,
        "seed": 5,
    }


def test_a_sweep_survives_an_api_restart_and_a_killed_worker(stack: Stack) -> None:
    stack.start_worker()  # a second training worker: two trials can run at once
    views: list[SweepRead] = []
    with Client(stack.base_url) as client:
        sweep = client.sweeps.create(sweep_body(max_trials=8, parallelism=2))
        deadline = time.monotonic() + TIMEOUT
        while client.sweeps.get(sweep.id).counts["complete"] < 1:
            views.append(client.sweeps.get(sweep.id))
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert stack.api is not None
        stack.api.stop()  # the API goes; trials go on, and the workers start the next ones
        stack.start_api()
    with Client(stack.base_url) as client:
        while not any(t.state == "running" for t in client.sweeps.get(sweep.id).trials):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stack.workers[-1].kill()  # a host lost mid-trial: its lease expires, the job resumes
        stack.workers.pop()
        stack.start_worker()
        done = client.sweeps.wait(sweep.id, TIMEOUT, 0.1, on_update=views.append)
        assert done.status == "succeeded", done
        assert len(done.trials) == 8 and done.counts["complete"] >= 1
        assert all(v.counts["queued"] + v.counts["running"] <= 2 for v in views)
        jobs = [client.jobs.get(t.job_id) for t in done.trials]
    assert [(j.sweep_id, j.trial) for j in jobs] == [(sweep.id, n) for n in range(8)]
    for trial, job in zip(done.trials, jobs, strict=True):
        assert job.spec.seed == 5 + trial.number
        if trial.state == "pruned":
            assert (job.status, job.cancel_reason) == ("cancelled", "pruned")
            assert 0 < len(job.history) < 6
        if trial.state == "complete":
            assert trial.value == job.history[-1]["val_loss"]
    complete = [t for t in done.trials if t.value is not None]
    assert done.best is not None
    assert done.best.value == min(t.value for t in complete)  # type: ignore[type-var]


def test_the_cli_follows_a_sweep_to_its_best_trial(stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(sweep_body(max_trials=3, parallelism=2, epochs=2)))
    ran = subprocess.run(
        [sys.executable, "-m", "fitq", "sweep", str(spec), "--wait", "--url", stack.base_url],
        env=child_env(stack.env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert ran.returncode == 0, ran.stderr
    assert "best: trial" in ran.stdout and "fitq model job_" in ran.stdout
    sweep_id = ran.stderr.split()[1]
    listed = subprocess.run(
        [sys.executable, "-m", "fitq", "sweeps", "list", "--url", stack.base_url],
        env=child_env(stack.env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sweep_id in listed.stdout and "succeeded\t3/3" in listed.stdout
