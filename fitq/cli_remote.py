"""The ``fitq`` commands that talk to a running service through the SDK: submit with a live
progress bar, list, show, cancel, follow events, download models, manage datasets.

The server and key come from ``--url`` / ``--key``, else ``FITQ_URL`` / ``FITQ_API_KEY``, else
``~/.config/fitq/config.toml`` (``url = "…"``, ``api_key = "…"``). ``--json`` prints the API's
JSON for scripts."""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fitq.client import FINISHED, Client, FitqAPIError
from fitq.schemas import JobRead

CONFIG_FILE = Path.home() / ".config" / "fitq" / "config.toml"
out = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="fitq server; FITQ_URL; config file.")]
Key = Annotated[str | None, typer.Option("--key", help="API key; FITQ_API_KEY; config file.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]


def connect(url: str | None, key: str | None) -> Client:
    config: dict[str, Any] = {}
    path = Path(os.environ.get("FITQ_CONFIG", CONFIG_FILE))
    if path.is_file():
        config = tomllib.loads(path.read_text())
    return Client(
        url or os.environ.get("FITQ_URL") or config.get("url") or "http://127.0.0.1:8000",
        key or os.environ.get("FITQ_API_KEY") or config.get("api_key"),
    )


@contextmanager
def session(url: str | None, key: str | None) -> Iterator[Client]:
    """A client; an API error ends the command with its message and exit code 1, a local
    problem (a file that cannot be written) with one line and exit code 2."""
    try:
        with connect(url, key) as client:
            yield client
    except FitqAPIError as exc:
        err.print(f"[red]{exc.status_code} {exc.type}: {exc.message}[/red]", soft_wrap=True)
        for detail in exc.details[1:]:
            err.print(f"[red]  {detail.get('loc')}: {detail.get('message')}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        usage_error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def usage_error(message: str) -> NoReturn:
    """What the user asked for cannot be done here: one line on stderr, exit code 2."""
    err.print(f"[red]fitq: {message}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table in a terminal; tab-separated lines when piped (what ``cut`` and ``awk``
    read). The first column (an id) is never cut or wrapped."""
    if not out.is_terminal:
        for row in (headers, *rows):
            print("\t".join(row))
        return
    table = Table(*headers)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(row[0]) for row in rows), default=0)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def dump(value: BaseModel | Sequence[BaseModel]) -> None:
    if not isinstance(value, BaseModel):
        print(json.dumps([v.model_dump(mode="json") for v in value], indent=2))
    else:
        print(value.model_dump_json(indent=2))


def submit(
    spec_file: Annotated[
        Path,
        typer.Argument(
            help="A job body as JSON (model, compile, fit, data). With --data: the same body "
            "without data.train, which becomes the uploaded dataset.",
            exists=True,
        ),
    ],
    data: Annotated[
        Path | None, typer.Option(help="Upload this file as the training data.", exists=True)
    ] = None,
    target: Annotated[str | None, typer.Option(help="The data's target column(s).")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the job ends.")] = False,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Submit a job; with --data, upload that file first and train on it.

    The spec is what POST /v1/jobs takes. With --data it may leave out data (the upload
    becomes data.train); add data.test_split (or data.test) to get test metrics: without
    either, the job reports training and validation numbers only.
    """
    spec = read_spec(spec_file)
    if not any(key in spec.get("data", {}) for key in ("test", "test_split")):
        err.print("note: no data.test or data.test_split: the job will report no test metrics")
    with session(url, key) as client:
        if data is not None:
            uploaded = client.datasets.upload(data, target=target)
            dataset = client.datasets.wait(uploaded.id)
            if dataset.status != "ready":
                message = dataset.error.message if dataset.error else dataset.status
                err.print(f"[red]dataset {dataset.id} failed: {message}[/red]")
                raise typer.Exit(1)
            spec.setdefault("data", {})["train"] = {"dataset_id": dataset.id}
        job = client.jobs.create(spec)
        if not as_json:
            err.print(f"job {job.id} {job.status}")
        if wait:
            job = follow_progress(client, job) if not as_json else client.jobs.wait(job.id)
        if as_json:
            dump(job)
        elif wait:
            print_outcome(job)
        else:
            print(job.id)
    if wait and job.status != "succeeded":
        raise typer.Exit(1)


def read_spec(path: Path) -> dict[str, Any]:
    """The job body in ``path``; one line and exit code 2 when it is not a JSON object."""
    try:
        spec = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        hint = " (the data goes in --data)" if path.suffix.lower() in DATA_SUFFIXES else ""
        usage_error(f"{path} is not a JSON job body{hint}: {exc}")
    if not isinstance(spec, dict):
        usage_error(
            f"{path} is not a JSON job body: expected an object, received {type(spec).__name__}"
        )
    return spec


DATA_SUFFIXES = {".csv", ".jsonl", ".ndjson", ".npz"}


def follow_progress(client: Client, job: JobRead) -> JobRead:
    """A bar per epoch with the latest loss and val_loss, until the job ends."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[metrics]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(job.id, total=job.progress.epochs, metrics="queued")

        def update(view: JobRead) -> None:
            last = view.history[-1] if view.history else None
            shown: str = view.status
            if last is not None:
                parts = [
                    f"{k} {v:.4g}"
                    for k, v in last.items()
                    if k in ("loss", "val_loss") and v is not None
                ]
                shown = " ".join(parts) or view.status
            progress.update(task, completed=view.progress.epoch, metrics=shown)

        return client.jobs.wait(job.id, poll=0.25, on_update=update)


def print_outcome(job: JobRead) -> None:
    if job.status != "succeeded" or job.result is None:
        reason = f"{job.error.type}: {job.error.message}" if job.error else job.status
        err.print(f"[red]job {job.id} {job.status} ({reason})[/red]")
        return
    result = job.result
    if result.test_loss is not None:
        out.print(f"test loss {result.test_loss:.6g}")
    for name, value in result.test_metrics.items():
        out.print(f"test {name} {value:.6g}" if value is not None else f"test {name} n/a")
    out.print(f"trained in {result.train_seconds:.2f} s; model: fitq model {job.id} -o model.keras")


def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    with session(url, key) as client:
        listed = []
        for job in client.jobs.list(status=status, page_size=min(limit, 100)):
            listed.append(job)
            if len(listed) >= limit:
                break
    if as_json:
        dump(listed)
        return
    rows = []
    for job in listed:
        loss = job.result.test_loss if job.result else None
        rows.append(
            (
                job.id,
                job.status,
                f"{job.progress.epoch}/{job.progress.epochs}",
                f"{job.created_at:%Y-%m-%d %H:%M:%S}",
                f"{loss:.6g}" if loss is not None else "",
            )
        )
    print_table(("id", "status", "epoch", "created", "test loss"), rows)


def show(job_id: str, url: Url = None, key: Key = None) -> None:
    """A job as the API returns it (JSON)."""
    with session(url, key) as client:
        dump(client.jobs.get(job_id))


def cancel(job_id: str, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Cancel a queued or running job."""
    with session(url, key) as client:
        job = client.jobs.cancel(job_id)
    dump(job) if as_json else print(f"job {job.id} {job.status}, cancel requested")


def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Wait for more.")] = False,
    url: Url = None,
    key: Key = None,
) -> None:
    """The job's events, one line each; --follow keeps printing until the job ends."""
    with session(url, key) as client:
        after = print_events(client, job_id, 0)
        while follow:
            finished = client.jobs.get(job_id).status in FINISHED
            after = print_events(client, job_id, after)  # the final events land with the status
            if finished:
                return
            time.sleep(0.5)


def print_events(client: Client, job_id: str, after: int) -> int:
    """Print the events after ``after``; returns the last seq printed."""
    for event in client.jobs.events(job_id, after=after):
        fields = " ".join(f"{k}={v}" for k, v in event.data.items())
        print(f"{event.time:%H:%M:%S} #{event.seq} {event.type} {fields}", flush=True)
        after = event.seq
    return after


def model(
    job_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write it.")] = Path(
        "model.keras"
    ),
    url: Url = None,
    key: Key = None,
) -> None:
    """Download the trained model (.keras)."""
    with session(url, key) as client:
        path = client.jobs.download_model(job_id, output)
    print(path)


datasets_app = typer.Typer(help="Datasets: upload once, train many times.", no_args_is_help=True)


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(exists=True, help="A .csv, .jsonl or .npz file.")],
    target: Annotated[str | None, typer.Option(help="Target column(s), comma-separated.")] = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Upload and wait until it is parsed (ready or failed)."""
    with session(url, key) as client:
        dataset = client.datasets.wait(client.datasets.upload(file, target=target).id)
    if as_json:
        dump(dataset)
    elif dataset.status == "ready":
        print(f"{dataset.id} ready: {dataset.rows} rows, x {dataset.x_shape}, y {dataset.y_shape}")
    else:
        err.print(
            f"[red]{dataset.id} failed: {dataset.error.message if dataset.error else ''}[/red]"
        )
        raise typer.Exit(1)


@datasets_app.command("list")
def datasets_list(url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Every dataset, newest first."""
    with session(url, key) as client:
        listed = list(client.datasets.list())
    if as_json:
        dump(listed)
        return
    rows = [
        (
            dataset.id,
            dataset.status,
            dataset.filename or dataset.source,
            str(dataset.rows or ""),
            f"{dataset.size_bytes:,}" if dataset.size_bytes else "",
        )
        for dataset in listed
    ]
    print_table(("id", "status", "file", "rows", "bytes"), rows)


@datasets_app.command("rm")
def datasets_rm(dataset_id: str, url: Url = None, key: Key = None) -> None:
    """Delete a dataset no queued or running job uses."""
    with session(url, key) as client:
        client.datasets.delete(dataset_id)
    print(f"{dataset_id} deleted")


def register(app: typer.Typer) -> None:
    for command in (submit, jobs, show, cancel, logs, model):
        app.command()(command)
    app.add_typer(datasets_app, name="datasets")
