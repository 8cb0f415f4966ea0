"""Dataset use cases: uploads (stored as received, then parsed by the ingest worker), reads,
lists, deletes; and what job submission needs: inline arrays stored as datasets, references
resolved for the caller's tenant."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Protocol

import numpy as np
from sqlalchemy.orm import Session

from fitq.artifacts import ArtifactStore, dataset_key, dataset_prefix, upload_key
from fitq.errors import FitqError, SpecError, conflict, not_found, quota_exceeded
from fitq.ids import DATASET_PREFIX, is_valid_id, new_id
from fitq.schemas import DatasetList, DatasetRead
from fitq.spec import DatasetRef, InlineArrays, SplitData, StoredData, ValueRange, value_range
from fitq.spec.arguments import did_you_mean
from fitq.spec.data import ColumnGroup, WeightColumn, columns_of
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
    @property
    def feature_names(self) -> list[str] | None: ...
    @property
    def target_names(self) -> list[str] | None: ...


def resolve_reference(
    dataset: StoredDataset | None, split: str, ref: DatasetRef
) -> tuple[StoredData, SplitData]:
    """The caller's ready dataset (``dataset``: the tenant's row with the referenced id, if
    any), as the job stores it and as the submit checks see it: with the named groups of
    its columns the reference picks for a model of several inputs or outputs."""
    loc = f"data.{split}.dataset_id"
    if dataset is None:
        raise SpecError(
            loc, f"expected an existing dataset, received unknown id {ref.dataset_id!r}"
        )
    if dataset.status != DatasetStatus.ready:
        raise SpecError(loc, f"expected a ready dataset, received one that is {dataset.status}")
    assert dataset.x_shape is not None and dataset.y_shape is not None
    weight = _weight_column(f"data.{split}.sample_weight", ref.sample_weight, dataset)
    x_groups = _column_groups(
        f"data.{split}.inputs", ref.inputs, dataset.feature_names, dataset.x_shape, "feature"
    )
    y_groups = _column_groups(
        f"data.{split}.outputs", ref.outputs, dataset.target_names, dataset.y_shape, "target"
    )
    split_data = _split_of(dataset)
    if x_groups is not None or y_groups is not None:
        split_data = with_parts(split_data, x_groups, y_groups)
    if weight is not None:
        groups = x_groups if weight.array == "x" else y_groups
        if groups is None:  # the other columns, as one group
            groups = [_others(weight, dataset.x_shape if weight.array == "x" else dataset.y_shape)]
            split_data = _without_column(split_data, weight.array, groups[0])
        elif any(start <= weight.column < stop for g in groups for start, stop in g.columns):
            raise SpecError(
                f"data.{split}.sample_weight",
                f"expected a column that is no input's or output's, received {ref.sample_weight!r}",
            )
        if weight.array == "x":
            x_groups = groups
        else:
            y_groups = groups
    stored = stored_data(dataset).model_copy(
        update={"x_groups": x_groups, "y_groups": y_groups, "sample_weight": weight}
    )
    return stored, replace(split_data, weighted=weight is not None)


def _weight_column(loc: str, name: str | None, dataset: StoredDataset) -> WeightColumn | None:
    """Where a reference's ``sample_weight`` column is: among the features or targets."""
    if name is None:
        return None
    if dataset.feature_names is not None and name in dataset.feature_names:
        return WeightColumn(array="x", column=dataset.feature_names.index(name))
    if dataset.target_names is not None and name in dataset.target_names:
        return WeightColumn(array="y", column=dataset.target_names.index(name))
    known = [*(dataset.feature_names or []), *(dataset.target_names or [])]
    raise SpecError(
        loc,
        f"expected a column of the dataset ({', '.join(map(repr, known[:20]))}), received "
        f"{name!r}{did_you_mean(name, known)}",
    )


def _others(weight: WeightColumn, shape: list[int]) -> ColumnGroup:
    """Every column of the array but the weights', as the model's one input or output (one
    target column left: a scalar per row)."""
    width = 1 if len(shape) == 1 else shape[1]
    kept = [c for c in range(width) if c != weight.column]
    if not kept:
        raise SpecError("data", "expected columns besides the sample_weight column, received none")
    scalar = weight.array == "y" and len(kept) == 1
    return ColumnGroup(name="", shape=[] if scalar else [len(kept)], columns=columns_of(kept))


def _without_column(data: SplitData, array: str, kept: ColumnGroup) -> SplitData:
    """``data`` as the model sees it once the weights' column is taken out of ``array``
    (value statistics, taken over every column, no longer apply)."""
    rows = data.x_shape[0]
    if array == "x":
        return replace(data, x_shape=(rows, *kept.shape), x_values=None)
    return replace(data, y_shape=(rows, *kept.shape), y_values=None, y_classes=None, labels=None)


