"""FastAPI dependencies: the service context and the caller (tenant and role, from the API
key in ``Authorization: Bearer fitq_…``; the default tenant when auth is off)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from fitq import keys
from fitq.errors import forbidden, unauthorized
from fitq.keys import Role
from service.context import ServiceContext


# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool,
# a hop per dependency per request. And flat: each nested ``Depends`` costs FastAPI a
# dependency solve per request (~5 % of a submission's CPU for the caller's three levels).
def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


async def get_context(request: Request) -> ServiceContext:
    return context_of(request)


Context = Annotated[ServiceContext, Depends(get_context)]


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    role: Role


async def get_caller(request: Request) -> Caller:
    ctx = context_of(request)
    if ctx.settings.auth == "off":
        return Caller(ctx.settings.default_tenant, Role.admin)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not token:
        raise unauthorized("expected an API key in 'Authorization: Bearer fitq_…', received none")
    parsed = keys.parse(token.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        raise unauthorized(
            "expected an API key in 'Authorization: Bearer fitq_…', received a malformed one"
        )
    prefix, secret = parsed
    row = await ctx.reads.api_key(prefix)
    if (
        row is None
        or row["revoked_at"] is not None
        or not keys.matches(secret, row["secret_sha256"])
    ):
        raise unauthorized("the API key is unknown or revoked")
    return Caller(row["tenant_id"], Role(row["role"]))


async def get_tenant(request: Request) -> str:
    # Every query filters by it: another tenant's ids answer 404, as unknown ones do.
    return (await get_caller(request)).tenant_id


Tenant = Annotated[str, Depends(get_tenant)]


async def require_admin(request: Request) -> Caller:
    caller = await get_caller(request)
    if caller.role != Role.admin:
        raise forbidden(
            "expected an admin key (fitq keys create --role admin), received a user key"
        )
    return caller


Admin = Annotated[Caller, Depends(require_admin)]
