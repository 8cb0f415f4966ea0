"""Job use cases: create (validate, store data, commit, then send the id), read, list.
Commits happen here, once per use case; queries live in the repository."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fitq.artifacts import job_prefix
from fitq.devices import gpus_of_queue
from fitq.errors import (
    FitqError,
    RequestErrorType,
    SpecError,
    conflict,
    not_found,
)
from fitq.ids import JOB_PREFIX, is_valid_id, new_id
from fitq.schemas import EventList, JobEventRead, PredictResponse
from fitq.spec import (
    DatasetRef,
    InlineArrays,
    JobCreate,
    JobSpec,
    ResourcesSpec,
    StoredData,
    StoredDataSpec,
    Validation,
    validate_job,
)
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import IdempotencyKey, Job
from fitq.store.types import utcnow
from service.capacity import training_queue
from service.context import ServiceContext
from service.datasets.service import (
    ensure_storage,
    inline_split,
    resolve_reference,
    store_inline,
    stored_data,
)
from service.jobs.limits import check_job_limits, check_job_quotas
from service.jobs.presenter import columns_of, job_document, render_json
from service.pagination import decode_cursor, encode_cursor
from service.queue import BrokerUnavailable


@dataclass(frozen=True)
class CheckedJob:
    validation: Validation
    inline: dict[str, InlineArrays]
    referenced: dict[str, StoredData]


def check_job(ctx: ServiceContext, session: Session, tenant_id: str, body: JobCreate) -> CheckedJob:
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
    check_job_limits(
        ctx.settings, body.fit, validation.model_summary, validation.estimated_work.samples_x_epochs
    )
    return CheckedJob(validation, inline, referenced)


def validate(ctx: ServiceContext, tenant_id: str, body: JobCreate) -> Validation:
    with transaction(ctx.sessions) as session:
        return check_job(ctx, session, tenant_id, body).validation


IDEMPOTENCY_WINDOW = timedelta(hours=24)


def request_hash(body: JobCreate) -> str:
    """The body as canonical JSON (sorted keys, no spaces), hashed."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(session: Session, tenant_id: str, key: str, digest: str) -> str | None:
    """The job an earlier request with this key created, if any (409 for another body)."""
    row = repo.get_idempotency_key(session, tenant_id, key)
    if row is None:
        return None
    if row.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        repo.delete_idempotency_key(session, row)
        return None
    if row.request_hash != digest:
        raise conflict(
            f"Idempotency-Key {key!r} was used for another request body (job {row.job_id}); "
            "expected the same body or a new key",
        )
    return row.job_id


class Submitted(NamedTuple):
    job_id: str
    document: bytes  # the JobRead, rendered
    created: bool


@dataclass(frozen=True)
class Admission:
    """What the one read transaction before a job is written decided."""

    checked: CheckedJob
    queue: str
    stored_bytes: int


