"""The OpenAPI schema as the API behaves: the error answers each route documents, all in
the error envelope (FastAPI's own ``HTTPValidationError`` is never sent: every 422 is the
envelope), file downloads with their media types, and names a client generator keeps."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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


def file_response(media_type: str, what: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers a file."""
    return {
        200: {
            "description": what,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
        }
    }


# FastAPI names a multipart body after its route; a generated client would carry the name.
_RENAMED = {"Body_upload_dataset": "DatasetUpload"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI, description: str) -> None:
    """``app.openapi``: FastAPI's schema, its 422s pointed at the error envelope, its
    route-named bodies renamed."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=description,
                routes=app.routes,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            _envelope_422s(schema)
            app.openapi_schema = _renamed(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _envelope_422s(schema: dict[str, Any]) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None and "HTTPValidationError" in str(answer):
                operation["responses"]["422"] = {
                    "description": _MEANING[422],
                    "content": {"application/json": {"schema": envelope}},
                }
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        components.pop(name, None)


def _renamed(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.get("components", {}).get("schemas", {})
    for old, new in _RENAMED.items():
        if old in components:
            body = components.pop(old)
            body["title"] = new
            body.setdefault("description", "A dataset upload: the file and how to read it.")
            components[new] = body
    refs = {
        f"#/components/schemas/{old}": f"#/components/schemas/{new}"
        for old, new in _RENAMED.items()
    }
    return _with_refs(schema, refs)


def _with_refs(node: Any, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: refs.get(v, v) if k == "$ref" else _with_refs(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_refs(item, refs) for item in node]
    return node
