"""The compose deployment, for real: the project's images built from its Dockerfile, the stack
started by docker compose as the README's CPU-host command starts it, and driven through its
published port. Run it with ``scripts/compose-check`` (which starts dockerd where none runs).

Upstream images that cannot be pulled here (Docker Hub is out of reach) are stood in for by
images of the same name built from Debian's packages (``tests/compose/standins``); an image
already present that is not a stand-in is used as it is. ``tests/compose/check.yml`` adds only
what this machine needs (builds on the host network) and is the one file the README's command
lacks. The stack runs as its own compose project, so it never touches a user's own.

Checks, in order: every container up and healthy, fitq's own not root; ``/readyz`` ok; the
seed job's test loss and MAE equal the seed example run by hand in the same image, bit for
bit; ``docker compose restart worker`` mid-job and the job still succeeds, with the numbers of
the same job run undisturbed; ``--scale
worker=2`` trains two jobs at once; a webhook test event is attempted and its attempt recorded
by the webhooks worker; ``down`` then ``up`` keeps jobs, datasets and models."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from examples.seed_data import seed_arrays, seed_job
from tests.processes import REPO_ROOT, free_port, wait_for

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
DEBIAN = "fitq-standin/debian:bookworm"
# Upstream image → the stand-in folder that builds it.
UPSTREAM = {"python:3.11-slim": "python", "postgres:16": "postgres", "redis:7": "redis"}
# The README's command on a host without GPUs, plus this machine's needs.
FILES = ["docker-compose.yml", "docker-compose.cpu.yml", str(HERE / "check.yml")]
PROJECT = "fitqcheck"
FITQ_SERVICES = ("api", "ingest", "inference", "webhooks", "worker")
SERVICES = ("postgres", "redis", *FITQ_SERVICES)  # long-running; migrate is a one-shot
JOB_TIMEOUT = 600


def log(message: str) -> None:
    print(f"[compose-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def docker(*args: str, check: bool = True, capture: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout if capture else ""


@cache
def compose_command() -> tuple[str, ...]:
    """Compose v2 (the docker plugin) where present, else Debian's docker-compose 1.29."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ("docker", "compose") if v2.returncode == 0 else ("docker-compose",)


def compose(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    files = [part for name in FILES for part in ("-f", name)]
    command = [*compose_command(), "-p", PROJECT, *files, *args]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=capture, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr if capture else ''}")
    return done.stdout if capture else ""


# ---- upstream images ------------------------------------------------------------------------


def image_labels(tag: str) -> dict[str, str] | None:
    """The image's labels ({} when it has none); None when it is not here."""
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return (json.loads(done.stdout) or {}) if done.returncode == 0 else None


def debian_base() -> None:
    """A minimal Debian bookworm image from debootstrap, the base of every stand-in."""
    if image_labels(DEBIAN) is not None:
        return
    log(f"building {DEBIAN} with debootstrap")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root)],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        # As in Debian's official images: packages never start services while building.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", DEBIAN], stdin=tar.stdout, check=True)
        assert tar.wait() == 0


def standin_context(folder: str, tmp: Path) -> Path:
    """The stand-in's build folder; the python one also gets this host's own certificate
    authorities, which its pip then trusts as the host's does."""
    context = tmp / folder
    shutil.copytree(STANDINS / folder, context)
    if folder == "python":
        certs = context / "certs"
        certs.mkdir()
        for cert in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
            shutil.copy(cert, certs / cert.name)
    return context


def upstream_images() -> None:
    """Each upstream image: used when here (a stand-in is rebuilt: cached layers make it
    quick), pulled when it can be, else built as a stand-in."""
    with tempfile.TemporaryDirectory() as tmp:
        for tag, folder in UPSTREAM.items():
            labels = image_labels(tag)
            if labels is not None and "fitq.standin" not in labels:
                continue
            if labels is None and docker("pull", "-q", tag, check=False):
                continue
            debian_base()
            log(f"building the stand-in for {tag}")
            context = standin_context(folder, Path(tmp))
            label = "fitq.standin=1"
            docker("build", "-q", "--network", "host", "--label", label, "-t", tag, str(context))


# ---- the stack ------------------------------------------------------------------------------


