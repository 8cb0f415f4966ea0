"""Sweep use cases: create (check the job and every parameter's extremes, store the data
once, commit the sweep, start its first trials), read, list, cancel, delete. The trials
themselves are started by ``fitq.sweeps.advance``, from here, from the sweeper and from the
workers that end them."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from anyio import to_thread
from pydantic import ValidationError
from sqlalchemy.orm import Session

from fitq.artifacts import job_prefix
from fitq.errors import SpecError, conflict, not_found
from fitq.ids import SWEEP_PREFIX, is_valid_id, new_id
from fitq.liveness import live_since
from fitq.settings import Settings
from fitq.spec import JobCreate, JobSpec, ModelSpec
from fitq.spec.error_words import error_detail
from fitq.spec.job import MAX_SEED
from fitq.spec.sweep import SweepCreate, check_sweep, extreme_trials
from fitq.statuses import SweepStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Dataset, Sweep
from fitq.store.types import utcnow
from fitq.sweeps.advance import advance_sweep
from fitq.sweeps.document import sweep_document
from service.capacity import queues_served, training_queue
from service.context import ServiceContext
from service.datasets.service import StoredDataset
from service.jobs.checks import check_job, check_job_async, referenced_ids
from service.jobs.fine_tuning import read_source_model, resolved_with, source_model
from service.jobs.limits import check_job_quotas
from service.jobs.presenter import render_json
from service.jobs.sending import send_committed_job
from service.jobs.service import job_spec, store_data
from service.jobs.submission_store import SubmissionFactsQuery
from service.pagination import decode_cursor, page_document
from service.webhooks.service import send_webhooks


def job_of(sweep: SweepCreate) -> JobCreate:
    """The sweep's job, refused at ``job.<field>`` as ``POST /v1/jobs`` would refuse it."""
    try:
        return JobCreate.model_validate(sweep.job)
    except ValidationError as exc:
        detail = error_detail(dict(exc.errors()[0]))
        raise SpecError(f"job.{detail.loc}", detail.message, detail.received) from None


async def create_sweep(ctx: ServiceContext, tenant_id: str, body: SweepCreate) -> tuple[str, bytes]:
    """The new sweep's id and document, its first trials queued."""
    settings = ctx.settings
    job = job_of(body)
    if body.parallelism > settings.max_active_jobs:
        raise SpecError(
            "parallelism",
            f"expected at most {settings.max_active_jobs} (FITQ_MAX_ACTIVE_JOBS, the queued or "
            f"running jobs a tenant may have), received {body.parallelism}",
            body.parallelism,
        )
    now = utcnow()
    facts = await ctx.submission_store.read_facts(
        SubmissionFactsQuery(
            tenant_id,
            referenced_ids(job),
            live_since=live_since(settings, now) if job.resources.gpus is None else None,
        )
    )
    check_job_quotas(settings, facts.active_jobs, None)
    source = None
    if job.model.from_job is not None:
        source = await to_thread.run_sync(read_source_model, ctx, tenant_id, job.model.from_job)
    resolved = resolved_with(job, source)
    checked = await check_job_async(settings, facts.datasets, resolved)
    await to_thread.run_sync(_check_space, settings, facts.datasets, body, source)
    queue = training_queue(job.resources.gpus, queues_served(facts.live_queues))
    new_datasets, stored = await store_data(ctx, tenant_id, checked, facts.stored_bytes)
    template = job_spec(resolved, queue, checked.validation, stored).model_dump(mode="json")
    template["seed"] = job.seed  # None: each trial's seed is the sweep's plus its number
    _check_template(body, template)
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED - 1000)
    accepted = body.model_copy(update={"job": template, "seed": seed})
    sweep_id = new_id(SWEEP_PREFIX)
    sweep = Sweep(
        id=sweep_id,
        tenant_id=tenant_id,
        status=SweepStatus.queued.value,
        spec=accepted.model_dump(mode="json"),
        queue=queue,
        trials=0,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
    )
    await to_thread.run_sync(_commit_and_start, ctx, sweep, list(new_datasets.values()))
    return sweep_id, await to_thread.run_sync(read_sweep, ctx, tenant_id, sweep_id)


def _check_space(
    settings: Settings,
    datasets: Mapping[str, StoredDataset],
    sweep: SweepCreate,
    source: dict[str, Any] | None,
) -> None:
    def check(job: JobCreate) -> ModelSpec:
        resolved = resolved_with(job, source)
        check_job(settings, datasets, resolved)
        return source_model(resolved)

    check_sweep(sweep, check)


