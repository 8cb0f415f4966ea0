"""Every error leaves the API in one envelope, 422 included:
``{"error": {"type", "message", "details": [{"loc", "message", "received"}]}}``."""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from fitq.errors import ErrorDetail, FitqError, RequestErrorType
from fitq.spec.error_words import error_detail

log = logging.getLogger(__name__)

# Seconds a client waits before retrying a 503: the store's pool checks its connections
# again within this (service.pg), and a restarted broker is reconnected to as fast.
UNAVAILABLE_RETRY_AFTER = "5"

_STATUS_TYPES = {
    401: RequestErrorType.unauthorized,
    404: RequestErrorType.not_found,
    409: RequestErrorType.conflict,
    408: RequestErrorType.timeout,
    413: RequestErrorType.payload_too_large,
    429: RequestErrorType.rate_limited,
    503: RequestErrorType.unavailable,
    504: RequestErrorType.timeout,
}


def envelope(
    status: int,
    type_: RequestErrorType,
    message: str,
    details: list[ErrorDetail],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "type": type_.value,
            "message": message,
            "details": [d.model_dump() for d in details],
        }
    }
    if status == 503:  # the store or broker is down: say when to try again
        headers = {"Retry-After": UNAVAILABLE_RETRY_AFTER, **(headers or {})}
    return JSONResponse(status_code=status, content=body, headers=headers)


async def _fitq_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FitqError)
    return envelope(exc.status_code, exc.type, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [error_detail(e) for e in exc.errors()]
    first = details[0] if details else ErrorDetail(loc="body", message="invalid request")
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return envelope(
        422, RequestErrorType.validation_error, f"{first.loc}: {first.message}{more}", details
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body its parser gave up on (a broken multipart form): bad
        # input is a 422 everywhere in this API.
        return envelope(
            422,
            RequestErrorType.validation_error,
            f"expected a well-formed request body, received one that does not parse ({exc.detail})",
            [ErrorDetail(loc="body", message=str(exc.detail))],
        )
    type_ = _STATUS_TYPES.get(
        exc.status_code,
        RequestErrorType.internal if exc.status_code >= 500 else RequestErrorType.validation_error,
    )
    headers = dict(exc.headers or {})  # a 401 carries WWW-Authenticate
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return envelope(exc.status_code, type_, str(exc.detail), [], headers)


def _allowed_methods(request: Request) -> str:
    """Every method the API documents for this path: Starlette's 405 names only the first
    matching route's, and one path often has several (GET and POST /v1/jobs)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever GET is routed
    return ", ".join(sorted(methods))


async def _store_unreachable(_: Request, exc: Exception) -> JSONResponse:
    """A route on the ORM whose connection to the store failed: the store is down or was
    restarted under it (the pool replaces the connection), so the client retries."""
    log.warning("the job store is unavailable: %s", exc)
    return envelope(503, RequestErrorType.unavailable, "the job store is unavailable", [])


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return envelope(500, RequestErrorType.internal, "internal error; it has been logged", [])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FitqError, _fitq_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _store_unreachable)
    app.add_exception_handler(psycopg.OperationalError, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)
