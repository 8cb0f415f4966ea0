"""Datasets as the job submit path needs them: inline arrays stored as datasets, and
references to stored datasets resolved for the caller's tenant."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fitq.artifacts import ArtifactStore, dataset_key
from fitq.errors import SpecError
from fitq.ids import DATASET_PREFIX, new_id
from fitq.spec import DatasetRef, InlineArrays, StoredData
from fitq.statuses import DatasetStatus
from fitq.store import repository as repo
from fitq.store.models import Dataset


def resolve_reference(session: Session, tenant_id: str, split: str, ref: DatasetRef) -> StoredData:
    dataset = repo.get_dataset(session, tenant_id, ref.dataset_id)
    loc = f"data.{split}.dataset_id"
    if dataset is None:
        raise SpecError(
            loc, f"expected an existing dataset, received unknown id {ref.dataset_id!r}"
        )
    if dataset.status != DatasetStatus.ready:
        raise SpecError(loc, f"expected a ready dataset, received one that is {dataset.status}")
    return stored_data(dataset)


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


def stored_data(dataset: Dataset) -> StoredData:
    assert dataset.x_shape is not None and dataset.y_shape is not None
    return StoredData(
        dataset_id=dataset.id,
        rows=dataset.rows or 0,
        x_shape=dataset.x_shape,
        y_shape=dataset.y_shape,
    )
