"""Request body limits enforced while the body streams in: a declared ``Content-Length`` over
the limit answers 413 before a byte is read; an undeclared (chunked) body is cut off at the
limit. Either way the API never holds more than its parser's buffer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LimitFor = Callable[[Scope], int | None]


class PayloadTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"expected a body of at most {limit:,} bytes, received more")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit_for: LimitFor) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(limit)  # FastAPI re-raises HTTPExceptions as they are
            return message

        await self.app(scope, counted, send)


async def _reject(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "error": {
            "type": "payload_too_large",
            "message": f"expected a body of at most {limit:,} bytes, received a larger one",
            "details": [],
        }
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": payload})