def create_job(
    ctx: ServiceContext, tenant_id: str, body: JobCreate, idempotency_key: str | None = None
) -> Submitted:
    """The new job's JobRead document, and whether this request created it (False: an
    idempotent replay). Three round trips to the store on the common path: one read
    transaction (replay, datasets, quotas, queue), one write transaction (job, first event,
    idempotency key, queue position), then the broker."""
    digest = request_hash(body) if idempotency_key else ""
    admitted: Admission | None = None
    with transaction(ctx.sessions) as session:
        earlier = _replay(session, tenant_id, idempotency_key, digest) if idempotency_key else None
        if earlier is None:
            admitted = Admission(
                checked=check_job(ctx, session, tenant_id, body),
                queue=training_queue(session, ctx.settings, body.resources.gpus),
                stored_bytes=_check_quotas(ctx, session, tenant_id),
            )
    if admitted is None:  # an earlier request with this key made the job
        assert earlier is not None
        return Submitted(earlier, read_job_now(ctx, tenant_id, earlier), created=False)
    checked = admitted.checked
    inline_bytes = sum(a.x.nbytes + a.y.nbytes for a in checked.inline.values())
    ensure_storage(ctx, admitted.stored_bytes, inline_bytes)
    new_datasets = {s: store_inline(ctx.artifacts, tenant_id, a) for s, a in checked.inline.items()}
    stored = checked.referenced | {s: stored_data(d) for s, d in new_datasets.items()}
    job = _new_job(ctx, tenant_id, body, admitted, stored)
    try:
        with transaction(ctx.sessions) as session:
            for dataset in new_datasets.values():
                repo.add_dataset(session, dataset)
            repo.add_job(session, job, {"status": "queued"})
            if idempotency_key:
                repo.add_idempotency_key(
                    session,
                    IdempotencyKey(
                        tenant_id=tenant_id, key=idempotency_key, request_hash=digest, job_id=job.id
                    ),
                )
            session.flush()
            position = repo.queue_position(session, job)
    except IntegrityError:
        # The same key, committed by a concurrent request a moment ago: answer as a replay.
        if idempotency_key:
            with transaction(ctx.sessions) as session:
                earlier = _replay(session, tenant_id, idempotency_key, digest)
            if earlier:
                return Submitted(earlier, read_job_now(ctx, tenant_id, earlier), created=False)
        raise
    # The row is committed first; only then does its id go to the broker (rule 1).
    if not send_job(ctx, job.id, job.queue, job.max_runtime_seconds, count=False):
        return Submitted(job.id, read_job_now(ctx, tenant_id, job.id), created=True)
    return Submitted(job.id, render_json(job_document(columns_of(job), position)), created=True)


def _check_quotas(ctx: ServiceContext, session: Session, tenant_id: str) -> int:
    """429 past the tenant's active-job or GPU-second quota; returns its stored bytes."""
    check_job_quotas(ctx.settings, session, tenant_id)
    return repo.dataset_bytes(session, tenant_id)


def _new_job(
    ctx: ServiceContext,
    tenant_id: str,
    body: JobCreate,
    admitted: Admission,
    stored: dict[str, StoredData],
) -> Job:
    spec = JobSpec(
        model=body.model,
        compile=body.compile,
        fit=body.fit,
        resources=ResourcesSpec(gpus=gpus_of_queue(admitted.queue)),
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        data=StoredDataSpec(
            **stored,
            test_split=body.data.test_split,
            shuffle_before_split=body.data.shuffle_before_split,
            standardize=body.data.standardize,
            label_encoding=admitted.checked.validation.label_encoding,
        ),
    )
    cap = ctx.settings.max_runtime_seconds
    now = utcnow()
    return Job(
        id=new_id(JOB_PREFIX),
        tenant_id=tenant_id,
        status=JobStatus.queued,
        queue=admitted.queue,
        spec=spec.model_dump(mode="json"),
        created_at=now,
        updated_at=now,
        epochs=spec.fit.epochs,
        history=[],
        attempt=0,
        handbacks=0,
        # Counted as sent before the send: the commit must come first, and a process that
        # dies between the two leaves the job to the sweeper's next re-send.
        sends=1,
        last_sent_at=now,
        epoch=0,
        cancel_requested=False,
        max_runtime_seconds=min(spec.fit.max_runtime_seconds or cap, cap),
    )


def send_job(
    ctx: ServiceContext, job_id: str, queue: str, max_runtime: float | None, *, count: bool = True
) -> bool:
    """Send the job's id; a broker that refuses fails the job with ``broker_unavailable``.
    Celery's hard ``time_limit`` (runtime limit + grace) is the backstop behind the worker's
    own deadline. The send is counted (``sends``, ``last_sent_at``, for the sweeper's re-send
    backoff) unless ``count=False``: the caller counted it in the row it committed."""
    limit = (
        max_runtime or ctx.settings.max_runtime_seconds
    ) + ctx.settings.time_limit_grace_seconds
    try:
        ctx.queue.send_train(job_id, queue, time_limit=limit)
    except BrokerUnavailable as exc:
        with transaction(ctx.sessions) as session:
            repo.fail_unsent(session, job_id, str(exc))
        return False
    if count:
        with transaction(ctx.sessions) as session:
            repo.mark_sent(session, job_id, utcnow())
    return True


