"""Every error leaves the API in one envelope, 422 included:
``{"error": {"type", "message", "details": [{"loc", "message", "received"}]}}``."""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from fitq.errors import ErrorDetail, FitqError, RequestErrorType
from fitq.spec.arguments import did_you_mean

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


def _loc(parts: tuple[Any, ...]) -> str:
    kept = [str(p) for p in parts if not str(p).startswith("function-")]
    if kept and kept[0] in {"body", "query", "path", "header"} and len(kept) > 1:
        kept = kept[1:]
    return ".".join(kept) or "body"


def _received(value: Any) -> Any:
    """Echo small inputs; summarise large ones (never send a data array back)."""
    if isinstance(value, bytes):  # a body sent with another Content-Type than JSON
        return f"{len(value):,} bytes that are not a JSON body (Content-Type: application/json)"
    if isinstance(value, list):  # each item too: [NaN, 1e400] must still encode as JSON
        return (
            f"an array of length {len(value)}" if len(value) > 8 else [_received(v) for v in value]
        )
    if isinstance(value, dict):
        return {k: _received(v) for k, v in list(value.items())[:16]}
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def _detail(error: dict[str, Any]) -> ErrorDetail:
    loc, keys = _per_output_keys(tuple(error.get("loc", ())))
    parts = tuple(
        keys.get(i, p) for i, p in enumerate(loc) if i in keys or not _is_union_segment(loc, i)
    )
    return ErrorDetail(
        loc=_loc(parts), message=_message(error), received=_received(error.get("input"))
    )


# What a JSON value of each pydantic type error's kind is called, in the user's words.
_EXPECTED = {
    "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "an array", "tuple_type": "an array",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
}  # fmt: skip
_JSON_KINDS = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message, said as fitq says its own: what was expected, what was received
    (as sent), and the closest allowed name where a name was mistyped."""
    kind, ctx, received = error.get("type"), error.get("ctx") or {}, error.get("input")
    if kind == "union_tag_invalid":
        allowed = [tag.strip("'") for tag in str(ctx.get("expected_tags", "")).split(", ")]
        tag = str(ctx.get("tag"))
        return f"expected one of {', '.join(allowed)}, received {tag!r}{did_you_mean(tag, allowed)}"
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"expected a {field!r} field saying which kind this is, received none"
    if kind in _EXPECTED:
        sent = _JSON_KINDS.get(type(received), type(received).__name__)
        hint = " (a JSON number, not a string: no quotes)" if sent == "a string" else ""
        if kind == "string_type" or kind == "bool_type":
            hint = ""
        return f"expected {_EXPECTED[kind]}{hint}, received {sent} ({received!r})"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


# Fields given once or per model output (compile.loss, compile.metrics): pydantic puts "one"
# or "per_output" after them, and the output's name after "per_output".
_PER_OUTPUT_FIELDS = {"loss", "metrics"}


def _per_output_keys(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[int, Any]]:
    """``loc`` without the "one" / "per_output" tags, each output name standing in for its
    field (so what follows reads as it would after the field), and those names by index."""
    seen: list[Any] = []
    keys: dict[int, Any] = {}
    index = 0
    while index < len(loc):
        part, previous = loc[index], loc[index - 1] if index else None
        if previous in _PER_OUTPUT_FIELDS and part in ("one", "per_output"):
            if part == "per_output" and index + 1 < len(loc):
                keys[len(seen)] = loc[index + 1]
                seen.append(previous)
                index += 1
            index += 1
            continue
        seen.append(part)
        index += 1
    return tuple(seen), keys


# Fields whose value is a discriminated union: pydantic puts the member's tag after them
# ("schedule" and "object" are themselves tags, of a learning rate and a metric, followed by
# the member's own). Lists of tagged members: a tag after the index.
_TAGGED_FIELDS = {
    "optimizer", "loss", "train", "validation", "test", "learning_rate", "schedule", "object",
    "x", "y",
}  # fmt: skip
_TAGGED_LISTS = {"layers", "callbacks", "metrics"}
# Fields whose union members carry a tag only sometimes: these tags, after these fields.
_TAGS_AFTER = {"model": {"spec", "keras_config", "from_job"}}
_UNION_MEMBER = re.compile(r"^(constrained-)?(int|float|str|bool)$|\[")


def _is_union_segment(loc: tuple[Any, ...], index: int) -> bool:
    """Pydantic names the union member in the path: a discriminated union its tag
    ('model.layers.0.Dense.units', 'compile.loss.huber.delta', 'data.train.inline.x',
    'compile.optimizer.adam.learning_rate.schedule.CosineDecay.config.alpha'), a
    plain union the member's type ('kernel_size.tuple[int, int]'). Users never wrote those."""
    part = loc[index]
    if index == 0 or not isinstance(part, str):
        return False
    previous = loc[index - 1]
    top_level = index == 1 or (index == 2 and loc[0] == "body")
    if top_level and part in _TAGS_AFTER.get(previous, ()):
        return True
    if previous in _TAGGED_FIELDS or bool(_UNION_MEMBER.search(part)):
        return True
    return isinstance(previous, int) and index >= 2 and loc[index - 2] in _TAGGED_LISTS


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
    details = [_detail(e) for e in exc.errors()]
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
