"""Sweeps and their trials' jobs. API-side reads filter by tenant; ``lock_sweep`` is how the
one process advancing a sweep keeps others out until it commits."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fitq.statuses import SweepStatus
from fitq.store.models import IdempotencyKey, Job, JobEvent, Sweep
from fitq.store.repository._common import _newest_first
from fitq.store.types import utcnow


class TrialRow(NamedTuple):
    """What a trial's job tells of it (``fitq.sweeps.trials.trial_of`` reads these)."""

    number: int
    job_id: str
    params: dict[str, Any] | None
    status: str
    cancel_reason: str | None
    history: list[dict[str, Any]]
    system_attrs: dict[str, Any] | None


def add_sweep(session: Session, sweep: Sweep) -> None:
    session.add(sweep)


def get_sweep(session: Session, tenant_id: str, sweep_id: str) -> Sweep | None:
    return session.scalar(select(Sweep).where(Sweep.tenant_id == tenant_id, Sweep.id == sweep_id))


def lock_sweep(session: Session, sweep_id: str) -> Sweep | None:
    """The sweep, locked until the transaction ends. Call it first in its transaction: the
    update locks the row on PostgreSQL and takes SQLite's write lock before anything is
    read (a transaction that reads, then writes after another writer committed, fails on
    SQLite instead of waiting)."""
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(updated_at=utcnow()))
    return session.get(Sweep, sweep_id, populate_existing=True)


def list_sweeps(
    session: Session,
    tenant_id: str,
    *,
    status: SweepStatus | None,
    limit: int,
    before_id: str | None,
) -> list[Sweep]:
    return _newest_first(session, Sweep, tenant_id, status, limit, before_id)


def active_sweep_ids(session: Session) -> list[str]:
    active = (SweepStatus.queued, SweepStatus.running)
    return list(session.scalars(select(Sweep.id).where(Sweep.status.in_(active))))


def trial_rows(session: Session, sweep_ids: list[str]) -> dict[str, list[TrialRow]]:
    """Each sweep's trials, by number."""
    rows = session.execute(
        select(
            Job.sweep_id,
            Job.trial,
            Job.id,
            Job.trial_params,
            Job.status,
            Job.cancel_reason,
            Job.history,
            Job.trial_system_attrs,
        )
        .where(Job.sweep_id.in_(sweep_ids))
        .order_by(Job.sweep_id, Job.trial)
    )
    trials: dict[str, list[TrialRow]] = {sweep_id: [] for sweep_id in sweep_ids}
    for sweep_id, number, job_id, params, status, reason, history, attrs in rows:
        trials[sweep_id].append(
            TrialRow(number, job_id, params, status, reason, history or [], attrs)
        )
    return trials


def mark_sweep_running(session: Session, sweep_id: str) -> None:
    """A trial of the sweep started: a queued sweep is running (what lists filter on)."""
    session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.status == SweepStatus.queued)
        .values(status=SweepStatus.running)
    )


def set_trial_system_attrs(session: Session, job_id: str, attrs: dict[str, Any]) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(trial_system_attrs=attrs))


def delete_sweep(session: Session, sweep: Sweep) -> list[str]:
    """The sweep and its trials' jobs (all finished); the ids of the jobs deleted, whose
    files the caller deletes once this commits."""
    job_ids = list(session.scalars(select(Job.id).where(Job.sweep_id == sweep.id)))
    if job_ids:
        session.execute(delete(JobEvent).where(JobEvent.job_id.in_(job_ids)))
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.job_id.in_(job_ids)))
        session.execute(delete(Job).where(Job.id.in_(job_ids)))
    session.delete(sweep)
    return job_ids
