"""``/v1/jobs``: HTTP in and out only; the use cases are in ``service.jobs.service``.
Handlers are plain ``def`` (FastAPI runs them in its thread pool, off the event loop), except
the hot paths — the job read, the submission and its dry run — which are async end to end on
PostgreSQL (``service.pg``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse

from fitq.schemas import EventList, JobList, JobRead, PredictResponse
from fitq.spec import JobCreate, Validation
from fitq.spec.data import PredictRequest
from fitq.statuses import JobStatus
from service.deps import Context, Tenant
from service.jobs import service
from service.openapi import errors, file_response

# Job documents are rendered once, by the presenter, and sent as they are (no second
# validation of the response model); the routes still declare JobRead for the schema.
JSON = "application/json"
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
validate_router = APIRouter(tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses=errors(403, 409, 413, 422, 429, 503),
)
async def create_job(
    body: JobCreate,
    ctx: Context,
    tenant: Tenant,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Same key and body within 24 h: the same job; another body: 409.",
        ),
    ] = None,
) -> Response:
    submitted = await service.create_job(ctx, tenant, body, idempotency_key)
    headers = {"Location": f"/v1/jobs/{submitted.job_id}"}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return Response(submitted.document, status_code=202, media_type=JSON, headers=headers)


@validate_router.post("/v1/validate", response_model=Validation, responses=errors(413, 422))
async def validate_job(body: JobCreate, ctx: Context, tenant: Tenant) -> Validation:
    """Every check ``POST /v1/jobs`` makes, without storing or queueing anything: the model
    summary (per layer: type, output shape, parameters) and the estimated work."""
    return await service.validate(ctx, tenant, body)


@router.get("", response_model=JobList, responses=errors(422))
def list_jobs(
    ctx: Context,
    tenant: Tenant,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = service.list_jobs(ctx, tenant, status=status, limit=limit, after=after)
    return Response(page, media_type=JSON)


@router.get("/{job_id}", response_model=JobRead, responses=errors(404, 503))
async def get_job(job_id: str, ctx: Context, tenant: Tenant) -> Response:
    """The job as it is now: poll it (a poll is one statement, served without a thread)."""
    body = await service.read_job(ctx, tenant, job_id)
    return Response(body, media_type=JSON)


@router.post(
    "/{job_id}/cancel", status_code=202, response_model=JobRead, responses=errors(404, 409)
)
def cancel_job(job_id: str, ctx: Context, tenant: Tenant) -> Response:
    """A queued job never starts; a running one stops at its next batch and ends
    ``cancelled`` with the history of its completed epochs. Repeating is harmless; a finished
    job answers 409."""
    return Response(service.cancel_job(ctx, tenant, job_id), 202, media_type=JSON)


@router.get("/{job_id}/events", response_model=EventList, responses=errors(404, 422))
def list_events(
    job_id: str,
    ctx: Context,
    tenant: Tenant,
    after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Events with seq above this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    return service.list_events(ctx, tenant, job_id, after, limit)


@router.delete("/{job_id}", status_code=204, responses=errors(404, 409))
def delete_job(job_id: str, ctx: Context, tenant: Tenant) -> Response:
    service.delete_job(ctx, tenant, job_id)
    return Response(status_code=204)


@router.post(
    "/{job_id}/predict",
    response_model=PredictResponse,
    responses=errors(404, 409, 413, 422, 503, 504),
)
def predict(job_id: str, body: PredictRequest, ctx: Context, tenant: Tenant) -> PredictResponse:
    """``{"x": [...]}`` → ``{"y": [...]}`` from the trained model, served by an inference
    worker (the API imports no TensorFlow); 504 past ``FITQ_PREDICT_TIMEOUT_SECONDS``."""
    return service.predict(ctx, tenant, job_id, body.x)


@router.get(
    "/{job_id}/tensorboard",
    response_class=FileResponse,
    responses={
        **file_response("application/gzip", "The TensorBoard log directory, as a .tar.gz."),
        **errors(404, 409),
    },
)
def download_tensorboard(job_id: str, ctx: Context, tenant: Tenant) -> FileResponse:
    """The TensorBoard log directory of a job whose ``fit.callbacks`` has ``TensorBoard``, as
    a .tar.gz: unpack it and run ``tensorboard --logdir`` on it."""
    return FileResponse(
        service.tensorboard_file(ctx, tenant, job_id),
        media_type="application/gzip",
        filename=f"{job_id}-tensorboard.tar.gz",
    )


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        **file_response("application/octet-stream", "The trained model, a Keras .keras file."),
        **errors(404, 409),
    },
)
def download_model(job_id: str, ctx: Context, tenant: Tenant) -> FileResponse:
    """The trained model as ``keras.models.load_model`` reads it."""
    return FileResponse(
        service.model_file(ctx, tenant, job_id),
        media_type="application/octet-stream",
        filename=f"{job_id}.keras",
    )
