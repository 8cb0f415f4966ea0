"""Dataset rows as the API shows them (DatasetRead)."""

from __future__ import annotations

from fitq.schemas import ColumnStats, DatasetError, DatasetRead
from fitq.statuses import DatasetStatus
from fitq.store.models import Dataset


def dataset_read(dataset: Dataset) -> DatasetRead:
    stats = dataset.stats or {}
    return DatasetRead(
        id=dataset.id,
        status=DatasetStatus(dataset.status),
        created_at=dataset.created_at,
        finished_at=dataset.finished_at,
        source=dataset.source,
        format=dataset.format,
        filename=dataset.filename,
        rows=dataset.rows,
        x_shape=dataset.x_shape,
        y_shape=dataset.y_shape,
        x_dtype=dataset.x_dtype,
        y_dtype=dataset.y_dtype,
        feature_names=dataset.feature_names,
        target_names=dataset.target_names,
        columns=[ColumnStats.model_validate(c) for c in stats["x"]] if "x" in stats else None,
        target_columns=[ColumnStats.model_validate(c) for c in stats["y"]]
        if "y" in stats
        else None,
        labels=dataset.labels,
        size_bytes=dataset.size_bytes,
        error=DatasetError(message=dataset.error_message) if dataset.error_message else None,
    )
