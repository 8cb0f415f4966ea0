"""The checks a job passes before anything is written: the spec against its data (shapes,
targets, memory), inline arrays' size, and the job limits. What ``/v1/validate`` answers and
what ``POST /v1/jobs`` runs first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anyio import to_thread

from fitq.errors import SpecError
from fitq.settings import Settings
from fitq.spec import DatasetRef, InlineArrays, JobCreate, StoredData, Validation, validate_job
from service.datasets.service import StoredDataset, inline_split, resolve_reference
from service.jobs.fine_tuning import source_model
from service.jobs.limits import check_job_limits


@dataclass(frozen=True)
class CheckedJob:
    validation: Validation
    inline: dict[str, InlineArrays]
    referenced: dict[str, StoredData]


def referenced_ids(body: JobCreate) -> list[str]:
    return [src.dataset_id for src in body.data.sources().values() if isinstance(src, DatasetRef)]


def check_job(
    settings: Settings, datasets: Mapping[str, StoredDataset], body: JobCreate
) -> CheckedJob:
    """Every check a job passes before anything is written: what ``/v1/validate`` answers.
    ``datasets``: the tenant's datasets among those the body references, by id."""
    sources = body.data.sources()
    inline = {s: src for s, src in sources.items() if isinstance(src, InlineArrays)}
    refs = {s: src for s, src in sources.items() if isinstance(src, DatasetRef)}
    for split, arrays in inline.items():
        if arrays.rows > settings.max_inline_rows:
            raise SpecError(
                f"data.{split}.x",
                f"expected at most {settings.max_inline_rows} rows inline, "
                f"received {arrays.rows}: upload larger data as a dataset",
            )
    resolved = {s: resolve_reference(datasets.get(r.dataset_id), s, r) for s, r in refs.items()}
    referenced = {s: stored for s, (stored, _) in resolved.items()}
    splits = {
        **{s: inline_split(a) for s, a in inline.items()},
        **{s: split for s, (_, split) in resolved.items()},
    }
    validation = validate_job(
        source_model(body),
        body.compile,
        body.fit,
        splits,
        test_split=body.data.test_split,
        max_params=settings.max_params,
        standardize=body.data.standardize,
    )
    check_job_limits(
        settings, body.fit, validation.model_summary, validation.estimated_work.samples_x_epochs
    )
    return CheckedJob(validation, inline, referenced)


async def check_job_async(
    settings: Settings, datasets: Mapping[str, StoredDataset], body: JobCreate
) -> CheckedJob:
    """``check_job``; off the event loop when inline arrays must be scanned (value ranges,
    classes), on it otherwise (a spec's checks take microseconds)."""
    if any(isinstance(src, InlineArrays) for src in body.data.sources().values()):
        return await to_thread.run_sync(check_job, settings, datasets, body)
    return check_job(settings, datasets, body)
