"""Job use cases: create (check, store data, commit, then send the id), read, list, cancel,
delete, predict. Commits happen here, once per use case; queries live in the repository,
the submission's two store calls in ``service.jobs.submission_store``, its checks in
``service.jobs.checks`` and the sends in ``service.jobs.sending``."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from anyio import to_thread
from sqlalchemy.orm import Session

from fitq.artifacts import job_prefix, tensorboard_key
from fitq.devices import gpus_of_queue
from fitq.documents import columns_of, job_document, remember_spec
from fitq.errors import (
    FitqError,
    RequestErrorType,
    SpecError,
    conflict,
    model_missing,
    not_found,
)
from fitq.ids import JOB_PREFIX, is_valid_id, new_id
from fitq.liveness import live_since
from fitq.queues import hard_time_limit
from fitq.schemas import EventList, JobEventRead, PredictResponse
from fitq.spec import (
    InlineArrays,
    JobCreate,
    JobSpec,
    ModelSpec,
    ResourcesSpec,
    StoredData,
    StoredDataSpec,
    Validation,
)
from fitq.spec.job import TensorBoard
from fitq.statuses import FINISHED, JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Dataset, IdempotencyKey, Job
from fitq.store.repository import gpu_seconds
from fitq.store.rows import new_row
from fitq.store.types import utcnow
from service.capacity import queues_served, training_queue
from service.context import ServiceContext
from service.datasets.service import (
    ensure_storage,
    store_inline,
    stored_data,
)
from service.jobs.checks import CheckedJob, check_job_async, referenced_ids
from service.jobs.fine_tuning import source_model, with_source_model
from service.jobs.limits import DAY, check_job_quotas
from service.jobs.presenter import render_json
from service.jobs.submission_store import DuplicateKey, NewRows, SubmissionFactsQuery, row_of
from service.pagination import decode_cursor, page_document
from service.queue import BrokerUnavailable, TrainMessage
from service.webhooks.service import send_webhooks


async def validate(ctx: ServiceContext, tenant_id: str, body: JobCreate) -> Validation:
    body = await with_source_model(ctx, tenant_id, body)
    facts = await ctx.submission_store.read_facts(
        SubmissionFactsQuery(tenant_id, referenced_ids(body))
    )
    return (await check_job_async(ctx.settings, facts.datasets, body)).validation


IDEMPOTENCY_WINDOW = timedelta(hours=24)


def request_hash(body: JobCreate) -> str:
    """The body as canonical JSON (sorted keys, no spaces), hashed."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(earlier: Mapping[str, Any] | None, key: str, digest: str) -> str | None:
    """The job an earlier request with this key created within the window, if any (409 for
    another body). An expired key is replaced when the new job is written."""
    if earlier is None or earlier["created_at"] < utcnow() - IDEMPOTENCY_WINDOW:
        return None
    if earlier["request_hash"] != digest:
        raise conflict(
            f"Idempotency-Key {key!r} was used for another request body "
            f"(job {earlier['job_id']}); expected the same body or a new key",
        )
    return str(earlier["job_id"])


class Submitted(NamedTuple):
    job_id: str
    document: bytes  # the JobRead, rendered
    created: bool