def _check_template(sweep: SweepCreate, template: dict[str, Any]) -> None:
    """Each extreme value set into the stored job (what the trials are made from) makes a
    job too: a path may name a field the body and the stored job spell differently."""
    stored = sweep.model_copy(update={"job": {**template, "seed": 0}})
    for path, value, body in extreme_trials(stored):
        try:
            JobSpec.model_validate(body)
        except ValidationError as exc:
            detail = error_detail(dict(exc.errors()[0]))
            raise SpecError(
                f"space.{path}",
                f"expected values that make a valid job, received {value!r}: "
                f"{detail.loc}: {detail.message}",
                value,
            ) from None


def _commit_and_start(ctx: ServiceContext, sweep: Sweep, datasets: list[Dataset]) -> None:
    with transaction(ctx.sessions) as session:
        for dataset in datasets:
            session.add(dataset)
        repo.add_sweep(session, sweep)
    advance(ctx, sweep.id)


def advance(ctx: ServiceContext, sweep_id: str) -> None:
    advance_sweep(
        ctx.sessions,
        ctx.settings,
        sweep_id,
        lambda job_id, queue, runtime: send_committed_job(ctx, job_id, queue, runtime),
    )


def _find_sweep(session: Session, tenant_id: str, sweep_id: str, lock: bool = False) -> Sweep:
    """The caller's sweep, or 404 for a malformed, unknown or other tenant's id alike;
    ``lock``: locked first, for a transaction that changes it (``repo.lock_sweep``)."""
    sweep = None
    if is_valid_id(sweep_id, SWEEP_PREFIX):
        sweep = (
            repo.lock_sweep(session, sweep_id)
            if lock
            else repo.get_sweep(session, tenant_id, sweep_id)
        )
    if sweep is None or sweep.tenant_id != tenant_id:
        raise not_found("sweep", sweep_id)
    return sweep


def read_sweep(ctx: ServiceContext, tenant_id: str, sweep_id: str) -> bytes:
    with transaction(ctx.sessions) as session:
        sweep = _find_sweep(session, tenant_id, sweep_id)
        rows = repo.trial_rows(session, [sweep_id])[sweep_id]
        return render_json(sweep_document(sweep, rows))


def list_sweeps(
    ctx: ServiceContext,
    tenant_id: str,
    *,
    status: SweepStatus | None,
    limit: int,
    after: str | None,
) -> bytes:
    before_id = decode_cursor(after, SWEEP_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        sweeps = repo.list_sweeps(
            session, tenant_id, status=status, limit=limit, before_id=before_id
        )
        page = sweeps[:limit]
        trials = repo.trial_rows(session, [s.id for s in page])
        data = [sweep_document(s, trials[s.id]) for s in page]
    return render_json(page_document(data, len(sweeps), limit))


def cancel_sweep(ctx: ServiceContext, tenant_id: str, sweep_id: str) -> bytes:
    """No new trial starts; queued trials are cancelled at once, running ones stop at their
    next batch; the sweep ends ``cancelled`` when the last has stopped. Repeating is
    harmless; a sweep that ended otherwise answers 409."""
    with transaction(ctx.sessions) as session:
        sweep = _find_sweep(session, tenant_id, sweep_id, lock=True)
        status = SweepStatus(sweep.status)
        if status.finished and status != SweepStatus.cancelled:
            raise conflict(
                f"sweep {sweep_id} has already {status}; only a queued or running sweep can be "
                "cancelled"
            )
        sweep.cancel_requested = True
    advance(ctx, sweep_id)
    send_webhooks(ctx)  # queued trials' job.cancelled, and sweep.completed if it ended
    return read_sweep(ctx, tenant_id, sweep_id)


def delete_sweep(ctx: ServiceContext, tenant_id: str, sweep_id: str) -> None:
    """A finished sweep goes with its trials' jobs, their rows and files."""
    with transaction(ctx.sessions) as session:
        sweep = _find_sweep(session, tenant_id, sweep_id, lock=True)
        if not SweepStatus(sweep.status).finished:
            raise conflict(
                f"sweep {sweep_id} is {sweep.status}; cancel it, then delete it once it has stopped"
            )
        job_ids = repo.delete_sweep(session, sweep)
    for job_id in job_ids:
        ctx.artifacts.delete_prefix(job_prefix(job_id))


def advance_active_sweeps(ctx: ServiceContext) -> None:
    """The sweeper's step: every sweep not finished advanced (new trials where one ended
    and no worker advanced it, a cancel passed on, a sweep whose last trial ended)."""
    with transaction(ctx.sessions) as session:
        sweep_ids = repo.active_sweep_ids(session)
    for sweep_id in sweep_ids:
        advance(ctx, sweep_id)