def _column_groups(
    loc: str,
    picked: dict[str, list[str]] | None,
    names: list[str] | None,
    shape: list[int],
    kind: str,
) -> list[ColumnGroup] | None:
    """A reference's ``inputs`` / ``outputs`` (group name → column names) as column groups;
    a group of one target column is a scalar per row, as a column of targets is."""
    if picked is None:
        return None
    if names is None:
        raise SpecError(
            loc,
            f"expected a dataset with named {kind} columns (a CSV or JSONL upload), "
            "received one without",
        )
    width = 1 if len(shape) == 1 else shape[1]
    index = {name: i for i, name in enumerate(names)} if len(names) == width else {}
    groups = []
    for group, columns in picked.items():
        unknown = [c for c in columns if c not in index]
        if unknown:
            raise SpecError(
                f"{loc}.{group}",
                f"expected {kind} columns of the dataset ({', '.join(map(repr, names[:20]))}), "
                f"received {unknown[0]!r}{did_you_mean(unknown[0], names)}",
            )
        scalar = kind == "target" and len(columns) == 1
        groups.append(
            ColumnGroup(
                name=group,
                shape=[] if scalar else [len(columns)],
                columns=columns_of([index[c] for c in columns]),
            )
        )
    return groups


def with_parts(
    data: SplitData, x_groups: list[ColumnGroup] | None, y_groups: list[ColumnGroup] | None
) -> SplitData:
    """``data`` with its named parts, each seen as a whole x or y (shapes; the values of a
    stored dataset are known for all its columns together, not per part)."""
    rows = data.x_shape[0]
    x_parts = (
        {g.name: replace(data, x_shape=(rows, *g.shape), x_values=None) for g in x_groups}
        if x_groups is not None
        else None
    )
    y_parts = (
        {
            g.name: replace(data, y_shape=(rows, *g.shape), y_values=None, y_classes=None)
            for g in y_groups
        }
        if y_groups is not None
        else None
    )
    return replace(data, x_parts=x_parts, y_parts=y_parts)


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


def _x_facts(x: np.ndarray) -> dict[str, Any]:
    return {"x_shape": x.shape, "x_values": ValueRange(*value_range(x))}


def _y_facts(y: np.ndarray) -> dict[str, Any]:
    low, high, integral = value_range(y)
    classes = None
    if integral:
        distinct = np.unique(y)
        classes = distinct.tolist() if len(distinct) <= MAX_LISTED_CLASSES else None
    return {"y_shape": y.shape, "y_values": ValueRange(low, high, integral), "y_classes": classes}


def inline_split(arrays: InlineArrays) -> SplitData:
    """What the checks read of inline arrays, as sent: shapes, value ranges and classes,
    each array's read once; per named input and output where they are named (the whole
    then stands for the rows, with the first array's facts)."""
    xs = {name: _x_facts(x) for name, x in _by_name(arrays.x).items()}
    ys = {name: _y_facts(y) for name, y in _by_name(arrays.y).items()}
    whole = SplitData(
        **next(iter(xs.values())),
        **next(iter(ys.values())),
        weighted=arrays.sample_weight is not None,
    )
    named_x, named_y = isinstance(arrays.x, dict), isinstance(arrays.y, dict)
    return replace(
        whole,
        x_parts={name: replace(whole, **facts) for name, facts in xs.items()} if named_x else None,
        y_parts={name: replace(whole, **facts) for name, facts in ys.items()} if named_y else None,
    )


def _by_name(value: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return value if isinstance(value, dict) else {"": value}


def store_inline(artifacts: ArtifactStore, tenant_id: str, arrays: InlineArrays) -> Dataset:
    """Writes the arrays to the artifact store and returns the (uncommitted) dataset row.
    Files come first: a row never points at a file that is not there. Named arrays are
    packed side by side (``InlineArrays.packed``); the job keeps their groups."""
    packed = arrays.packed
    dataset_id = new_id(DATASET_PREFIX)
    x_key, y_key = dataset_key(dataset_id, "x"), dataset_key(dataset_id, "y")
    size = artifacts.put_array(x_key, packed.x) + artifacts.put_array(y_key, packed.y)
    return Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        status=DatasetStatus.ready,
        source="inline",
        rows=len(packed.x),
        x_shape=list(packed.x.shape),
        y_shape=list(packed.y.shape),
        x_dtype="float32",
        y_dtype="float32",
        format="inline",
        x_key=x_key,
        y_key=y_key,
        size_bytes=size,
    )


def stored_data(dataset: StoredDataset, arrays: InlineArrays | None = None) -> StoredData:
    """A split as the job keeps it; ``arrays``: the inline arrays ``dataset`` stores, whose
    named groups the job keeps."""
    assert dataset.x_shape is not None and dataset.y_shape is not None
    packed = arrays.packed if arrays is not None else None
    return StoredData(
        dataset_id=dataset.id,
        rows=dataset.rows or 0,
        x_shape=dataset.x_shape,
        y_shape=dataset.y_shape,
        x_groups=packed.x_groups if packed else None,
        y_groups=packed.y_groups if packed else None,
        sample_weight=packed.sample_weight if packed else None,
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
