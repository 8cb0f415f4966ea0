"""Real processes for integration tests: the API under uvicorn and a Celery worker, started by
their standard commands, with logs in files the tests can read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from fitq.cli import api_command, worker_command
from fitq.queues import TRAIN_QUEUE
from fitq.settings import Settings

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T | None], timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or check}")


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: a host dying mid-job."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> Child:
    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    return Child(process, log_path)


def child_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITQ_")}
    env.update(settings_env)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@dataclass
class Stack:
    """An API process and worker processes sharing one store, broker and data dir."""

    env: dict[str, str]
    workdir: Path
    api: Child | None = None
    workers: list[Child] = field(default_factory=list)  # training workers, last started last
    base_url: str = ""

    @property
    def settings(self) -> Settings:
        return Settings(
            **{
                k.removeprefix("FITQ_").lower(): v
                for k, v in self.env.items()
                if k.startswith("FITQ_")
            }
        )

    def start_api(self, *uvicorn_args: str, port: int | None = None) -> None:
        """On a free port, or on ``port`` (a restart where clients expect it)."""
        port = port or free_port()
        command = [*api_command("127.0.0.1", port), *uvicorn_args]
        self.api = spawn(command, child_env(self.env), self.workdir / "api.log")
        self.base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert self.api is not None
            if self.api.process.poll() is not None:
                raise RuntimeError(f"API exited:\n{self.api.log()}")
            try:
                return httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, 0.1, "the API")

    def start_worker(self, name: str | None = None, queue: str = TRAIN_QUEUE) -> Child:
        name = name or f"w{len(self.workers)}"
        command = worker_command(self.settings, name, queue)
        worker = spawn(command, child_env(self.env), self.workdir / f"worker-{name}.log")
        self.workers.append(worker)

        def ready() -> bool:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log()}")
            return " ready." in worker.log()

        wait_for(ready, 120, 0.2, "the worker")
        return worker

    def stop(self) -> None:
        for child in [*self.workers, *([self.api] if self.api else [])]:
            child.stop()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60)


def poll_job(
    client: httpx.Client, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll GET /v1/jobs/{id} every 20 ms until ``until(job)``; returns it and every view seen."""
    seen: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        seen.append(job)
        return job if until(job) else None

    return wait_for(check, timeout, 0.02, f"job {job_id}"), seen


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in {"succeeded", "failed", "cancelled"}


def pool_child(parent: int) -> int:
    """The pid of a Celery worker's one pool process (``--concurrency 1``)."""
    (child,) = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return int(child)


def peak_rss(pid: int) -> int:
    """The process's resident high-water mark (the kernel's ``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmHWM for process {pid}")


def python() -> str:
    return sys.executable
