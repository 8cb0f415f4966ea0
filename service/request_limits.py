"""Request body limits. Size is enforced while the body streams in: a declared
``Content-Length`` over the limit answers 413 before a byte is read; an undeclared (chunked)
body is cut off at the limit. A JSON body's structure (depth, items per array) is checked on
its bytes before anything parses it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fitq.errors import ErrorDetail, RequestErrorType
from service import json_limits
from service.errors import envelope

LimitFor = Callable[[Scope], int | None]


class PayloadTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"expected a body of at most {limit:,} bytes, received more")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"expected the request body to keep arriving, received nothing for {seconds:g} s "
            "(FITQ_BODY_IDLE_SECONDS)",
        )


class BodySizeLimit:
    """The body's size, and its pace: a client that stops sending (a Content-Length larger
    than what it sends) is cut off after ``idle_seconds`` instead of holding the connection
    and its buffer forever."""

    def __init__(self, app: ASGIApp, limit_for: LimitFor, idle_seconds: float = 30.0) -> None:
        self.app = app
        self.limit_for = limit_for
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(
                scope,
                receive,
                send,
                413,
                RequestErrorType.payload_too_large,
                f"expected a body of at most {limit:,} bytes, received a larger one",
            )
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.idle_seconds) from None
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(limit)  # FastAPI re-raises HTTPExceptions as they are
            return message

        await self.app(scope, counted, send)


# A body this small is checked in microseconds: cheaper on the event loop than a thread hop.
CHECK_ON_LOOP_BYTES = 64 * 1024


class JsonShapeLimit:
    """422 for a JSON body that is not UTF-8, nested deeper than ``max_depth``, with an
    array or object of more than ``max_items`` items or more than ``max_containers`` of
    them in all. Runs inside ``BodySizeLimit``, so the body it buffers is already bounded;
    the parser downstream reuses the same bytes."""

    def __init__(self, app: ASGIApp, max_depth: int, max_items: int, max_containers: int) -> None:
        self.app = app
        self.limits = (max_depth, max_items, max_containers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        types = _content_types(scope)
        if len(types) > 1:
            # Which one counts is the reader's choice (this check read the last, the body
            # parser the first): a JSON body could pass unmeasured. One header, or a 422.
            received = ", ".join(t.decode("latin-1") for t in types)
            message = f"expected one Content-Type header, received {len(types)}: {received}"
            invalid = RequestErrorType.validation_error
            await _send_error(scope, receive, send, 422, invalid, message, loc="header")
            return
        if not _is_json(types):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            try:
                event = await receive()
            except PayloadTooLarge as exc:
                too_large = RequestErrorType.payload_too_large
                await _send_error(scope, receive, send, 413, too_large, str(exc.detail))
                return
            except BodyTimeout as exc:
                timeout = RequestErrorType.timeout
                await _send_error(scope, receive, send, 408, timeout, str(exc.detail))
                return
            if event["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            chunks.append(event.get("body", b""))
            if not event.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if len(body) <= CHECK_ON_LOOP_BYTES:
                _check_json(body, *self.limits)
            else:  # off the event loop: a large body takes a few hundred milliseconds
                await run_in_threadpool(_check_json, body, *self.limits)
        except ValueError as exc:
            invalid = RequestErrorType.validation_error
            await _send_error(scope, receive, send, 422, invalid, str(exc), loc="body")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _check_json(body: bytes, max_depth: int, max_items: int, max_containers: int) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"expected a UTF-8 JSON body, received a byte that is not UTF-8 at offset {exc.start}"
        ) from None
    json_limits.check(body, max_depth, max_items, max_containers)


def _content_types(scope: Scope) -> list[bytes]:
    return [value for name, value in scope["headers"] if name.lower() == b"content-type"]


def _is_json(types: list[bytes]) -> bool:
    content_type = types[0].lower() if types else b""
    media = content_type.split(b";")[0].strip()
    return media == b"application/json" or media.endswith(b"+json")


async def _send_error(
    scope: Scope, receive: Receive, send: Send, status: int, type_: RequestErrorType,
    message: str, loc: str | None = None,
) -> None:  # fmt: skip
    """The API's error envelope, answered from middleware (outside FastAPI's handlers)."""
    details = [ErrorDetail(loc=loc, message=message)] if loc else []
    # A 413 or 408 leaves the rest of the body unread: the connection cannot be reused.
    headers = {"Connection": "close"} if status in (408, 413) else None
    await envelope(status, type_, message, details, headers)(scope, receive, send)