def cancel_job(ctx: ServiceContext, tenant_id: str, job_id: str) -> bytes:
    """Queued: cancelled at once. Running: the worker stops at its next batch. Finished: 409."""
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if JobStatus(job.status).finished and not (
            job.status == JobStatus.cancelled and job.cancel_requested
        ):
            raise conflict(
                f"job {job_id} has already {job.status}; only a queued or running job can be "
                "cancelled",
            )
        if not JobStatus(job.status).finished:
            repo.cancel(session, job_id, job.status)
    return read_job_now(ctx, tenant_id, job_id)


def delete_job(ctx: ServiceContext, tenant_id: str, job_id: str) -> None:
    """A finished job's rows and files go; a queued or running one must be cancelled first."""
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if not JobStatus(job.status).finished:
            raise conflict(
                f"job {job_id} is {job.status}; cancel it, then delete it once it has stopped",
            )
        repo.delete_job(session, job)
    ctx.artifacts.delete_prefix(job_prefix(job_id))


def list_events(
    ctx: ServiceContext, tenant_id: str, job_id: str, after: int, limit: int
) -> EventList:
    with transaction(ctx.sessions) as session:
        _find_job(session, tenant_id, job_id)
        rows = repo.list_events(session, job_id, after, limit)
        events = [
            JobEventRead(seq=e.seq, time=e.time, type=e.type, data=e.data) for e in rows[:limit]
        ]
    return EventList(data=events, has_more=len(rows) > limit)


def _find_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The caller's job, or 404 for a malformed, unknown or other tenant's id alike."""
    job = repo.get_job(session, tenant_id, job_id) if is_valid_id(job_id, JOB_PREFIX) else None
    if job is None:
        raise not_found("job", job_id)
    return job


def read_job_now(ctx: ServiceContext, tenant_id: str, job_id: str) -> bytes:
    """The job's JobRead document, from a sync caller (in the thread pool)."""
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        position = repo.queue_position(session, job) if job.status == JobStatus.queued else None
        return render_json(job_document(columns_of(job), position))


async def read_job(ctx: ServiceContext, tenant_id: str, job_id: str) -> bytes:
    """``GET /v1/jobs/{id}``'s body: one statement, no thread hop on PostgreSQL."""
    row = await ctx.reads.job(tenant_id, job_id) if is_valid_id(job_id, JOB_PREFIX) else None
    if row is None:
        raise not_found("job", job_id)
    return render_json(job_document(row, row["queue_position"]))


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
) -> bytes:
    """A page of JobList, rendered like a single job (no second validation)."""
    before_id = decode_cursor(after, JOB_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        rows = repo.list_jobs(session, tenant_id, status=status, limit=limit, before_id=before_id)
        page = [job_document(columns_of(row)) for row in rows[:limit]]
    has_more = len(rows) > limit
    next_after = encode_cursor(page[-1]["id"]) if has_more and page else None
    return render_json({"data": page, "has_more": has_more, "next_after": next_after})


def predict(ctx: ServiceContext, tenant_id: str, job_id: str, x: np.ndarray) -> PredictResponse:
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if job.status != JobStatus.succeeded or job.model_key is None:
            raise conflict(
                f"job {job_id} is {job.status}; predictions need a succeeded job",
            )
        spec = JobSpec.model_validate(job.spec)
        labels = (job.result or {}).get("labels")
    expected = list(spec.model.resolved_input_shape or ())
    if list(x.shape[1:]) != expected:
        raise SpecError("x", f"expected rows of shape {expected}, received {list(x.shape[1:])}")
    if len(x) > ctx.settings.max_predict_rows:
        raise SpecError(
            "x", f"expected at most {ctx.settings.max_predict_rows} rows, received {len(x)}"
        )
    timeout = ctx.settings.predict_timeout_seconds
    try:
        reply = ctx.queue.predict(job_id, x.tolist(), timeout)
    except TimeoutError as exc:
        raise FitqError(504, RequestErrorType.timeout, f"{exc}; try again") from exc
    except BrokerUnavailable as exc:
        raise FitqError(503, RequestErrorType.unavailable, str(exc)) from exc
    if "error" in reply:
        raise FitqError(422, RequestErrorType.validation_error, f"x: {reply['error']}")
    return PredictResponse(y=reply["y"], labels=labels)