class Stack:
    def __init__(self, port: int) -> None:
        self.port = port
        self.env = {**os.environ, "FITQ_API_PORT": f"127.0.0.1:{port}"}
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def compose(self, *args: str, capture: bool = False) -> str:
        return compose(*args, env=self.env, capture=capture)

    def containers(self, *services: str) -> list[str]:
        return self.compose("ps", "-q", *services, capture=True).split()

    def ready(self, training_workers: int = 1) -> dict[str, int]:
        def check() -> dict[str, int] | None:
            try:
                body = self.http.get("/readyz").json()
            except (httpx.HTTPError, ValueError):
                return None
            workers: dict[str, int] = body.get("workers") or {}
            serving = all(workers.get(q) for q in ("datasets", "inference", "webhooks"))
            enough = workers.get("cpu", 0) >= training_workers
            return workers if body["status"] == "ok" and serving and enough else None

        return wait_for(check, 300, 1, "/readyz with live workers")

    def key(self) -> str:
        create = ["fitq", "keys", "create", "--tenant", "compose-check"]
        out = self.compose("run", "--rm", "-T", "migrate", *create, capture=True)
        key = out.split()[-1]
        self.http.headers["Authorization"] = f"Bearer {key}"
        return key

    def submit(self, body: dict[str, Any]) -> str:
        response = self.http.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            try:
                job = self.job(job_id)
            except httpx.HTTPError:
                return None  # the API may be restarting with the stack
            return job if until(job) else None

        return wait_for(check, JOB_TIMEOUT, 0.2, f"job {job_id}")

    def finished(self, job_id: str) -> dict[str, Any]:
        job = self.wait(job_id, lambda job: job["status"] in {"succeeded", "failed", "cancelled"})
        assert job["status"] == "succeeded", (job["status"], job["error"], self.logs("worker"))
        return job

    def model_digest(self, job_id: str) -> str:
        response = self.http.get(f"/v1/jobs/{job_id}/model")
        assert response.status_code == 200, response.text
        return hashlib.sha256(response.content).hexdigest()

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", service, capture=True)


@contextmanager
def started(stack: Stack, keep: bool) -> Iterator[Stack]:
    try:
        stack.compose("down", "-v", "--remove-orphans")  # what an interrupted run left
        stack.compose("up", "-d")
        yield stack
    except BaseException:
        for service in ("migrate", *FITQ_SERVICES):
            print(f"---- {service} logs\n{stack.logs(service)}", file=sys.stderr)
        raise
    finally:
        stack.http.close()
        if not keep:
            stack.compose("down", "-v", "--remove-orphans")


# ---- the checks -----------------------------------------------------------------------------


def long_job(epochs: int) -> dict[str, Any]:
    """The seed model over more epochs: long enough to restart a worker in the middle."""
    return seed_job(seed_arrays(), seed=7, epochs=epochs)


def check_containers(stack: Stack) -> None:
    """Every service's containers running, healthy where they have a health check; fitq's
    not root."""

    def healthy() -> bool:
        for container in stack.containers(*SERVICES):
            state = json.loads(docker("inspect", "--format", "{{json .State}}", container))
            status = state.get("Health", {}).get("Status", "healthy")
            if not state["Running"] or status != "healthy":
                return False
        return True

    wait_for(healthy, 180, 2, "every container healthy")
    for service in FITQ_SERVICES:
        for container in stack.containers(service):
            uid = docker("exec", container, "id", "-u").strip()
            assert uid != "0", f"{service} runs as root"


def hand_run_scores(stack: Stack) -> dict[str, Any]:
    """The seed example run by hand in a worker container (the README's command): the same
    TensorFlow as the jobs."""
    examples = f"{REPO_ROOT / 'examples'}:/examples:ro"
    command = ["python", "-m", "examples.seed_example", "--json"]
    out = stack.compose("run", "--rm", "-T", "-v", examples, "-w", "/", "worker", *command,
                        capture=True)  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def check_seed_job(stack: Stack) -> str:
    job_id = stack.submit(seed_job(seed_arrays(), seed=42))
    result = stack.finished(job_id)["result"]
    by_hand = hand_run_scores(stack)
    seen = {"test_loss": result["test_loss"], "mae": result["test_metrics"]["mae"]}
    expected = {"test_loss": by_hand["test_loss"], "mae": by_hand["test_metrics"]["mae"]}
    assert seen == expected, f"job {seen} != by hand {expected}"
    log(f"seed job {job_id}: test loss {seen['test_loss']!r}, MAE {seen['mae']!r} = by hand")
    return job_id


