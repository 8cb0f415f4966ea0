"""``GET /v1/usage``: the caller's quotas and how much of each is used."""

from __future__ import annotations

from fastapi import APIRouter

from fitq.schemas import Usage, UsageAmount, UsageItem
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from service.deps import Context, Tenant
from service.jobs.limits import DAY
from service.openapi import errors

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", response_model=Usage, responses=errors())
def usage(ctx: Context, tenant: Tenant) -> Usage:
    settings = ctx.settings
    with transaction(ctx.sessions) as session:
        active = repo.active_jobs(session, tenant)
        stored = repo.dataset_bytes(session, tenant)
        gpu_seconds = repo.gpu_seconds_since(session, tenant, utcnow() - DAY)
    return Usage(
        tenant=tenant,
        active_jobs=UsageItem(used=active, limit=settings.max_active_jobs),
        gpu_seconds_per_day=UsageAmount(
            used=round(gpu_seconds, 1), limit=settings.max_gpu_seconds_per_day
        ),
        dataset_bytes=UsageItem(used=stored, limit=settings.max_dataset_bytes),
        sample_epochs_per_job=settings.max_sample_epochs,
        batch_size_per_job=settings.max_batch_size,
        sequence_length_per_job=settings.max_sequence_length,
        parameters_per_job=settings.max_params,
    )
