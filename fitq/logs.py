"""Logs as one JSON object per line (``FITQ_LOG_FORMAT=json``) carrying the job id, dataset
id and tenant of whatever the line is about, set once per unit of work through context
variables; plain text otherwise (a laptop's terminal)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

job_id: ContextVar[str | None] = ContextVar("fitq_job_id", default=None)
dataset_id: ContextVar[str | None] = ContextVar("fitq_dataset_id", default=None)
tenant: ContextVar[str | None] = ContextVar("fitq_tenant", default=None)

_CONTEXT = {"job_id": job_id, "dataset_id": dataset_id, "tenant": tenant}
# Loggers that servers set up with handlers of their own (not the root's).
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """With ``json``, the root and the servers' loggers write through one JSON formatter;
    with ``text``, logging stays as uvicorn and Celery set it up."""
    if log_format != "json":
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server = logging.getLogger(name)
        server.handlers[:] = []
        server.propagate = True


# Query parameters whose values never reach a log line (a key sent as ``?api_key=`` would).
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|secret|password|authorization)=)[^&#]*"
)


def redact_query(path: str) -> str:
    return _SECRET_PARAMS.sub(r"\1REDACTED", path)


class RedactQuery(logging.Filter):
    """uvicorn's access lines carry the full path, query string included: secrets in it are
    replaced before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = redact_query(str(args[2]))  # (client, method, full path, version, status)
            record.args = tuple(args)
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Every log line inside the block carries these (job_id, dataset_id, tenant)."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
