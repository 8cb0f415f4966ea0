"""Fine-tuning: a job whose model starts from an earlier job's trained model. The source is
read once, at submission: it must be one of the tenant's succeeded jobs with a stored model,
and its layers are copied into the new job's spec, so the new job is checked (shapes, data,
limits) and stored as any job is, and says what it trains."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from pydantic import ValidationError

from fitq.errors import SpecError
from fitq.ids import JOB_PREFIX, is_valid_id
from fitq.spec import JobCreate, ModelSpec
from fitq.spec.job import FromJob
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from service.context import ServiceContext

LOC = "model.from_job"


async def with_source_model(ctx: ServiceContext, tenant_id: str, body: JobCreate) -> JobCreate:
    """``body`` with its model resolved: a ``from_job`` model becomes the source job's
    layers, with ``from_job`` and ``freeze`` kept. Other bodies are returned as they are."""
    source_id = body.model.from_job
    if source_id is None:
        return body
    source = await to_thread.run_sync(read_source_model, ctx, tenant_id, source_id)
    return resolved_with(body, source)


def resolved_with(body: JobCreate, source: dict[str, Any] | None) -> JobCreate:
    """``body`` with its ``from_job`` model replaced by ``source`` (the source job's model,
    ``read_source_model``), ``from_job`` and ``freeze`` kept; other bodies as they are."""
    model = body.model
    source_id = model.from_job
    if source_id is None or source is None:
        return body
    try:
        resolved = ModelSpec.model_validate(
            {**source, "from_job": source_id, "freeze": model.freeze}
        )
    except ValidationError as exc:  # freeze against the source's layers
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise SpecError("model.freeze", message) from None
    return body.model_copy(update={"model": resolved})


def read_source_model(ctx: ServiceContext, tenant_id: str, job_id: str) -> dict[str, Any]:
    """The model of one of the tenant's succeeded jobs, as a fine-tuning job starts from it."""
    with transaction(ctx.sessions) as session:
        job = repo.get_job(session, tenant_id, job_id) if is_valid_id(job_id, JOB_PREFIX) else None
        if job is None:
            raise SpecError(LOC, f"expected one of your jobs, received unknown id {job_id!r}")
        if job.status != JobStatus.succeeded or job.model_key is None:
            raise SpecError(
                LOC,
                f"expected a succeeded job with a trained model, received {job_id} ({job.status})",
            )
        spec = dict(job.spec)
    model = dict(spec["model"])
    model.pop("from_job", None)
    model.pop("freeze", None)
    if spec.get("data", {}).get("standardize"):
        return _with_its_normalization(model, job_id)
    return model


def _with_its_normalization(model: dict[str, Any], job_id: str) -> dict[str, Any]:
    """A source trained with ``data.standardize``: its model starts with the Normalization
    adapted to its data, layer 0 of the model loaded (what ``freeze`` indexes count)."""
    if model.get("inputs") is not None:
        raise SpecError(
            LOC,
            f"expected a Sequential source when it was trained with data.standardize, "
            f"received {job_id}, a graph model (not supported for fine-tuning yet)",
        )
    layers = [dict(layer) for layer in model["layers"]]
    first: dict[str, Any] = {"type": "Normalization"}
    shape = model.pop("input_shape", None) or layers[0].pop("input_shape", None)
    first["input_shape"] = shape
    return {**model, "layers": [first, *layers]}


def source_model(body: JobCreate) -> ModelSpec:
    """The resolved body's model (``with_source_model`` has run)."""
    assert not isinstance(body.model, FromJob)
    return body.model
