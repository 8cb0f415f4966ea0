"""Error types of the HTTP API and of jobs, and the envelope every error is sent in:
``{"error": {"type": ..., "message": ..., "details": [...]}}``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from fitq.schema_docs import Documented


class RequestErrorType(StrEnum):
    """The kind of an error answer."""

    validation_error = "validation_error"
    not_found = "not_found"
    conflict = "conflict"
    payload_too_large = "payload_too_large"
    unauthorized = "unauthorized"
    forbidden = "forbidden"  # 403: the key's role may not do this
    quota_exceeded = "quota_exceeded"
    rate_limited = "rate_limited"
    timeout = "timeout"  # 504: a prediction did not come back in time
    unavailable = "unavailable"  # 503: the broker refused the request
    internal = "internal"


class JobErrorType(StrEnum):
    """The kind of a job's failure."""

    training_error = "training_error"
    non_finite_loss = "non_finite_loss"
    out_of_memory = "out_of_memory"
    max_runtime_exceeded = "max_runtime_exceeded"
    worker_lost = "worker_lost"  # the process running it died (killed, OOM, host lost)
    worker_error = "worker_error"  # the worker failed, not the training: its message says why
    no_capacity = "no_capacity"
    broker_unavailable = "broker_unavailable"
    data_error = "data_error"
    invalid_trial = "invalid_trial"  # a sweep's trial whose drawn values make an invalid job


class ErrorDetail(Documented):
    """One field refused: where it is, what was expected, what was received."""

    loc: str = Field(description="Dotted path of the offending field, e.g. 'compile.optimizer'.")
    message: str
    received: Any = None


class ErrorBody(Documented):
    """An error: its kind, a message, and one detail per field refused."""

    type: RequestErrorType
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorEnvelope(Documented):
    """Every error answer (4xx, 5xx) has this shape."""

    error: ErrorBody


class FitqError(Exception):
    """A request error with its HTTP status; the API renders it as the envelope."""

    def __init__(
        self,
        status_code: int,
        type: RequestErrorType,
        message: str,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def envelope(self) -> ErrorEnvelope:
        return ErrorEnvelope(
            error=ErrorBody(type=self.type, message=self.message, details=self.details)
        )


class SpecError(FitqError):
    """A spec that pydantic accepted but the shape check refused (422)."""

    def __init__(self, loc: str, message: str, received: Any = None) -> None:
        super().__init__(
            422,
            RequestErrorType.validation_error,
            f"{loc}: {message}",
            [ErrorDetail(loc=loc, message=message, received=received)],
        )


def not_found(kind: str, id_: str) -> FitqError:
    return FitqError(404, RequestErrorType.not_found, f"{kind} {id_!r} not found")


def model_missing(job_id: str) -> FitqError:
    """A succeeded job whose model file is gone from the artifact store (deleted, or a volume
    that was not kept): its results and history stay readable."""
    return FitqError(
        404,
        RequestErrorType.not_found,
        f"the model of job {job_id!r} is missing from the artifact store (deleted, or its "
        "volume or bucket was not kept); the job's results and history remain",
    )


def conflict(message: str) -> FitqError:
    return FitqError(409, RequestErrorType.conflict, message)


def unauthorized(message: str) -> FitqError:
    return FitqError(
        401, RequestErrorType.unauthorized, message, headers={"WWW-Authenticate": "Bearer"}
    )


def quota_exceeded(status_code: int, message: str, retry_after: int | None = None) -> FitqError:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return FitqError(status_code, RequestErrorType.quota_exceeded, message, headers=headers)


def forbidden(message: str) -> FitqError:
    return FitqError(403, RequestErrorType.forbidden, message)
