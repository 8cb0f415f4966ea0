"""Job documents (``fitq.documents.job_document``) as response bodies."""

from __future__ import annotations

from typing import Any

import orjson


def render_json(document: dict[str, Any]) -> bytes:
    """The response body: orjson writes datetimes as RFC 3339 with 'Z', as pydantic does."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)
