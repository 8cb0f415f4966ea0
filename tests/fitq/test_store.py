"""The job store on SQLite and PostgreSQL: claims, fencing, sweeper queries, non-finite
values, newest-first listing."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from fitq.errors import JobErrorType
from fitq.ids import JOB_PREFIX, new_id
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Job
from fitq.store.types import utcnow

LEASE = timedelta(seconds=30)


def add_job(sessions: sessionmaker[Session], tenant: str = "default", **fields) -> str:
    job = Job(
        id=new_id(JOB_PREFIX),
        tenant_id=tenant,
        status=fields.pop("status", JobStatus.queued),
        queue="train",
        spec={"k": 1},
        epochs=3,
        history=[],
        attempt=0,
        sends=0,
        epoch=0,
        cancel_requested=False,
        **fields,
    )
    with transaction(sessions) as session:
        repo.add_job(session, job)
    return job.id


def load(sessions: sessionmaker[Session], job_id: str) -> Job:
    with transaction(sessions) as session:
        job = repo.get_job_by_id(session, job_id)
        assert job is not None
        return job


def claim(sessions: sessionmaker[Session], job_id: str, lease: timedelta = LEASE) -> int | None:
    with transaction(sessions) as session:
        return repo.claim_job(session, job_id, "w1", lease)


def test_a_job_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions)
    assert claim(sessions, job_id) == 1
    assert claim(sessions, job_id) is None  # a second delivery of the same message
    job = load(sessions, job_id)
    assert job.status == JobStatus.running
    assert job.attempt == 1
    assert job.lease_until is not None and job.lease_until > utcnow()
    assert claim(sessions, "job_unknown") is None


def test_writes_are_fenced_by_attempt(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions)
    claim(sessions, job_id, lease=timedelta(seconds=-1))  # already expired
    now = utcnow()
    with transaction(sessions) as session:
        (lease,) = repo.expired_leases(session, now)
        assert repo.requeue_expired(session, lease, now)
    assert claim(sessions, job_id) == 2

    with transaction(sessions) as session:  # the stale attempt 1 tries to write
        assert not repo.heartbeat(session, job_id, 1, LEASE)
        assert not repo.record_epoch(
            session, job_id, 1, history=[{"epoch": 1}], eta_seconds=1.0, lease=LEASE
        )
        stale = repo.JobOutcome(status=JobStatus.succeeded, history=[])
        assert not repo.finish_job(session, job_id, 1, stale)
        assert repo.heartbeat(session, job_id, 2, LEASE)
    assert load(sessions, job_id).status == JobStatus.running


def test_an_expired_lease_on_the_last_attempt_fails_worker_lost(
    sessions: sessionmaker[Session],
) -> None:
    job_id = add_job(sessions)
    claim(sessions, job_id, lease=timedelta(seconds=-1))
    now = utcnow()
    with transaction(sessions) as session:
        (lease,) = repo.expired_leases(session, now)
        assert repo.fail_expired(session, lease, now, "gone")
    job = load(sessions, job_id)
    assert (job.status, job.error_type) == (JobStatus.failed, JobErrorType.worker_lost)


def test_non_finite_history_is_stored_as_null(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions)
    attempt = claim(sessions, job_id)
    assert attempt == 1
    history = [{"epoch": 1, "loss": math.nan, "mae": math.inf, "val_loss": 0.5}]
    outcome = repo.JobOutcome(
        status=JobStatus.failed,
        history=history,
        error_type=JobErrorType.non_finite_loss,
        error_message="NaN",
    )
    with transaction(sessions) as session:
        assert repo.finish_job(session, job_id, attempt, outcome)
    job = load(sessions, job_id)
    assert job.history == [{"epoch": 1, "loss": None, "mae": None, "val_loss": 0.5}]
    assert job.error_type == JobErrorType.non_finite_loss
    assert job.lease_until is None and job.finished_at is not None


def test_list_is_newest_first_per_tenant_with_status_and_cursor(
    sessions: sessionmaker[Session],
) -> None:
    ids = [add_job(sessions) for _ in range(5)]
    add_job(sessions, tenant="other")
    claim(sessions, ids[1])
    with transaction(sessions) as session:
        first = repo.list_jobs(session, "default", status=None, limit=2, before_id=None)
        assert [j.id for j in first] == ids[::-1][:3]  # limit + 1 tells "has more"
        rest = repo.list_jobs(session, "default", status=None, limit=10, before_id=ids[3])
        assert [j.id for j in rest] == ids[:3][::-1]
        running = repo.list_jobs(
            session, "default", status=JobStatus.running, limit=10, before_id=None
        )
        assert [j.id for j in running] == [ids[1]]
        assert repo.get_job(session, "other", ids[0]) is None


def test_a_refused_send_keeps_a_queued_job_queued_and_counts_since_when(
    sessions: sessionmaker[Session],
) -> None:
    queued, running = add_job(sessions), add_job(sessions)
    claim(sessions, running)
    first, later = utcnow(), utcnow() + timedelta(minutes=5)
    with transaction(sessions) as session:
        assert repo.mark_unsent(session, queued, first, "refused", counted=False)
        assert repo.mark_unsent(session, queued, later, "refused", counted=False)
        assert not repo.mark_unsent(session, running, first, "refused", counted=False)
    job = load(sessions, queued)
    assert job.status == JobStatus.queued and job.error_type is None
    assert (job.unsent_since, job.last_sent_at, job.sends) == (first, later, 2)  # since the first
    with transaction(sessions) as session:
        assert repo.unsent_before(session, later) == [(queued, first)]
        assert repo.unsent_before(session, first) == []
        repo.mark_sent(session, queued, later)  # the broker is back
        assert repo.unsent_before(session, later + timedelta(days=1)) == []
    assert load(sessions, running).status == JobStatus.running


def test_a_cancel_racing_a_claim_is_not_lost(pg_url: str) -> None:
    """Read as queued, claimed by a worker before the cancel writes: the worker is asked to
    stop instead (PostgreSQL, where the API and workers write concurrently)."""
    from fitq.store.db import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(pg_url))
    job_id = add_job(sessions)
    with transaction(sessions) as api_side:
        seen = repo.get_job_by_id(api_side, job_id)
        assert seen is not None and seen.status == JobStatus.queued
        with transaction(sessions) as worker_side:
            assert repo.claim_job(worker_side, job_id, "w1", LEASE) == 1
        repo.cancel(api_side, job_id, seen.status)
    with transaction(sessions) as session:
        job = repo.get_job_by_id(session, job_id)
        assert job is not None
        assert (job.status, job.cancel_requested) == (JobStatus.running, True)