async def create_job(
    ctx: ServiceContext, tenant_id: str, body: JobCreate, idempotency_key: str | None = None
) -> Submitted:
    """The new job's JobRead document, and whether this request created it (False: an
    idempotent replay). Three round trips on the common path: the facts (replay, datasets,
    usage, live queues), the rows (job, first event, idempotency key, queue position), then
    the broker. The rows and the send go through the group commit, shared with whatever
    other submissions are waiting; on PostgreSQL all of it runs on the event loop."""
    settings = ctx.settings
    digest = request_hash(body) if idempotency_key else ""
    now = utcnow()
    cap = settings.max_gpu_seconds_per_day
    facts = await ctx.submission_store.read_facts(
        SubmissionFactsQuery(
            tenant_id,
            referenced_ids(body),
            idempotency_key,
            live_since=live_since(settings, now) if body.resources.gpus is None else None,
            gpu_since=now - DAY if cap is not None else None,
        )
    )
    if idempotency_key:
        earlier = _replay(facts.idempotency, idempotency_key, digest)
        if earlier is not None:
            return Submitted(earlier, await read_job(ctx, tenant_id, earlier), created=False)
    body = await with_source_model(ctx, tenant_id, body)
    checked = await check_job_async(settings, facts.datasets, body)
    queue = training_queue(body.resources.gpus, queues_served(facts.live_queues))
    used = gpu_seconds(facts.gpu_use, now - DAY, now) if cap is not None else None
    check_job_quotas(settings, facts.active_jobs, used)
    new_datasets, stored = await store_data(ctx, tenant_id, checked, facts.stored_bytes)
    job = _new_job(ctx, tenant_id, body, queue, checked.validation, stored, now)
    rows = NewRows(
        job=job,
        first_event=repo.first_event_row(job),
        idempotency=_idempotency_row(tenant_id, idempotency_key, digest, job["id"], now),
        # The key's earlier use, when there was one, is past the window: replace it.
        idempotency_expired_before=now - IDEMPOTENCY_WINDOW if facts.idempotency else None,
        datasets=[row_of(d) for d in new_datasets.values()],
    )
    message = TrainMessage(
        job["id"], queue, hard_time_limit(ctx.settings, job["max_runtime_seconds"])
    )
    try:
        written = await ctx.group_commit.write(rows, message)
    except DuplicateKey:
        # The same key, committed by a concurrent request a moment ago: answer as a replay.
        assert idempotency_key is not None
        again = await ctx.submission_store.read_facts(
            SubmissionFactsQuery(tenant_id, idempotency_key=idempotency_key)
        )
        earlier = _replay(again.idempotency, idempotency_key, digest)
        if earlier is None:  # taken, then expired and replaced, within this request
            raise conflict(
                f"Idempotency-Key {idempotency_key!r} is in use by a concurrent request; retry"
            ) from None
        return Submitted(earlier, await read_job(ctx, tenant_id, earlier), created=False)
    # Sent or not, the job is committed and queued: one the broker refused is re-sent later.
    return Submitted(job["id"], render_json(job_document(job, written.position)), created=True)


async def store_data(
    ctx: ServiceContext, tenant_id: str, checked: CheckedJob, stored_bytes: int
) -> tuple[dict[str, Dataset], dict[str, StoredData]]:
    """A checked job's data as it is stored: its inline arrays written (within the tenant's
    storage quota, ``stored_bytes`` used) as dataset rows not yet committed, and every
    split's stored data, referenced datasets included."""
    new_datasets: dict[str, Dataset] = {}
    if checked.inline:
        inline_bytes = sum(a.packed.x.nbytes + a.packed.y.nbytes for a in checked.inline.values())
        ensure_storage(ctx, stored_bytes, inline_bytes)
        new_datasets = await to_thread.run_sync(_store_inline, ctx, tenant_id, checked.inline)
    stored = checked.referenced | {
        s: stored_data(d, checked.inline[s]) for s, d in new_datasets.items()
    }
    return new_datasets, stored


def _store_inline(
    ctx: ServiceContext, tenant_id: str, inline: Mapping[str, InlineArrays]
) -> dict[str, Dataset]:
    """Inline arrays written to the artifact store (files first: a row never points at a
    file that is not there), as dataset rows not yet committed."""
    return {split: store_inline(ctx.artifacts, tenant_id, a) for split, a in inline.items()}


def _new_job(
    ctx: ServiceContext,
    tenant_id: str,
    body: JobCreate,
    queue: str,
    validation: Validation,
    stored: dict[str, StoredData],
    now: datetime,
) -> dict[str, Any]:
    """The job's row, every column the presenter reads set."""
    spec = job_spec(body, queue, validation, stored)
    cap = ctx.settings.max_runtime_seconds
    job_id = new_id(JOB_PREFIX)
    dumped = spec.model_dump(mode="json")
    remember_spec(job_id, dumped)
    return repo.queued_job_row(
        job_id=job_id,
        tenant_id=tenant_id,
        queue=queue,
        spec=dumped,
        epochs=spec.fit.epochs,
        max_runtime_seconds=min(spec.fit.max_runtime_seconds or cap, cap),
        now=now,
    )


def job_spec(
    body: JobCreate, queue: str, validation: Validation, stored: dict[str, StoredData]
) -> JobSpec:
    """What a checked body is stored as: its model resolved, its data stored, its seed
    drawn when it has none."""
    return JobSpec(
        model=source_model(body),
        compile=body.compile,
        fit=body.fit,
        resources=ResourcesSpec(gpus=gpus_of_queue(queue)),
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        data=StoredDataSpec(
            **stored,
            test_split=body.data.test_split,
            shuffle_before_split=body.data.shuffle_before_split,
            standardize=body.data.standardize,
            label_encoding=validation.label_encoding,
        ),
    )


