"""The ``fitq`` command line: ``fitq serve`` (API + workers on embedded defaults),
``fitq worker`` (a host's training workers, one per GPU group), ``fitq db upgrade`` and
``fitq keys``. It starts the API and the worker by their standard commands and never
imports them."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import unicodedata
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console

from fitq import cli_remote, cli_sweeps, cli_webhooks, keys
from fitq.devices import parse_gpus, plan_workers
from fitq.keys import Role
from fitq.queues import (
    DATASETS_QUEUE,
    INFERENCE_QUEUE,
    TRAIN_QUEUE,
    WEBHOOK_THREADS,
    WEBHOOKS_QUEUE,
    prepare_broker,
)
from fitq.settings import Settings
from fitq.supervise import Child, Supervisor

app = typer.Typer(
    help="fitq: Keras training as a service.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # paragraphs reflow: no line breaks in mid-sentence
)
cli_remote.register(app)  # submit, jobs, show, cancel, logs, model, datasets
cli_sweeps.register(app)  # sweep, sweeps
cli_webhooks.register(app)  # webhooks
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


ApiHost = Annotated[str, typer.Option(help="Address the API binds.")]
ApiPort = Annotated[int, typer.Option(help="Port the API listens on.")]
# uvicorn's httptools protocol with fitq's limits on request heads (431, 408).
HTTP_PROTOCOL = "service.http_protocol:LimitedHttpToolsProtocol"


def api_command(host: str, port: int) -> list[str]:
    """The API's process: uvicorn on fitq's app and protocol (``fitq api``, ``fitq serve``,
    the image's command alike)."""
    return [
        sys.executable, "-m", "uvicorn", "service.main:app",
        "--host", host, "--port", str(port), "--http", HTTP_PROTOCOL,
    ]  # fmt: skip


@app.command()
def api(
    host: ApiHost = "127.0.0.1",
    port: ApiPort = 8000,
) -> None:
    """Start the API alone (uvicorn), on a migrated store; workers run elsewhere
    (`fitq worker`). What the API image runs."""
    command = api_command(host, port)
    os.execv(command[0], command)


def worker_command(settings: Settings, name: str = "fitq", queue: str = TRAIN_QUEUE) -> list[str]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", queue, "--loglevel", "INFO", "-n", f"{name}@%h",
    ]  # fmt: skip
    if queue == WEBHOOKS_QUEUE:
        # Deliveries wait on the network, not the CPU: threads, several at once.
        command += ["--pool", "threads", "--concurrency", str(WEBHOOK_THREADS)]
    else:
        command += ["--concurrency", "1"]
    if settings.uses_filesystem_broker:
        # The filesystem transport has no fan-out exchange for worker-to-worker chatter.
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return command


