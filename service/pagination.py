"""Opaque list cursors: the last id of a page, base64url-encoded."""

from __future__ import annotations

import base64
from typing import Any

from fitq.errors import FitqError, RequestErrorType
from fitq.ids import is_valid_id


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    try:
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # bad padding, non-ASCII input, bytes that are not UTF-8
        last_id = ""
    if not is_valid_id(last_id, prefix):
        raise FitqError(
            422,
            RequestErrorType.validation_error,
            f"after: expected a cursor from a previous page's next_after, received {cursor[:64]!r}",
        )
    return last_id


def page_document(data: list[dict[str, Any]], fetched: int, limit: int) -> dict[str, Any]:
    """A list answer: ``data`` (at most ``limit`` documents) of ``fetched`` rows read, which
    were ``limit + 1`` when more exist; the cursor is the last document's id."""
    has_more = fetched > limit
    next_after = encode_cursor(data[-1]["id"]) if has_more and data else None
    return {"data": data, "has_more": has_more, "next_after": next_after}
