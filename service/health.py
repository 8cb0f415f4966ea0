"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from fitq.schemas import Health, Readiness
from fitq.store.db import transaction
from service.capacity import live_queues
from service.deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The store or the broker is down."}},
)
def readyz(ctx: Context, response: Response) -> Readiness:
    """Ready when the store and the broker answer. Live workers per queue are reported, not
    required: an API with no worker yet still accepts and queues jobs."""
    problems = []
    workers: dict[str, int] | None = None
    try:
        with transaction(ctx.sessions) as session:
            session.execute(text("SELECT 1"))
            workers = dict(sorted(live_queues(session, ctx.settings).items()))
    except Exception:
        problems.append("store")
    if not ctx.queue.ping():
        problems.append("broker")
    if problems:
        response.status_code = 503
        return Readiness(status="unavailable: " + ", ".join(problems), workers=workers)
    return Readiness(status="ok", workers=workers)
