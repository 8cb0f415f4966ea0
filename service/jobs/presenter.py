"""Job rows as the API shows them (JobRead)."""

from __future__ import annotations

from fitq.errors import JobErrorType
from fitq.schemas import JobError, JobRead, JobResult, Progress
from fitq.spec import JobSpec
from fitq.statuses import JobStatus
from fitq.store.models import Job


def job_read(job: Job, queue_position: int | None = None) -> JobRead:
    result = None
    if job.result is not None:
        model_url = f"/v1/jobs/{job.id}/model" if job.model_key else None
        result = JobResult.model_validate({**job.result, "model_url": model_url})
    error = None
    if job.error_type is not None:
        error = JobError(type=JobErrorType(job.error_type), message=job.error_message or "")
    return JobRead(
        id=job.id,
        status=JobStatus(job.status),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        spec=JobSpec.model_validate(job.spec),
        progress=Progress(
            epoch=job.epoch,
            epochs=job.epochs,
            eta_seconds=job.eta_seconds,
            queue_position=queue_position,
        ),
        history=job.history,
        result=result,
        error=error,
        attempts=job.attempt - job.handbacks,
        cancel_requested=job.cancel_requested,
    )
