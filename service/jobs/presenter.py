"""Job rows as the API shows them (JobRead), and the opaque list cursor."""

from __future__ import annotations

import base64
import binascii

from fitq.errors import FitqError, JobErrorType, RequestErrorType
from fitq.ids import JOB_PREFIX, is_valid_id
from fitq.schemas import JobError, JobRead, JobResult, Progress
from fitq.spec import JobSpec
from fitq.statuses import JobStatus
from fitq.store.models import Job


def job_read(job: Job) -> JobRead:
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
        progress=Progress(epoch=job.epoch, epochs=job.epochs, eta_seconds=job.eta_seconds),
        history=job.history,
        result=result,
        error=error,
        attempts=job.attempt,
        cancel_requested=job.cancel_requested,
    )


def encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        job_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        job_id = ""
    if not is_valid_id(job_id, JOB_PREFIX):
        raise FitqError(
            422,
            RequestErrorType.validation_error,
            f"after: expected a cursor from a previous page's next_after, received {cursor[:64]!r}",
        )
    return job_id
