"""When the worker fails rather than the job's training (a broken installation, a bug in fitq,
an artifact store it cannot reach): the job ends ``failed`` with type ``worker_error`` and the
exception's own type and message, at once. Left to its lease, such a job would be retried
into ``worker_lost`` minutes later with the cause nowhere in the API; ``worker_lost`` is kept
for a process that really died. No Keras here: this must work when importing Keras failed."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from fitq.errors import JobErrorType
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction

log = logging.getLogger(__name__)


class StoreUnreachable(Exception):
    """The job could not be claimed: the store did not answer for the whole wait. The
    message must stay with the broker (not acknowledged), for this or another worker."""


def worker_error_message(exc: BaseException) -> str:
    return f"the worker failed: {type(exc).__name__}: {exc}"


def fail_with_worker_error(
    sessions: sessionmaker[Session], job_id: str, attempt: int, exc: BaseException
) -> bool:
    """Fail a job this attempt claimed, keeping the epochs it recorded; False when the
    attempt no longer owns it."""
    log.error("job %s: %s", job_id, worker_error_message(exc), exc_info=exc)
    with transaction(sessions) as session:
        row = repo.get_job_by_id(session, job_id)
        history = list(row.history or []) if row is not None else []
        outcome = repo.JobOutcome(
            status=JobStatus.failed,
            history=history,
            error_type=JobErrorType.worker_error,
            error_message=worker_error_message(exc),
        )
        return repo.finish_job(session, job_id, attempt, outcome)


def fail_unstarted(
    sessions: sessionmaker[Session],
    job_id: str,
    worker_name: str,
    lease: timedelta,
    exc: BaseException,
) -> bool:
    """The worker could not even set up to run the job: claim it (a message for a job that
    is not queued is a duplicate, left alone) and fail it with the cause."""
    with transaction(sessions) as session:
        attempt = repo.claim_job(session, job_id, worker_name, lease)
    if attempt is None:
        return False
    return fail_with_worker_error(sessions, job_id, attempt, exc)
