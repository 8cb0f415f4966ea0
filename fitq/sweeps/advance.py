"""A sweep moved on in the store. Whoever may have changed a sweep calls ``advance_sweep``:
the API when it accepts one, a worker when one of its trials ends, the API's sweeper on
every pass (after a restart, a lost message, a trial cancelled by hand). The sweep's row is
locked while its trials are read and new ones written, so the calls never race; each
trial's job is sent once the transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from fitq.errors import JobErrorType
from fitq.ids import JOB_PREFIX, new_id
from fitq.settings import Settings
from fitq.spec import JobSpec
from fitq.spec.sweep import SweepCreate, trial_job
from fitq.statuses import JobStatus, SweepStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Job, JobEvent, Sweep
from fitq.store.types import utcnow
from fitq.sweeps.document import sweep_document
from fitq.sweeps.study import should_prune, suggest
from fitq.sweeps.trials import Trial, TrialState, shown_status, trial_limit, trials_of
from fitq.webhooks.events import EventType

log = logging.getLogger(__name__)

# Sends a committed trial's job id to its queue: (job id, queue, max runtime in seconds).
SendTrain = Callable[[str, str, float], None]


@dataclass
class Advanced:
    created: list[tuple[str, str, float]] = field(default_factory=list)  # sent after commit
    status: SweepStatus | None = None  # the sweep's status after the step


def advance_sweep(
    sessions: sessionmaker[Session], settings: Settings, sweep_id: str, send: SendTrain
) -> Advanced:
    """One step: a cancel passed to the active trials, new trials up to ``parallelism`` (and
    the tenant's ``FITQ_MAX_ACTIVE_JOBS``), or the sweep finished once nothing is left to
    run. New trials' jobs are sent after the commit; one the broker refuses stays queued
    for the sweeper's re-send, as any job."""
    try:
        with transaction(sessions) as session:
            advanced = _advance(session, settings, sweep_id)
    except DrawFailed as exc:
        with transaction(sessions) as session:
            return _fail(session, sweep_id, str(exc))
    for job_id, queue, runtime in advanced.created:
        try:
            send(job_id, queue, runtime)
        except Exception as exc:  # the broker: the job is committed and queued
            log.warning(
                "sweep %s: trial job %s not sent (%s); re-sent later", sweep_id, job_id, exc
            )
    return advanced


def _advance(session: Session, settings: Settings, sweep_id: str) -> Advanced:
    sweep = repo.lock_sweep(session, sweep_id)
    if sweep is None or SweepStatus(sweep.status).finished:
        return Advanced()
    spec = SweepCreate.model_validate(sweep.spec)
    trials = trials_of(spec, repo.trial_rows(session, [sweep_id])[sweep_id])
    active = [t for t in trials if t.state.active]
    advanced = Advanced()
    if sweep.cancel_requested:
        for trial in active:
            seen = JobStatus.queued if trial.state == TrialState.queued else JobStatus.running
            repo.cancel(session, trial.job_id, seen)
        session.flush()
        still = trials_of(spec, repo.trial_rows(session, [sweep_id])[sweep_id])
        if not any(t.state.active for t in still):
            _finish(session, sweep, SweepStatus.cancelled)
        advanced.status = SweepStatus(sweep.status)
        return advanced
    room = min(spec.parallelism - len(active), trial_limit(spec) - sweep.trials)
    if room > 0:  # the tenant's quota counts trials as any job
        room = min(room, settings.max_active_jobs - repo.active_jobs(session, sweep.tenant_id))
    for _ in range(max(room, 0)):
        try:
            trial, runtime = _new_trial(session, settings, sweep, spec, trials)
        except Exception as exc:  # Optuna refused the space: no later step would do better
            log.exception("sweep %s: drawing trial %d failed", sweep_id, sweep.trials)
            raise DrawFailed(f"drawing trial values failed: {exc}") from exc
        trials.append(trial)
        if trial.state == TrialState.queued:
            active.append(trial)
            advanced.created.append((trial.job_id, sweep.queue, runtime))
    if active:
        status = shown_status(sweep.status, trials)
        if sweep.status != status:
            sweep.status = status.value
    elif sweep.trials >= trial_limit(spec):
        complete = any(t.state == TrialState.complete for t in trials)
        error = None if complete else "no trial completed: each failed, was pruned or cancelled"
        _finish(session, sweep, SweepStatus.succeeded if complete else SweepStatus.failed, error)
    advanced.status = SweepStatus(sweep.status)
    return advanced


class DrawFailed(Exception):
    """The sampler could not draw a trial's values: the step's writes are rolled back and
    the sweep fails with this message (its active trials run on)."""


def _fail(session: Session, sweep_id: str, message: str) -> Advanced:
    sweep = repo.lock_sweep(session, sweep_id)
    if sweep is None or SweepStatus(sweep.status).finished:
        return Advanced()
    _finish(session, sweep, SweepStatus.failed, message)
    return Advanced(status=SweepStatus.failed)


def _finish(session: Session, sweep: Sweep, status: SweepStatus, error: str | None = None) -> None:
    """The sweep ends, and its ``sweep.completed`` webhooks are written with the change."""
    sweep.status = status.value
    sweep.finished_at = utcnow()
    if error is not None:
        sweep.error_message = error

    def document() -> dict[str, Any]:
        return sweep_document(sweep, repo.trial_rows(session, [sweep.id])[sweep.id])

    repo.add_deliveries(session, sweep.tenant_id, EventType.sweep_completed, sweep.id, document)


def _new_trial(
    session: Session, settings: Settings, sweep: Sweep, spec: SweepCreate, trials: list[Trial]
) -> tuple[Trial, float]:
    """Trial ``sweep.trials``, its values drawn, its job written queued (or failed at once
    when those values make a job that does not validate); and the job's runtime limit."""
    number = sweep.trials
    params, attrs, sweep.sampler_state = suggest(
        sweep.id, spec, trials, number, sweep.sampler_state
    )
    sweep.trials = number + 1
    now = utcnow()
    job_id = new_id(JOB_PREFIX)
    body = trial_job(spec, params, number)
    trial_columns: dict[str, Any] = {
        "sweep_id": sweep.id,
        "trial": number,
        "trial_params": params,
        "trial_system_attrs": attrs,
    }
    try:
        job_spec = JobSpec.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = f"the trial's values {params} make an invalid job: {where}: {error['msg']}"
        row = repo.queued_job_row(
            job_id=job_id,
            tenant_id=sweep.tenant_id,
            queue=sweep.queue,
            spec=body,
            epochs=int(body.get("fit", {}).get("epochs") or 0),
            max_runtime_seconds=settings.max_runtime_seconds,
            now=now,
            **trial_columns,
        )
        row |= {
            "status": JobStatus.failed.value,
            "finished_at": now,
            "error_type": JobErrorType.invalid_trial.value,
            "error_message": message,
            "sends": 0,
            "last_sent_at": None,
        }
        session.add(Job(**row))
        session.add(JobEvent(**repo.first_event_row(row) | {"data": {"status": "failed"}}))
        session.flush()
        repo.job_ended(session, job_id)
        failed = Trial(number, job_id, params, TrialState.failed, None, system_attrs=attrs)
        return failed, 0.0
    cap = settings.max_runtime_seconds
    runtime = min(job_spec.fit.max_runtime_seconds or cap, cap)
    row = repo.queued_job_row(
        job_id=job_id,
        tenant_id=sweep.tenant_id,
        queue=sweep.queue,
        spec=job_spec.model_dump(mode="json"),
        epochs=job_spec.fit.epochs,
        max_runtime_seconds=runtime,
        now=now,
        **trial_columns,
    )
    session.add(Job(**row))
    session.add(JobEvent(**repo.first_event_row(row)))
    return Trial(number, job_id, params, TrialState.queued, None, system_attrs=attrs), runtime


class TrialPruning:
    """A running trial's pruner, asked after each epoch with the trial's history so far and
    the other trials as the store has them: ``trial.report`` + ``trial.should_prune()``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: str,
        sweep_id: str,
        spec: SweepCreate,
        number: int,
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._sweep_id = sweep_id
        self._spec = spec
        self._number = number

    @classmethod
    def of_job(
        cls,
        sessions: sessionmaker[Session],
        job_id: str,
        sweep_id: str | None,
        number: int | None,
    ) -> TrialPruning | None:
        """The job's pruning, or None when it is not a trial of a sweep with a pruner."""
        if sweep_id is None or number is None:
            return None
        with transaction(sessions) as session:
            sweep = session.get(Sweep, sweep_id)
            spec = SweepCreate.model_validate(sweep.spec) if sweep is not None else None
        if spec is None or spec.pruner == "none":
            return None
        return cls(sessions, job_id, sweep_id, spec, number)

    def should_prune(self, history: Sequence[dict[str, Any]]) -> bool:
        """The pruner's answer after the epochs of ``history``. What it recorded on the
        trial is stored for the next decisions (this trial's, and the others')."""
        with transaction(self._sessions) as session:
            sweep = session.get(Sweep, self._sweep_id)
            count = sweep.trials if sweep is not None else self._number + 1
            rows = repo.trial_rows(session, [self._sweep_id])[self._sweep_id]
        # This trial as it is now (its row may lag its last epoch by nothing or one write).
        rows = [
            r._replace(status=JobStatus.running.value, history=list(history))
            if r.number == self._number
            else r
            for r in rows
        ]
        before = next((r.system_attrs for r in rows if r.number == self._number), None)
        trials = trials_of(self._spec, rows)
        pruned, attrs = should_prune(self._sweep_id, self._spec, trials, count, self._number)
        if attrs != (before or {}):
            with transaction(self._sessions) as session:
                repo.set_trial_system_attrs(session, self._job_id, attrs)
        return pruned
