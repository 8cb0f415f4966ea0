"""FastAPI dependencies: the service context and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.context import ServiceContext


def get_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


def get_tenant(context: Annotated[ServiceContext, Depends(get_context)]) -> str:
    # One default tenant until API keys exist; every query already filters by it.
    return context.settings.default_tenant


Context = Annotated[ServiceContext, Depends(get_context)]
Tenant = Annotated[str, Depends(get_tenant)]
