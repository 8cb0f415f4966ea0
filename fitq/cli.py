"""The ``fitq`` command line: ``fitq serve`` (API + worker on embedded defaults) and
``fitq db upgrade``. It starts the API and the worker by their standard commands and never
imports them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE, TRAIN_QUEUE, prepare_broker
from fitq.settings import Settings

app = typer.Typer(help="fitq: Keras training as a service.", no_args_is_help=True)
db_app = typer.Typer(help="The job store.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the job store (FITQ_DATABASE_URL, or the embedded SQLite file) to the latest."""
    from fitq.store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    console.print("[green]database is at the latest revision[/green]")


def api_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "service.main:app",
        "--host",
        host,
        "--port",
        str(port),
    ]


def worker_command(settings: Settings, name: str = "fitq", queue: str = TRAIN_QUEUE) -> list[str]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", queue, "--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h",
    ]  # fmt: skip
    if settings.uses_filesystem_broker:
        # The filesystem transport has no fan-out exchange for worker-to-worker chatter.
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return command


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address the API binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8000,
) -> None:
    """Start the API, a training worker and an ingest + inference worker as child processes,
    on embedded defaults unless FITQ_DATABASE_URL / FITQ_BROKER_URL say otherwise. Migrates
    first."""
    from fitq.store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_broker(settings)
    upgrade(settings.resolved_database_url)
    env = {**os.environ, **settings.child_env()}
    console.print(f"fitq: data in {settings.data_dir}; API on http://{host}:{port}")
    children = [
        subprocess.Popen(api_command(host, port), env=env),
        subprocess.Popen(worker_command(settings), env=env),
        # Uploads and predictions share a second worker: neither waits behind training.
        subprocess.Popen(
            worker_command(settings, "fitq-service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}"), env=env
        ),
    ]
    sys.exit(_supervise(children))


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait until a signal or a child's exit, then stop every child; returns an exit code."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            console.print(f"[red]fitq: a child process exited ({code}); stopping[/red]")
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return code


def main() -> None:
    app()
