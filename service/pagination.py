"""Opaque list cursors: the last id of a page, base64url-encoded."""

from __future__ import annotations

import base64

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