@app.command()
def serve(
    host: ApiHost = "127.0.0.1",
    port: ApiPort = 8000,
) -> None:
    """Start the API, a training worker, an ingest, an inference and a webhook worker as child
    processes,
    on embedded defaults unless FITQ_DATABASE_URL / FITQ_BROKER_URL say otherwise. Migrates
    first."""
    from fitq.store.migrate import upgrade

    settings = Settings()
    auth = serve_auth(host, os.environ.get("FITQ_AUTH"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_broker(settings)
    upgrade(settings.resolved_database_url)
    env = {**os.environ, **settings.child_env(), "FITQ_AUTH": auth}
    console.print(f"fitq: data in {settings.data_dir}; API on http://{host}:{port}")
    if auth == "off":
        console.print(
            "fitq: authentication is OFF (bound to loopback); set FITQ_AUTH=on to require keys"
        )
    children = [
        Child("the API", api_command(host, port), env),
        worker_child("the training worker", settings, "fitq", TRAIN_QUEUE, env),
        # Uploads and predictions each have a worker of their own: neither waits behind
        # training, and a slow upload (a wide CSV, a large .npz) never holds up predictions.
        worker_child("the ingest worker", settings, "fitq-ingest", DATASETS_QUEUE, env),
        worker_child("the inference worker", settings, "fitq-inference", INFERENCE_QUEUE, env),
        worker_child("the webhook worker", settings, "fitq-webhooks", WEBHOOKS_QUEUE, env),
    ]
    sys.exit(Supervisor(children, say=_say).run_until_signalled())


@app.command()
def worker(
    gpus: Annotated[
        str, typer.Option(help="GPUs to use: all, none, a count, or device=0,2.")
    ] = "all",
    gpus_per_job: Annotated[
        int, typer.Option(help="GPUs per process; jobs asking for k GPUs use queue gpu<k>.")
    ] = 1,
    cpu_workers: Annotated[int, typer.Option(help="CPU processes on a host with no GPU.")] = 1,
    dry_run: Annotated[bool, typer.Option(help="Print the plan as JSON and exit.")] = False,
) -> None:
    """Start this host's training workers: one Celery process per group of GPUs, its devices
    fixed before TensorFlow loads (CUDA_VISIBLE_DEVICES), one job at a time; CPU workers on a
    host without GPUs. Stops them all on SIGTERM (each drains its job back to the queue)."""
    settings = Settings()
    try:
        ids = parse_gpus(gpus, detected_gpus())
        plans = plan_workers(ids, gpus_per_job, cpu_workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if dry_run:
        print(json.dumps([asdict(plan) for plan in plans], indent=2))
        return
    prepare_broker(settings)
    base = {**os.environ, **settings.child_env()}
    children = []
    for index, plan in enumerate(plans):
        console.print(f"fitq: worker {plan.name} on queue {plan.queue}, devices {plan.devices}")
        env = {**base, **plan.env}
        if settings.worker_metrics_port is not None:  # one port per process: base, base + 1, …
            env["FITQ_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + index)
        children.append(worker_child(f"worker {plan.name}", settings, plan.name, plan.queue, env))
    sys.exit(Supervisor(children, say=_say).run_until_signalled())


def worker_child(
    title: str, settings: Settings, name: str, queue: str, env: dict[str, str]
) -> Child:
    """A supervised Celery worker whose heartbeat row goes when it dies, so readiness shows
    its queue unserved at once instead of after the row ages out."""
    return Child(
        title,
        worker_command(settings, name, queue),
        env,
        on_death=lambda pid: forget_worker_process(settings, pid),
    )


def forget_worker_process(settings: Settings, pid: int) -> None:
    from fitq.store import repository as repo
    from fitq.store.db import make_engine, make_session_factory, transaction

    engine = make_engine(settings.resolved_database_url, pooled=False)
    try:
        with transaction(make_session_factory(engine)) as session:
            repo.remove_worker_process(session, socket.gethostname(), pid)
    finally:
        engine.dispose()


def _say(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def detected_gpus() -> int:
    """NVIDIA GPUs on this host, from ``nvidia-smi -L`` (importing TensorFlow here would take
    seconds and fix devices in the wrong process); 0 without the tool."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def serve_auth(host: str, requested: str | None) -> str:
    """Loopback: off unless asked on. Any other address: keys required; off is refused."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return requested or "off"
    if requested == "off":
        console.print(
            f"[red]fitq: refusing to serve on {host} with FITQ_AUTH=off: anyone who can reach "
            "it could use it. Bind to 127.0.0.1, or create keys (fitq keys create).[/red]"
        )
        sys.exit(2)
    return "on"


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _sessions() -> Any:
    from fitq.store.db import make_engine, make_session_factory

    return make_session_factory(make_engine(Settings().resolved_database_url))


def tenant_name(value: str) -> str:
    """A tenant name as stored: NFC-normalised (one spelling per name), 1 to 64 characters,
    no control or other invisible characters."""
    name = unicodedata.normalize("NFC", value)
    if not name.strip() or len(name) > 64:
        raise typer.BadParameter(
            f"expected a tenant name of 1 to 64 characters, received {value!r}"
        )
    hidden = [c for c in name if unicodedata.category(c).startswith("C")]
    if hidden:
        raise typer.BadParameter(
            f"expected a tenant name without control characters, received {value!r} "
            f"(U+{ord(hidden[0]):04X})"
        )
    return name


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    role: Annotated[Role, typer.Option(help="user, or admin.")] = Role.user,
) -> None:
    """Create a key and print it once (only its prefix and a hash are stored)."""
    from fitq.store import repository as repo
    from fitq.store.db import transaction
    from fitq.store.models import ApiKey

    tenant = tenant_name(tenant)
    new = keys.generate()
    with transaction(_sessions()) as session:
        repo.add_api_key(
            session,
            ApiKey(
                prefix=new.prefix,
                tenant_id=tenant,
                role=role.value,
                secret_sha256=new.secret_sha256,
            ),
        )
    # The key first: nothing printed after the commit may stand between it and its owner.
    print(new.key)
    console.print(
        f"key for tenant {tenant!r} ({role.value}); shown once, store it now", markup=False
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key's prefix, tenant, role, creation and revocation (never a secret)."""
    from fitq.store import repository as repo
    from fitq.store.db import transaction

    with transaction(_sessions()) as session:
        for key in repo.list_api_keys(session):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            created = f"{key.created_at:%Y-%m-%d %H:%M}"
            print("\t".join([key.prefix, key.tenant_id, key.role, created, revoked]))


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke a key by its prefix (the 10 characters after 'fitq_')."""
    from fitq.store import repository as repo
    from fitq.store.db import transaction

    with transaction(_sessions()) as session:
        if not repo.revoke_api_key(session, prefix):
            console.print(f"[red]no active key with prefix {prefix!r}[/red]")
            raise typer.Exit(1)
    console.print(f"key {prefix} revoked")


def main() -> None:
    app()
