"""``/v1/datasets``: upload once (multipart, field ``file``), reference from many jobs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from fitq.schemas import DatasetList, DatasetRead
from fitq.statuses import DatasetStatus
from service.datasets import service
from service.deps import Context, Tenant
from service.openapi import errors

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=202, response_model=DatasetRead, responses=errors(403, 413, 422, 503))
def upload_dataset(
    ctx: Context,
    tenant: Tenant,
    response: Response,
    file: Annotated[UploadFile, File(description="A .csv, .npz (arrays x, y) or .jsonl file.")],
    target: Annotated[
        str | None, Form(max_length=10_000, description="Target column(s), comma-separated.")
    ] = None,
    features: Annotated[
        str | None, Form(max_length=100_000, description="Feature columns; default: the rest.")
    ] = None,
    format: Annotated[
        Literal["csv", "npz", "jsonl"] | None, Form(description="Default: from the file name.")
    ] = None,
) -> DatasetRead:
    """Stores the upload as received and answers 202 ``processing``; the ingest worker parses
    it into arrays and statistics (``ready``) or names the problem (``failed``)."""
    dataset = service.create_upload(
        ctx,
        tenant,
        filename=file.filename or "upload",
        source=file.file,
        target=target,
        features=features,
        declared_format=format,
    )
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return dataset


@router.get("", response_model=DatasetList, responses=errors(422))
def list_datasets(
    ctx: Context,
    tenant: Tenant,
    status: DatasetStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> DatasetList:
    return service.list_datasets(ctx, tenant, status=status, limit=limit, after=after)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=errors(404))
def get_dataset(dataset_id: str, ctx: Context, tenant: Tenant) -> DatasetRead:
    return service.get_dataset(ctx, tenant, dataset_id)


@router.delete("/{dataset_id}", status_code=204, responses=errors(404, 409))
def delete_dataset(dataset_id: str, ctx: Context, tenant: Tenant) -> Response:
    service.delete_dataset(ctx, tenant, dataset_id)
    return Response(status_code=204)
