"""``fitq sweep`` and ``fitq sweeps``: start a hyperparameter sweep and follow its trials
with the best so far; list, show, cancel and delete sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fitq.cli_remote import AsJson, Key, Url, dump, err, out, print_table, read_spec, session
from fitq.client import Client
from fitq.schemas import SweepRead

sweeps_app = typer.Typer(
    help="Hyperparameter sweeps: list, show, cancel, delete.", no_args_is_help=True
)


def sweep(
    spec_file: Annotated[
        Path,
        typer.Argument(
            help="A sweep body as JSON: job (a POST /v1/jobs body), space, objective, sampler, "
            "pruner, max_trials, parallelism, seed.",
            exists=True,
        ),
    ],
    wait: Annotated[bool, typer.Option(help="Show the trials until the sweep ends.")] = False,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Start a sweep: trials of the job with values of the space drawn by Optuna.

    With --wait, a bar counts the trials that ended and shows the best value so far; at
    the end, the trials table and the best trial's job (its model: fitq model JOB_ID).
    """
    spec = read_spec(spec_file)
    with session(url, key) as client:
        found = client.sweeps.create(spec)
        if not as_json:
            err.print(f"sweep {found.id} {found.status}")
        if wait:
            found = follow_sweep(client, found) if not as_json else client.sweeps.wait(found.id)
        if as_json:
            dump(found)
        elif wait:
            print_sweep(found)
        else:
            print(found.id)
    if wait and found.status != "succeeded":
        raise typer.Exit(1)


def _ended(view: SweepRead) -> int:
    return sum(1 for t in view.trials if t.state not in ("queued", "running"))


def follow_sweep(client: Client, sweep: SweepRead) -> SweepRead:
    """A bar of the trials that ended, with the running count and the best value so far."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("trials {task.completed}/{task.total}"),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(sweep.id, total=sweep.max_trials, state=sweep.status)

        def update(view: SweepRead) -> None:
            running = view.counts.get("running", 0) + view.counts.get("queued", 0)
            best = f"best {view.best.value:.6g} (trial {view.best.number})" if view.best else ""
            state = f"{running} running  {best}" if running else best or view.status
            progress.update(task, completed=_ended(view), state=state)

        return client.sweeps.wait(sweep.id, poll=0.5, on_update=update)


def print_sweep(sweep: SweepRead) -> None:
    """The trials table, then the best trial (or why there is none)."""
    metric = sweep.spec.objective.metric
    paths = list(sweep.spec.space)
    rows = [
        [
            str(t.number),
            t.job_id,
            t.state,
            f"{t.value:.6g}" if t.value is not None else "",
            str(t.epochs),
            *(
                f"{t.params[p]:.4g}" if isinstance(t.params.get(p), float) else str(t.params.get(p))
                for p in paths
            ),
        ]
        for t in sweep.trials
    ]
    print_table(["trial", "job", "state", metric, "epochs", *paths], rows)
    if sweep.best is None:
        err.print(
            f"[red]sweep {sweep.id} {sweep.status}: {sweep.error or 'no trial completed'}[/red]"
        )
        return
    best = sweep.best
    out.print(f"best: trial {best.number}, {metric} {best.value:.6g}, job {best.job_id}")
    for path, value in best.params.items():
        out.print(f"  {path} = {value!r}")
    out.print(f"its model: fitq model {best.job_id} -o model.keras")


@sweeps_app.command("list")
def sweeps_list(url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Your sweeps, newest first."""
    with session(url, key) as client:
        found = list(client.sweeps.list())
    if as_json:
        dump(found)
        return
    rows = [
        [
            s.id,
            s.status,
            f"{_ended(s)}/{s.max_trials}",
            f"{s.best.value:.6g}" if s.best else "",
            s.created_at.isoformat(timespec="seconds"),
        ]
        for s in found
    ]
    print_table(["id", "status", "trials", "best", "created"], rows)


@sweeps_app.command("show")
def sweeps_show(sweep_id: str, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """A sweep's trials and its best trial."""
    with session(url, key) as client:
        found = client.sweeps.get(sweep_id)
    if as_json:
        dump(found)
    else:
        print_sweep(found)


@sweeps_app.command("cancel")
def sweeps_cancel(sweep_id: str, url: Url = None, key: Key = None) -> None:
    """Start no new trial; stop the queued and running ones."""
    with session(url, key) as client:
        found = client.sweeps.cancel(sweep_id)
    print(f"{found.id} {found.status}")


@sweeps_app.command("rm")
def sweeps_rm(sweep_id: str, url: Url = None, key: Key = None) -> None:
    """Delete a finished sweep and its trials' jobs."""
    with session(url, key) as client:
        client.sweeps.delete(sweep_id)
    print(f"{sweep_id} deleted")


def register(app: typer.Typer) -> None:
    app.command()(sweep)
    app.add_typer(sweeps_app, name="sweeps")
