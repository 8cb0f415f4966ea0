"""Jobs as the API shows them (JobRead), from one place: ``job_document``. Shared: the API
answers with it, and a job's webhook carries it (``fitq.webhooks.outbox``).

A job is polled far more often than it changes, and its spec (and, once finished, its result)
never changes at all; so the validated, serialised spec and result are kept per job id, and a
poll costs one plain dict and one orjson call instead of re-validating the stored spec."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from threading import Lock
from typing import Any

from fitq.schemas import JobResult
from fitq.spec import JobSpec
from fitq.statuses import JobStatus
from fitq.store.models import Job
from fitq.store.statements import JOB_COLUMNS


class _Rendered:
    """A bounded LRU of JSON-ready parts by job id (ids are never reused)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_specs = _Rendered(4096)
_results = _Rendered(4096)


def _spec(job_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    # Validated once: fills defaults a spec stored by an older version lacks, in field order.
    rendered = _specs.get(job_id)
    if rendered is None:
        rendered = JobSpec.model_validate(stored).model_dump(mode="json", by_alias=True)
        _specs.put(job_id, rendered)
    return rendered


def remember_spec(job_id: str, dumped: dict[str, Any]) -> None:
    """A new job's spec as ``JobSpec.model_dump(mode="json")`` just wrote it: what ``_spec``
    would render from it (no field has an alias), so its first read skips the validation."""
    _specs.put(job_id, dumped)


def _result(row: Mapping[str, Any]) -> dict[str, Any] | None:
    stored = row["result"]
    if stored is None:
        return None
    finished = JobStatus(row["status"]).finished
    rendered = _results.get(row["id"]) if finished else None
    if rendered is None:
        model_url = f"/v1/jobs/{row['id']}/model" if row["model_key"] else None
        result = JobResult.model_validate({**stored, "model_url": model_url})
        rendered = result.model_dump(mode="json", by_alias=True)
        if finished:
            _results.put(row["id"], rendered)
    return rendered


def as_utc(moment: datetime | None) -> datetime | None:
    # Whatever the database session's time zone, the API speaks UTC.
    return moment.astimezone(UTC) if moment is not None else None


def job_document(row: Mapping[str, Any], queue_position: int | None = None) -> dict[str, Any]:
    """The JobRead of a row holding ``JOB_COLUMNS``, as plain JSON-ready values."""
    error = None
    if row["error_type"] is not None:
        error = {"type": row["error_type"], "message": row["error_message"] or ""}
    return {
        "id": row["id"],
        "status": row["status"],
        "created_at": as_utc(row["created_at"]),
        "started_at": as_utc(row["started_at"]),
        "finished_at": as_utc(row["finished_at"]),
        "spec": _spec(row["id"], row["spec"]),
        "progress": {
            "epoch": row["epoch"],
            "epochs": row["epochs"],
            "eta_seconds": row["eta_seconds"],
            "queue_position": queue_position,
        },
        "history": row["history"],
        "result": _result(row),
        "error": error,
        "attempts": row["attempt"] - row["handbacks"],
        "cancel_requested": bool(row["cancel_requested"]),
        "cancel_reason": row["cancel_reason"],
        "sweep_id": row["sweep_id"],
        "trial": row["trial"],
    }


def columns_of(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in JOB_COLUMNS}
