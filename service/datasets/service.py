"""Dataset use cases: uploads (stored as received, then parsed by the ingest worker), reads,
lists, deletes; and what job submission needs: inline arrays stored as datasets, references
resolved for the caller's tenant."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, BinaryIO, Protocol

import numpy as np
from sqlalchemy.orm import Session

from fitq.artifacts import ArtifactStore, dataset_key, dataset_prefix, upload_key
from fitq.errors import FitqError, SpecError, conflict, not_found, quota_exceeded
from fitq.ids import DATASET_PREFIX, is_valid_id, new_id
from fitq.schemas import DatasetList, DatasetRead
from fitq.spec import DatasetRef, InlineArrays, SplitData, StoredData, ValueRange, value_range
from fitq.statuses import DatasetStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Dataset
from fitq.store.types import utcnow
from service.context import ServiceContext
from service.datasets.presenter import dataset_read
from service.pagination import decode_cursor, encode_cursor
from service.queue import BrokerUnavailable


class StoredDataset(Protocol):
    """What a job's checks read of a stored dataset: a ``Dataset`` row, or its columns of the
    same names as a submission read them (``service.jobs.submission_store.DatasetFacts``)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def rows(self) -> int | None: ...
    @property
    def x_shape(self) -> list[int] | None: ...
    @property
    def y_shape(self) -> list[int] | None: ...
    @property
    def stats(self) -> dict[str, Any] | None: ...
    @property
    def labels(self) -> list[str] | None: ...


def resolve_reference(
    dataset: StoredDataset | None, split: str, ref: DatasetRef
) -> tuple[StoredData, SplitData]:
    """The caller's ready dataset (``dataset``: the tenant's row with the referenced id, if
    any), as the job stores it and as the submit checks see it."""
    loc = f"data.{split}.dataset_id"
    if dataset is None:
        raise SpecError(
            loc, f"expected an existing dataset, received unknown id {ref.dataset_id!r}"
        )
    if dataset.status != DatasetStatus.ready:
        raise SpecError(loc, f"expected a ready dataset, received one that is {dataset.status}")
    return stored_data(dataset), _split_of(dataset)


def _split_of(dataset: StoredDataset) -> SplitData:
    assert dataset.x_shape is not None and dataset.y_shape is not None
    stats = dataset.stats or {}

    def values(prefix: str) -> ValueRange | None:
        if f"{prefix}_min" not in stats:
            return None
        low, high = stats[f"{prefix}_min"], stats[f"{prefix}_max"]
        return ValueRange(low, high, bool(stats[f"{prefix}_integral"]))

    return SplitData(
        dataset.x_shape,
        dataset.y_shape,
        values("x"),
        values("y"),
        y_classes=stats.get("y_classes"),
        labels=dataset.labels,
    )


def inline_split(arrays: InlineArrays) -> SplitData:
    y_low, y_high, y_integral = value_range(arrays.y)
    classes = None
    if y_integral:
        distinct = np.unique(arrays.y)
        classes = distinct.tolist() if len(distinct) <= MAX_LISTED_CLASSES else None
    return SplitData(
        arrays.x.shape,
        arrays.y.shape,
        ValueRange(*value_range(arrays.x)),
        ValueRange(y_low, y_high, y_integral),
        y_classes=classes,
    )


def store_inline(artifacts: ArtifactStore, tenant_id: str, arrays: InlineArrays) -> Dataset:
    """Writes the arrays to the artifact store and returns the (uncommitted) dataset row.
    Files come first: a row never points at a file that is not there."""
    dataset_id = new_id(DATASET_PREFIX)
    x_key, y_key = dataset_key(dataset_id, "x"), dataset_key(dataset_id, "y")
    size = artifacts.put_array(x_key, arrays.x) + artifacts.put_array(y_key, arrays.y)
    return Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        status=DatasetStatus.ready,
        source="inline",
        rows=len(arrays.x),
        x_shape=list(arrays.x.shape),
        y_shape=list(arrays.y.shape),
        x_dtype="float32",
        y_dtype="float32",
        format="inline",
        x_key=x_key,
        y_key=y_key,
        size_bytes=size,
    )


def stored_data(dataset: StoredDataset) -> StoredData:
    assert dataset.x_shape is not None and dataset.y_shape is not None
    return StoredData(
        dataset_id=dataset.id,
        rows=dataset.rows or 0,
        x_shape=dataset.x_shape,
        y_shape=dataset.y_shape,
    )


