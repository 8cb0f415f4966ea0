"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from fitq.schemas import Health
from service.deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The store or the broker is down."}},
)
def readyz(ctx: Context, response: Response) -> Health:
    problems = []
    try:
        with ctx.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        problems.append("store")
    if not ctx.queue.ping():
        problems.append("broker")
    if problems:
        response.status_code = 503
        return Health(status="unavailable: " + ", ".join(problems))
    return Health(status="ok")