def check_restart_mid_job(stack: Stack) -> str:
    job_id = stack.submit(long_job(epochs=60))
    stack.wait(job_id, lambda job: job["status"] == "running" and job["progress"]["epoch"] >= 2)
    stack.compose("restart", "worker")
    job = stack.finished(job_id)
    events = stack.http.get(f"/v1/jobs/{job_id}/events").json()["data"]
    handed_back = [e["data"] for e in events if e["data"].get("status") == "queued"]
    assert handed_back, "the restart should have handed the running job back"
    assert len(job["history"]) == 60
    again = stack.finished(stack.submit(long_job(epochs=60)))  # the same job, undisturbed
    assert (job["history"], job["result"]["test_metrics"]) == (
        again["history"],
        again["result"]["test_metrics"],
    ), "the resumed job's numbers differ from the undisturbed run's"
    log(
        f"job {job_id} survived `restart worker` after epoch {handed_back[-1]['from_epoch']} "
        "with the undisturbed run's numbers, bit for bit"
    )
    return job_id


def check_two_workers(stack: Stack) -> list[str]:
    stack.compose("up", "-d", "--scale", "worker=2")
    stack.ready(training_workers=2)
    ids = [stack.submit(long_job(epochs=30)) for _ in range(2)]

    def both_running() -> bool:
        return all(stack.job(job_id)["status"] == "running" for job_id in ids)

    wait_for(both_running, JOB_TIMEOUT, 0.2, "two jobs running at once")
    for job_id in ids:
        stack.finished(job_id)
    log(f"jobs {ids} trained at once on two worker containers")
    return ids


def check_webhook(stack: Stack) -> None:
    """A webhook's test event goes through the outbox, the webhooks queue and its worker,
    and its attempt is recorded. The address is public (a private one is refused), so on a
    machine without the internet the attempt fails to connect: recorded all the same."""
    created = stack.http.post(
        "/v1/webhooks",
        json={"url": "https://93.184.216.34/fitq-compose-check", "events": ["job.succeeded"]},
    )
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    assert stack.http.post(f"/v1/webhooks/{hook_id}/test").status_code == 202

    def attempted() -> dict[str, Any] | None:
        [delivery] = stack.http.get(f"/v1/webhooks/{hook_id}/deliveries").json()["data"]
        return delivery if delivery["attempts"] else None

    delivery = wait_for(attempted, 120, 1, "the webhook's first attempt")
    attempt = delivery["attempts"][0]
    log(f"webhook test event attempted: {attempt['status_code'] or attempt['error']}")
    assert stack.http.delete(f"/v1/webhooks/{hook_id}").status_code == 204


def check_down_up(stack: Stack, job_ids: list[str]) -> None:
    before = {job_id: stack.job(job_id)["status"] for job_id in job_ids}
    models = {job_id: stack.model_digest(job_id) for job_id in job_ids}
    datasets = {d["id"] for d in stack.http.get("/v1/datasets").json()["data"]}
    stack.compose("down")
    stack.compose("up", "-d")
    stack.ready()
    assert {job_id: stack.job(job_id)["status"] for job_id in job_ids} == before
    assert {job_id: stack.model_digest(job_id) for job_id in job_ids} == models
    after = {d["id"] for d in stack.http.get("/v1/datasets").json()["data"]}
    assert datasets and datasets <= after, (datasets, after)
    log(f"down / up kept {len(job_ids)} jobs, their models and {len(datasets)} datasets")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    started_at = time.monotonic()
    upstream_images()
    log("building the project's images (docker compose build)")
    compose("build")
    stack = Stack(free_port())
    with started(stack, args.keep):
        stack.ready()
        check_containers(stack)
        stack.key()
        log("up, ready and healthy; fitq's containers are not root")
        check_webhook(stack)
        jobs = [check_seed_job(stack), check_restart_mid_job(stack), *check_two_workers(stack)]
        check_down_up(stack, jobs)
        check_containers(stack)
    log(f"passed in {time.monotonic() - started_at:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
