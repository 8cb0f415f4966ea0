"""The error answers each route documents in the OpenAPI schema, all in the error envelope,
so clients (and schemathesis) know every status a route can give."""

from __future__ import annotations

from typing import Any

from fitq.errors import ErrorEnvelope

_MEANING = {
    401: "No API key, or a malformed, unknown or revoked one.",
    403: "The stored dataset bytes quota would be exceeded, or the key is not an admin's.",
    404: "No such resource for this tenant.",
    409: "The resource's state does not allow it, or an Idempotency-Key was reused.",
    413: "The request body is over its size limit.",
    422: "The request breaks the spec or a limit; details name each field.",
    429: "A job quota (queued + running jobs, GPU-seconds a day) is used up; see Retry-After.",
    503: "The broker or the store did not accept the request; try again.",
    504: "No inference worker answered in time; try again.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: every authenticated route adds 401."""
    return {
        code: {"model": ErrorEnvelope, "description": _MEANING[code]}
        for code in sorted({401, *codes})
    }
