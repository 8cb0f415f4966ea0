"""``/v1/sweeps``: HTTP in and out only; the use cases are in ``service.sweeps.service``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fitq.schemas import SweepList, SweepRead
from fitq.spec.sweep import SweepCreate
from fitq.statuses import SweepStatus
from service.deps import Context, Tenant
from service.openapi import errors
from service.sweeps import service

JSON = "application/json"
router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.post(
    "", status_code=202, response_model=SweepRead, responses=errors(403, 404, 413, 422, 429, 503)
)
async def create_sweep(body: SweepCreate, ctx: Context, tenant: Tenant) -> Response:
    """Trials of ``job`` with values of ``space`` drawn by Optuna's sampler, at most
    ``parallelism`` at once: each trial is a job of yours (same queues, quotas, cancel,
    model, predict) with ``sweep_id`` and ``trial`` set. Every parameter's extreme values
    are checked as a job is before the sweep is accepted."""
    sweep_id, document = await service.create_sweep(ctx, tenant, body)
    headers = {"Location": f"/v1/sweeps/{sweep_id}"}
    return Response(document, status_code=202, media_type=JSON, headers=headers)


@router.get("", response_model=SweepList, responses=errors(422))
def list_sweeps(
    ctx: Context,
    tenant: Tenant,
    status: SweepStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = service.list_sweeps(ctx, tenant, status=status, limit=limit, after=after)
    return Response(page, media_type=JSON)


@router.get("/{sweep_id}", response_model=SweepRead, responses=errors(404))
def get_sweep(sweep_id: str, ctx: Context, tenant: Tenant) -> Response:
    """The sweep as it is now: its trials, the best so far, counts by state."""
    return Response(service.read_sweep(ctx, tenant, sweep_id), media_type=JSON)


@router.post(
    "/{sweep_id}/cancel", status_code=202, response_model=SweepRead, responses=errors(404, 409)
)
def cancel_sweep(sweep_id: str, ctx: Context, tenant: Tenant) -> Response:
    """No new trial starts; queued trials are cancelled and running ones stop at their next
    batch. The sweep ends ``cancelled`` once they have. A finished sweep answers 409."""
    return Response(service.cancel_sweep(ctx, tenant, sweep_id), 202, media_type=JSON)


@router.delete("/{sweep_id}", status_code=204, responses=errors(404, 409))
def delete_sweep(sweep_id: str, ctx: Context, tenant: Tenant) -> Response:
    """A finished sweep, with its trials' jobs and their files."""
    service.delete_sweep(ctx, tenant, sweep_id)
    return Response(status_code=204)
