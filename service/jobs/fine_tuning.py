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
    model = body.model
    source_id = model.from_job
    if source_id is None:
        return body
    source = await to_thread.run_sync(_source_model, ctx, tenant_id, source_id)
    try:
        resolved = ModelSpec.model_validate(
            {**source, "from_job": source_id, "freeze": model.freeze}
        )
    except ValidationError as exc:  # freeze against the source's layers
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise SpecError("model.freeze", message) from None
    return body.model_copy(update={"model": resolved})


def _source_model(ctx: ServiceContext, tenant_id: str, job_id: str) -> dict[str, Any]:
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
    if spec.get("data", {}).get("standardize"):
        raise SpecError(
            LOC,
            f"expected a job trained without data.standardize, received {job_id}, whose model "
            "starts with the Normalization fitted to its data (not supported for fine-tuning "
            "yet)",
        )
    model = dict(spec["model"])
    model.pop("from_job", None)
    model.pop("freeze", None)
    return model


def source_model(body: JobCreate) -> ModelSpec:
    """The resolved body's model (``with_source_model`` has run)."""
    assert not isinstance(body.model, FromJob)
    return body.model
