"""``/v1/admin``: the operator's view across tenants (admin keys only)."""

from __future__ import annotations

from fastapi import APIRouter

from fitq.schemas import TenantList, TenantUsage
from fitq.statuses import ACTIVE
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from service.deps import Admin, Context
from service.jobs.limits import DAY
from service.openapi import errors

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/tenants", response_model=TenantList, responses=errors(403))
def list_tenants(ctx: Context, _: Admin) -> TenantList:
    """Every tenant with a job, a dataset or a key, and what it uses."""
    since = utcnow() - DAY
    with transaction(ctx.sessions) as session:
        usages = []
        for tenant in repo.tenant_ids(session):
            jobs = repo.jobs_by_status(session, tenant)
            usages.append(
                TenantUsage(
                    tenant=tenant,
                    jobs=jobs,
                    active_jobs=sum(jobs.get(status, 0) for status in ACTIVE),
                    dataset_bytes=repo.dataset_bytes(session, tenant),
                    gpu_seconds_per_day=round(repo.gpu_seconds_since(session, tenant, since), 1),
                )
            )
    return TenantList(data=usages)
