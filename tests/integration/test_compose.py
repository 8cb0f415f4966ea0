"""The compose files, checked without a Docker engine: ``docker-compose config`` (Debian's
package) validates each combination the README gives, then the multi-host one (artifacts in
S3, docker-compose.s3.yml) runs each fitq service's own command as a local process with the
service's environment (the postgres, redis and minio hosts rewritten to this test's own
database, Redis db and S3 server on 127.0.0.1; each with its own data dir, as hosts share no
disk), and a job trains through them. ``scripts/compose-check`` runs the one-host stack for
real, in Docker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from fitq.queues import WEBHOOK_THREADS
from tests.factories import tiny_job
from tests.processes import (
    REPO_ROOT,
    Child,
    child_env,
    finished,
    free_port,
    poll_job,
    spawn,
    wait_for,
)
from tests.s3 import make_bucket, s3_server
from tests.services import IN_CI, postgres_database, redis_db

BIN = Path(sys.executable).parent
GPU_HOST = ["docker-compose.yml", "docker-compose.override.yml"]  # what `docker compose` reads
CPU_HOST = ["docker-compose.yml", "docker-compose.cpu.yml"]
MULTI_HOST = [*GPU_HOST, "docker-compose.s3.yml"]


def compose_config(files: list[str]) -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        message = (
            "docker-compose is not installed (Debian's package: apt-get install docker-compose)"
        )
        if IN_CI:
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    done = subprocess.run(
        [
            "docker-compose",
            *[part for name in files for part in ("-f", str(REPO_ROOT / name))],
            "--profile",
            "monitoring",
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def local_url(url: str, local: dict[str, str]) -> str:
    """A compose URL pointing at a compose service, pointed at this test's services instead."""
    host = urlsplit(url).hostname
    return local.get(host or "", url)


def local_command(command: list[str], port: int) -> list[str]:
    """The service's command with this venv's executables, on loopback and a free port."""
    local = [str(BIN / command[0]), *command[1:]]
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag in local:
            local[local.index(flag) + 1] = value
    return local


def test_compose_files_are_valid_and_name_every_part() -> None:
    services = compose_config(GPU_HOST)["services"]
    expected = {"postgres", "redis", "migrate", "api", "ingest", "inference", "webhooks"}
    assert set(services) == expected | {"worker", "flower"}
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]
    assert services["worker"]["stop_grace_period"] in ("2m", "2m0s", 120)
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert services["flower"]["profiles"] == ["monitoring"]
    # One host: the API and the workers share the artifacts volume; no object store.
    for name in ("api", "ingest", "inference", "worker"):
        assert "data:/data:rw" in services[name]["volumes"], name
        assert "FITQ_ARTIFACTS_URL" not in services[name]["environment"]

    cpu = compose_config(CPU_HOST)["services"]
    assert "deploy" not in cpu["worker"]
    for name in ("worker", "ingest", "inference", "webhooks"):
        assert cpu[name]["build"]["target"] == "worker-cpu", name
    # Webhooks: the one worker that waits on the network: threads, as `fitq serve` runs it.
    threads = ["--pool", "threads", "--concurrency", str(WEBHOOK_THREADS)]
    command = cpu["webhooks"]["command"]
    assert command[command.index("--pool") :][:4] == threads
    assert cpu["worker"]["command"] == ["fitq", "worker", "--gpus", "none"]

    multi = compose_config(MULTI_HOST)["services"]
    assert {"minio", "minio-setup"} <= set(multi)
    for name in ("api", "ingest", "inference", "worker"):
        assert multi[name]["environment"]["FITQ_ARTIFACTS_URL"] == "s3://fitq/artifacts"
        assert multi[name]["depends_on"]["minio-setup"]["condition"] == (
            "service_completed_successfully"
        )


def test_the_multi_host_services_train_a_job_as_local_processes(tmp_path: Path) -> None:
    services = compose_config(MULTI_HOST)["services"]
    with ExitStack() as cleanup:
        s3_url = cleanup.enter_context(s3_server(tmp_path))  # stands in for MinIO
        local = {
            "postgres": cleanup.enter_context(postgres_database()),
            "redis": cleanup.enter_context(redis_db()),
            "minio": s3_url,
        }
        metrics_port = free_port()
        # What the minio-setup service does: the bucket of FITQ_ARTIFACTS_URL.
        make_bucket(s3_url, urlsplit(services["api"]["environment"]["FITQ_ARTIFACTS_URL"]).netloc)

        def environment(service: str) -> dict[str, str]:
            env = {
                key: local_url(str(value), local)
                for key, value in services[service]["environment"].items()
            }
            env["FITQ_DATA_DIR"] = str(tmp_path / service)  # each container's own /data
            if "FITQ_WORKER_METRICS_PORT" in env:  # a container's port, free on this host
                env["FITQ_WORKER_METRICS_PORT"] = str(metrics_port)
            return child_env(env)

        def run(service: str, command: list[str]) -> str:
            done = subprocess.run(
                local_command(command, 0),
                env=environment(service),
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        run("migrate", services["migrate"]["command"])
        # As the compose file's header says: docker compose run --rm migrate fitq keys create
        key = run("migrate", ["fitq", "keys", "create", "--tenant", "compose"]).split()[-1]
        port = free_port()
        children: list[Child] = []
        cleanup.callback(lambda: [child.stop() for child in children])
        for service in ("api", "ingest", "inference", "worker"):
            command = local_command(services[service]["command"], port)
            children.append(spawn(command, environment(service), tmp_path / f"{service}.log"))

        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as client:

            def workers() -> dict[str, int] | None:
                for child in children:
                    assert child.process.poll() is None, child.log()
                try:
                    live = client.get("/readyz").json()["workers"]
                except httpx.HTTPError:
                    return None
                return live if {"gpu1", "datasets", "inference"} <= set(live) else None

            # `fitq worker --gpus device=0` plans a one-GPU worker; on this CPU host it trains
            # on the CPU, and the job still routes by the live gpu1 worker.
            assert wait_for(workers, 180, 0.5, "the compose workers") == {
                "gpu1": 1,
                "datasets": 1,
                "inference": 1,
            }
            job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
            job, _ = poll_job(client, job_id, finished, 180)
            assert job["status"] == "succeeded", (job["error"], children[-1].log())
            assert job["spec"]["resources"] == {"gpus": 1}
            prediction = client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[0.1] * 4]})
            assert prediction.status_code == 200, prediction.text
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'fitq_epochs_trained_total{queue="gpu1"} 2.0' in scraped
        worker_lines = [line for line in children[-1].log().splitlines() if job_id in line]
        assert worker_lines and all(line.startswith("{") for line in worker_lines)  # JSON