def _idempotency_row(
    tenant_id: str, key: str | None, digest: str, job_id: str, now: datetime
) -> dict[str, Any] | None:
    if key is None:
        return None
    return new_row(
        IdempotencyKey,
        tenant_id=tenant_id,
        key=key,
        request_hash=digest,
        job_id=job_id,
        created_at=now,
    )


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
    send_webhooks(ctx)  # a queued job's job.cancelled
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


def model_file(ctx: ServiceContext, tenant_id: str, job_id: str) -> Path:
    """The trained model's file on this host (downloaded first from S3)."""
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if job.model_key is None and job.status != JobStatus.succeeded:
            raise conflict(f"job {job_id} is {job.status}; its model is kept once it succeeds")
        if job.model_key is None:  # succeeded, its model since expired
            raise not_found("model of job", job_id)
        key = job.model_key
    try:
        return ctx.artifacts.local_path(key)
    except FileNotFoundError as exc:
        raise model_missing(job_id) from exc


def tensorboard_file(ctx: ServiceContext, tenant_id: str, job_id: str) -> Path:
    """The job's TensorBoard logs (.tar.gz) on this host; 409 before a job with the
    callback ends, 404 for a job without them."""
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        status, spec = job.status, JobSpec.model_validate(job.spec)
    logging = spec.fit.callback(TensorBoard) is not None
    if logging and status not in FINISHED:
        raise conflict(f"job {job_id} is {status}; its TensorBoard logs are kept when it ends")
    try:
        return ctx.artifacts.local_path(tensorboard_key(job_id))
    except FileNotFoundError as exc:
        raise not_found("TensorBoard logs of job", job_id) from exc


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
    return render_json(page_document(page, len(rows), limit))


def predict(
    ctx: ServiceContext, tenant_id: str, job_id: str, x: np.ndarray | dict[str, np.ndarray]
) -> PredictResponse:
    with transaction(ctx.sessions) as session:
        job = _find_job(session, tenant_id, job_id)
        if job.status != JobStatus.succeeded or job.model_key is None:
            raise conflict(
                f"job {job_id} is {job.status}; predictions need a succeeded job",
            )
        spec = JobSpec.model_validate(job.spec)
        labels = (job.result or {}).get("labels")
    rows = _check_predict_rows(spec.model, x)
    if rows > ctx.settings.max_predict_rows:
        raise SpecError(
            "x", f"expected at most {ctx.settings.max_predict_rows} rows, received {rows}"
        )
    sent = {k: v.tolist() for k, v in x.items()} if isinstance(x, dict) else x.tolist()
    timeout = ctx.settings.predict_timeout_seconds
    try:
        reply = ctx.queue.predict(job_id, sent, timeout)
    except TimeoutError as exc:
        raise FitqError(504, RequestErrorType.timeout, f"{exc}; try again") from exc
    except BrokerUnavailable as exc:
        raise FitqError(503, RequestErrorType.unavailable, str(exc)) from exc
    if reply.get("model_missing"):
        raise model_missing(job_id)
    if "error" in reply:
        raise FitqError(422, RequestErrorType.validation_error, f"x: {reply['error']}")
    return PredictResponse(y=reply["y"], labels=labels)


def _check_predict_rows(model: ModelSpec, x: np.ndarray | dict[str, np.ndarray]) -> int:
    """Rows of each model input's shape (an object keyed by the input names for a model of
    several inputs); their count."""
    names = model.input_names
    if not isinstance(x, dict):
        if len(names) > 1:
            raise SpecError(
                "x",
                f"expected an object of arrays keyed by the model's inputs "
                f"({', '.join(map(repr, names))}), received one array",
            )
        _check_rows_shape("x", x, model.resolved_input_shape or ())
        return len(x)
    if set(x) != set(names):
        expected = ", ".join(map(repr, names)) or "none: a Sequential model takes one array"
        raise SpecError(
            "x", f"expected keys naming the model's inputs ({expected}), received {sorted(x)}"
        )
    assert model.inputs is not None
    for graph_input in model.inputs:
        _check_rows_shape(f"x.{graph_input.name}", x[graph_input.name], graph_input.shape)
    counts = sorted({len(array) for array in x.values()})
    if len(counts) > 1:
        raise SpecError("x", f"expected as many rows in every input, received {counts}")
    return counts[0]


def _check_rows_shape(loc: str, array: np.ndarray, shape: Sequence[int]) -> None:
    if list(array.shape[1:]) != list(shape):
        raise SpecError(
            loc, f"expected rows of shape {list(shape)}, received {list(array.shape[1:])}"
        )