MAX_LISTED_CLASSES = 1_000  # as the ingest worker: more distinct values is not a class target
UPLOAD_FORMATS = {".csv": "csv", ".npz": "npz", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def upload_format(filename: str, declared: str | None) -> str:
    if declared:
        return declared
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix not in UPLOAD_FORMATS:
        raise SpecError(
            "file",
            f"expected a .csv, .npz or .jsonl file (or a format field), received {filename!r}",
        )
    return UPLOAD_FORMATS[suffix]


def _names(field: str, value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    names = [name.strip() for name in value.split(",")]
    if "\x00" in value:
        raise SpecError(field, f"expected column names without NUL characters, received {value!r}")
    if any(not name for name in names) or len(set(names)) != len(names):
        raise SpecError(
            field, f"expected distinct comma-separated column names, received {value!r}"
        )
    return names


def _display_name(filename: str) -> str:
    """The name is shown back to the user only, never used as a path."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    return "".join(ch for ch in base if ch.isprintable())[:255] or "upload"


def ensure_storage(ctx: ServiceContext, stored: int, adding: int) -> None:
    limit = ctx.settings.max_dataset_bytes
    if stored + adding > limit:
        raise quota_exceeded(
            403,
            f"expected at most {limit:,} bytes of datasets (FITQ_MAX_DATASET_BYTES), received "
            f"{adding:,} more on top of {stored:,}: delete datasets you no longer need",
        )


def create_upload(
    ctx: ServiceContext,
    tenant_id: str,
    *,
    filename: str,
    source: BinaryIO,
    target: str | None,
    features: str | None,
    declared_format: str | None,
) -> DatasetRead:
    file_format = upload_format(filename, declared_format)
    options = {"target": _names("target", target) or [], "features": _names("features", features)}
    dataset_id = new_id(DATASET_PREFIX)
    key = upload_key(dataset_id, file_format)
    size = ctx.artifacts.put_stream(key, source)
    if size == 0:
        ctx.artifacts.delete(key)
        raise SpecError("file", "expected data, received an empty file")
    try:
        with transaction(ctx.sessions) as session:
            ensure_storage(ctx, repo.dataset_bytes(session, tenant_id), size)
    except FitqError:
        ctx.artifacts.delete(key)
        raise
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        status=DatasetStatus.processing,
        source="upload",
        format=file_format,
        filename=_display_name(filename),
        options=options,
        source_key=key,
        size_bytes=size,
        attempt=0,
    )
    with transaction(ctx.sessions) as session:
        repo.add_dataset(session, dataset)
    send_ingest(ctx, dataset_id)
    return get_dataset(ctx, tenant_id, dataset_id)


def send_ingest(ctx: ServiceContext, dataset_id: str) -> bool:
    """Send the dataset's id to the ingest queue; a refusing broker fails the upload."""
    try:
        ctx.queue.send_ingest(dataset_id)
    except BrokerUnavailable as exc:
        with transaction(ctx.sessions) as session:
            dataset = repo.get_dataset_by_id(session, dataset_id)
            if dataset is not None:
                repo.fail_stalled_dataset(session, dataset, f"broker unavailable: {exc}")
        return False
    with transaction(ctx.sessions) as session:
        repo.mark_dataset_sent(session, dataset_id, utcnow())
    return True


def _find_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    """The caller's dataset, or 404 for a malformed, unknown or other tenant's id alike."""
    dataset = (
        repo.get_dataset(session, tenant_id, dataset_id)
        if is_valid_id(dataset_id, DATASET_PREFIX)
        else None
    )
    if dataset is None:
        raise not_found("dataset", dataset_id)
    return dataset


def get_dataset(ctx: ServiceContext, tenant_id: str, dataset_id: str) -> DatasetRead:
    with transaction(ctx.sessions) as session:
        return dataset_read(_find_dataset(session, tenant_id, dataset_id))


def list_datasets(
    ctx: ServiceContext,
    tenant_id: str,
    *,
    status: DatasetStatus | None,
    limit: int,
    after: str | None,
) -> DatasetList:
    before_id = decode_cursor(after, DATASET_PREFIX) if after else None
    with transaction(ctx.sessions) as session:
        rows = repo.list_datasets(
            session, tenant_id, status=status, limit=limit, before_id=before_id
        )
        page = [dataset_read(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    return DatasetList(
        data=page, has_more=has_more, next_after=encode_cursor(page[-1].id) if has_more else None
    )


def delete_dataset(ctx: ServiceContext, tenant_id: str, dataset_id: str) -> None:
    with transaction(ctx.sessions) as session:
        dataset = _find_dataset(session, tenant_id, dataset_id)
        users = repo.active_job_ids_using(session, tenant_id, dataset_id)
        if users:
            raise conflict(
                f"dataset {dataset_id} is used by queued or running jobs "
                f"({', '.join(users[:5])}); delete it once they finish",
            )
        if dataset.status == DatasetStatus.processing:
            raise conflict(
                f"dataset {dataset_id} is still processing; delete it once it is ready or failed",
            )
        repo.delete_dataset(session, dataset)
    ctx.artifacts.delete_prefix(dataset_prefix(dataset_id))
