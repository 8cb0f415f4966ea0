"""A new row's values come from the ORM's column defaults (``fitq.store.rows``), and the job
document reads exactly the columns the ORM marks as shown."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from fitq.documents import job_document
from fitq.spec import JobSpec
from fitq.statuses import JobStatus
from fitq.store.models import Job, JobEvent
from fitq.store.rows import new_row, shape_of
from fitq.store.statements import JOB_COLUMNS
from fitq.store.types import utcnow
from tests.factories import tiny_job


def test_a_new_row_takes_every_default_of_the_model() -> None:
    row = new_row(Job, id="job_1", tenant_id="t1")
    assert set(row) == {column.key for column in Job.__table__.columns}
    for column in Job.__table__.columns:
        if column.key in ("id", "tenant_id"):
            continue
        if column.default is None:
            assert row[column.key] is None, column.key
        elif not column.default.is_callable:  # type: ignore[attr-defined]
            assert row[column.key] == column.default.arg, column.key  # type: ignore[attr-defined]
    assert row["history"] == [] and row["history"] is not new_row(Job)["history"]
    assert row["created_at"] is not None and row["created_at"].tzinfo is not None


def test_a_given_value_wins_over_the_default() -> None:
    assert new_row(Job, attempt=3, cancel_requested=True)["attempt"] == 3


def test_the_database_numbers_its_serial_column() -> None:
    assert "id" not in new_row(JobEvent, job_id="job_1")
    assert "id" not in shape_of(JobEvent).columns


def test_a_misspelt_column_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"expected columns of jobs, received \['atempt'\]"):
        new_row(Job, atempt=1)


class _OnlyShown(Mapping[str, Any]):
    """A row that fails on any column the ORM does not mark as shown."""

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getitem__(self, key: str) -> Any:
        if key not in JOB_COLUMNS:
            raise AssertionError(f"job_document read {key!r}, which Job does not mark SHOWN")
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(JOB_COLUMNS)

    def __len__(self) -> int:
        return len(JOB_COLUMNS)


def test_the_job_document_reads_the_shown_columns_only() -> None:
    stored = {"dataset_id": "ds_1", "rows": 64, "x_shape": [4], "y_shape": [1]}
    body = {k: v for k, v in tiny_job().items() if k != "data"}
    spec = JobSpec.model_validate({**body, "seed": 1, "data": {"train": stored}})
    spec = spec.model_dump(mode="json")
    row = new_row(
        Job, id="job_1", tenant_id="t1", status=JobStatus.failed.value, queue="cpu",
        spec=spec, epochs=2, error_type="worker_error", error_message="lost", finished_at=utcnow(),
    )  # fmt: skip
    document = job_document(_OnlyShown(row))
    assert document["error"] == {"type": "worker_error", "message": "lost"}
    assert document["progress"]["epochs"] == 2
