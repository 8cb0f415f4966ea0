"""Job use cases: create (validate, store data, commit, then send the id), read, list.
Commits happen here, once per use case; queries live in the repository."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fitq.errors import SpecError, not_found
from fitq.ids import JOB_PREFIX, is_valid_id, new_id
from fitq.queues import TRAIN_QUEUE
from fitq.schemas import JobList, JobRead
from fitq.spec import (
    DatasetRef,
    InlineArrays,
    JobCreate,
    JobSpec,
    StoredData,
    StoredDataSpec,
    Validation,
    validate_job,
)
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Job
from fitq.store.types import utcnow
from service.context import ServiceContext
from service.datasets.service import (
    inline_split,
    resolve_reference,
    store_inline,
    stored_data,
)
from service.jobs.presenter import job_read
from service.pagination import decode_cursor, encode_cursor
from service.queue import BrokerUnavailable


@dataclass(frozen=True)
class CheckedJob:
    validation: Validation
    inline: dict[str, InlineArrays]
    referenced: dict[str, StoredData]


def check_job(ctx: ServiceContext, tenant_id: str, body: JobCreate) -> CheckedJob:
    """Every check a job passes before anything is written: what ``/v1/validate`` answers."""
    sources = body.data.sources()
    inline = {s: src for s, src in sources.items() if isinstance(src, InlineArrays)}
    refs = {s: src for s, src in sources.items() if isinstance(src, DatasetRef)}
    for split, arrays in inline.items():
        if len(arrays.x) > ctx.settings.max_inline_rows:
            raise SpecError(
                f"data.{split}.x",
                f"expected at most {ctx.settings.max_inline_rows} rows inline, "
                f"received {len(arrays.x)}: upload larger data as a dataset",
            )
    with transaction(ctx.sessions) as session:
        resolved = {s: resolve_reference(session, tenant_id, s, r) for s, r in refs.items()}
    referenced = {s: stored for s, (stored, _) in resolved.items()}
    splits = {
        **{s: inline_split(a) for s, a in inline.items()},
        **{s: split for s, (_, split) in resolved.items()},
    }
    validation = validate_job(
        body.model,
        body.compile,
        body.fit,
        splits,
        test_split=body.data.test_split,
        max_params=ctx.settings.max_params,
        standardize=body.data.standardize,
    )
    return CheckedJob(validation, inline, referenced)


def create_job(ctx: ServiceContext, tenant_id: str, body: JobCreate) -> JobRead:
    checked = check_job(ctx, tenant_id, body)
    new_datasets = {s: store_inline(ctx.artifacts, tenant_id, a) for s, a in checked.inline.items()}
    stored = checked.referenced | {s: stored_data(d) for s, d in new_datasets.items()}

    spec = JobSpec(
        model=body.model,
        compile=body.compile,
        fit=body.fit,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        data=StoredDataSpec(
            **stored,
            test_split=body.data.test_split,
            shuffle_before_split=body.data.shuffle_before_split,
            standardize=body.data.standardize,
            label_encoding=checked.validation.label_encoding,
        ),
    )
    job = Job(
        id=new_id(JOB_PREFIX),
        tenant_id=tenant_id,
        status=JobStatus.queued,
        queue=TRAIN_QUEUE,
        spec=spec.model_dump(mode="json"),
        epochs=spec.fit.epochs,
        history=[],
        attempt=0,
        sends=0,
        epoch=0,
        cancel_requested=False,
    )
    with transaction(ctx.sessions) as session:
        for dataset in new_datasets.values():
            repo.add_dataset(session, dataset)
        repo.add_job(session, job)
    # The row is committed first; only then does its id go to the broker (rule 1).
    send_job(ctx, job.id, job.queue)
    return get_job(ctx, tenant_id, job.id)


def send_job(ctx: ServiceContext, job_id: str, queue: str) -> bool:
    """Send the job's id; a broker that refuses fails the job with ``broker_unavailable``."""
    try:
        ctx.queue.send_train(job_id, queue)
    except BrokerUnavailable as exc:
        with transaction(ctx.sessions) as session:
            repo.fail_unsent(session, job_id, str(exc))
        return False
    with transaction(ctx.sessions) as session:
        repo.mark_sent(session, job_id, utcnow())
    return True


def _find_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The caller's job, or 404 for a malformed, unknown or other tenant's id alike."""
    job = repo.get_job(session, tenant_id, job_id) if is_valid_id(job_id, JOB_PREFIX) else None
    if job is None:
        raise not_found("job", job_id)
    return job


def get_job(ctx: ServiceContext, tenant_id: str, job_id: str) -> JobRead:
    with transaction(ctx.sessions) as session:
        return job_read(_find_job(session, tenant_id, job_id))


def get_model_key(ctx: ServiceContext, tenant_id: str, job_id: str) -> str:
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if job.model_key is None:
            raise not_found("model of job", job_id)
        return job.model_key


def list_jobs(
    ctx: ServiceContext,
    tenant_id: str,
    *,
    status: JobStatus | None,
    limit: int,
    after: str | None,
) -> JobList:
    before_id = decode_cursor(after, JOB_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        rows = repo.list_jobs(session, tenant_id, status=status, limit=limit, before_id=before_id)
        page = [job_read(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    return JobList(
        data=page,
        has_more=has_more,
        next_after=encode_cursor(page[-1].id) if has_more and page else None,
    )
