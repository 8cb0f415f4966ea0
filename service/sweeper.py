"""The sweeper: no job stays queued or running forever.

- A running job whose lease expired (its worker died or hung) goes back to queued and is
  re-sent, or fails ``worker_lost`` once it has used ``FITQ_MAX_ATTEMPTS`` attempts.
- A queued job nobody claimed is re-sent, with a doubling interval (messages can be lost: the
  filesystem transport deletes a message on delivery; a duplicate is harmless, claims dedupe).
- A job whose send the broker refused stays queued and is re-sent on the same backoff (its
  message may well have survived: Redis keeps its lists); it fails ``broker_unavailable``
  only after ``FITQ_MAX_UNSENT_SECONDS`` (hours) of refused sends.
- A job queued ``FITQ_NO_CAPACITY_SECONDS`` on a queue no live worker serves (no heartbeat
  row names it) fails ``no_capacity`` instead of waiting forever.
- A hyperparameter sweep not finished is advanced (``fitq.sweeps.advance``): the worker
  that ends a trial does so at once; this pass covers a worker that died first, a trial
  cancelled by hand, a tenant's quota that has room again.
- Webhook deliveries whose attempt is due (a retry's time came, or a message was lost) go
  onto the webhooks queue (``fitq.webhooks.delivery.send_due``).
- Dataset files no row points at (the API killed between writing a job's inline arrays or an
  upload and committing its row) are deleted once untouched for ``ORPHAN_GRACE``; the
  thread looks for them at its first pass and then every ``ORPHAN_SWEEP_INTERVAL``.

Every step is a conditional update, so several API processes may sweep at once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fitq.artifacts import DATASETS_PREFIX, checkpoint_key, dataset_prefix
from fitq.errors import JobErrorType
from fitq.queues import hard_time_limit
from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from service.capacity import live_queues
from service.context import ServiceContext
from service.datasets.service import send_ingest
from service.jobs.sending import resend_job
from service.sweeps.service import advance_active_sweeps
from service.webhooks.service import send_webhooks

log = logging.getLogger(__name__)

MAX_RESEND_INTERVAL = timedelta(hours=1)
# A submission commits its row seconds after writing its files, and an upload in progress
# keeps touching its file: an hour untouched without a row is an orphan.
ORPHAN_GRACE = timedelta(hours=1)
ORPHAN_SWEEP_INTERVAL = timedelta(hours=1)  # it lists every dataset in the artifact store
# Webhook deliveries delivered or failed are kept this long for GET .../deliveries.
DELIVERIES_KEPT = timedelta(days=30)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    datasets_resent: list[str] = field(default_factory=list)
    datasets_failed: list[str] = field(default_factory=list)
    no_capacity: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # failed: the broker refused too long
    models_deleted: list[str] = field(default_factory=list)
    deliveries_deleted: int = 0
    datasets_deleted: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)  # dataset ids without a row


def resend_due(
    sends: int, last_sent_at: datetime | None, created_at: datetime, now: datetime, base: timedelta
) -> bool:
    """Due ``base`` after the last send (or creation), doubling with each send."""
    interval = min(base * 2 ** max(sends - 1, 0), MAX_RESEND_INTERVAL)
    return (last_sent_at or created_at) + interval <= now


def _ran_out_of_time(lease: repo.ExpiredLease, now: datetime, settings: Settings) -> bool:
    """Past the limit Celery kills the task at: no retry would finish either."""
    if lease.started_at is None:
        return False
    limit = hard_time_limit(settings, lease.max_runtime_seconds)
    return now > lease.started_at + timedelta(seconds=limit)


def sweep_once(
    ctx: ServiceContext, now: datetime | None = None, orphans: bool = False
) -> SweepReport:
    """One pass; ``orphans``: also look for dataset files without a row (a listing of the
    whole artifact store, so the thread asks for it hourly)."""
    now = now or utcnow()
    report = SweepReport()
    max_attempts = ctx.settings.max_attempts

    with transaction(ctx.sessions) as session:
        expired = repo.expired_leases(session, now)
    for lease in expired:
        with transaction(ctx.sessions) as session:
            if _ran_out_of_time(lease, now, ctx.settings):
                # Celery's hard time limit killed it (or it hung): no retry would finish either.
                message = f"the job ran past its limit of {lease.max_runtime_seconds:g} s"
                if repo.fail_expired(
                    session, lease, now, message, JobErrorType.max_runtime_exceeded
                ):
                    report.lost.append(lease.id)
                    ctx.artifacts.delete(checkpoint_key(lease.id))
                continue
            used = lease.attempt - lease.handbacks
            if used >= max_attempts:
                message = (
                    f"the worker stopped responding during attempt {used} of {max_attempts}; "
                    "no attempts left"
                )
                if repo.fail_expired(session, lease, now, message):
                    report.lost.append(lease.id)
                    ctx.artifacts.delete(checkpoint_key(lease.id))
                continue
            requeued = repo.requeue_expired(session, lease, now)
        if requeued:
            log.warning("job %s: lease of attempt %d expired; re-queued", lease.id, lease.attempt)
            report.requeued.append(lease.id)
            resend_job(ctx, lease.id, lease.queue, lease.max_runtime_seconds)

    _fail_without_capacity(ctx, now, report)
    _fail_unsent_too_long(ctx, now, report)
    base = timedelta(seconds=ctx.settings.resend_after_seconds)
    with transaction(ctx.sessions) as session:
        queued = repo.unclaimed_jobs(session)
    for job in queued:
        due = resend_due(job.sends, job.last_sent_at, job.created_at, now, base)
        if job.id in report.requeued or not due:
            continue
        log.info("job %s still queued after %d sends; re-sending", job.id, job.sends)
        if resend_job(ctx, job.id, job.queue, job.max_runtime_seconds):
            report.resent.append(job.id)
    _sweep_datasets(ctx, now, base, report)
    advance_active_sweeps(ctx)
    send_webhooks(ctx)  # now, not the pass's start: this pass's failures are due too
    _apply_retention(ctx, now, report)
    if orphans:
        _delete_orphan_datasets(ctx, now, report)
    return report


def _delete_orphan_datasets(ctx: ServiceContext, now: datetime, report: SweepReport) -> None:
    untouched = [
        name
        for name, changed in ctx.artifacts.children(DATASETS_PREFIX).items()
        if changed < now - ORPHAN_GRACE
    ]
    with transaction(ctx.sessions) as session:
        known = repo.known_dataset_ids(session, untouched)
    for dataset_id in sorted(set(untouched) - known):
        log.warning("dataset files %s have no row (a submission that never committed)", dataset_id)
        ctx.artifacts.delete_prefix(dataset_prefix(dataset_id))
        report.orphans_deleted.append(dataset_id)


def _fail_without_capacity(ctx: ServiceContext, now: datetime, report: SweepReport) -> None:
    wait = ctx.settings.no_capacity_seconds
    with transaction(ctx.sessions) as session:
        waiting = repo.queued_before(session, now - timedelta(seconds=wait))
        if not waiting:
            return
        served = live_queues(session, ctx.settings, now)
        repo.prune_workers(session, now - timedelta(hours=1))
    unserved = [
        (
            job_id,
            f"no live worker serves queue {queue!r} (waited {wait:g} s); start one with "
            f"`fitq worker` or submit with other resources",
        )
        for job_id, queue in waiting
        if not served[queue]
    ]
    report.no_capacity += _fail_queued(ctx, unserved, JobErrorType.no_capacity)


def _fail_unsent_too_long(ctx: ServiceContext, now: datetime, report: SweepReport) -> None:
    limit = ctx.settings.max_unsent_seconds
    with transaction(ctx.sessions) as session:
        unsent = repo.unsent_before(session, now - timedelta(seconds=limit))
    refused = [
        (
            job_id,
            f"the broker refused every send of this job since {since.isoformat()} (more than "
            f"{limit:g} s, FITQ_MAX_UNSENT_SECONDS); submit it again once the broker is back",
        )
        for job_id, since in unsent
    ]
    report.unsent += _fail_queued(ctx, refused, JobErrorType.broker_unavailable)


def _fail_queued(
    ctx: ServiceContext, jobs: list[tuple[str, str]], error: JobErrorType
) -> list[str]:
    """Fail each (job, message) still queued, a transaction each; the ids it failed."""
    failed = []
    for job_id, message in jobs:
        with transaction(ctx.sessions) as session:
            if repo.fail_queued(session, job_id, error, message):
                log.warning("job %s: %s", job_id, message)
                failed.append(job_id)
    return failed


def _apply_retention(ctx: ServiceContext, now: datetime, report: SweepReport) -> None:
    """Models and datasets past their retention go (rows of jobs stay, with their results);
    so do webhook deliveries finished ``DELIVERIES_KEPT`` ago."""
    settings = ctx.settings
    with transaction(ctx.sessions) as session:
        report.deliveries_deleted = repo.delete_finished_deliveries(session, now - DELIVERIES_KEPT)
    if settings.model_retention_days:
        before = now - timedelta(days=settings.model_retention_days)
        with transaction(ctx.sessions) as session:
            for job in repo.expired_models(session, before):
                key, job.model_key = job.model_key, None
                repo.add_event(session, job.id, "log", {"message": "model deleted (retention)"})
                report.models_deleted.append(job.id)
                if key:
                    ctx.artifacts.delete(key)
    if settings.dataset_retention_days:
        before = now - timedelta(days=settings.dataset_retention_days)
        with transaction(ctx.sessions) as session:
            for dataset in repo.expired_datasets(session, before):
                if repo.active_job_ids_using(session, dataset.tenant_id, dataset.id):
                    continue  # a queued or running job still needs it
                repo.delete_dataset(session, dataset)
                report.datasets_deleted.append(dataset.id)
        for dataset_id in report.datasets_deleted:
            ctx.artifacts.delete_prefix(dataset_prefix(dataset_id))


def _sweep_datasets(
    ctx: ServiceContext, now: datetime, base: timedelta, report: SweepReport
) -> None:
    """An upload whose ingest died (lease expired) or whose message was lost is sent again,
    until its attempts run out."""
    with transaction(ctx.sessions) as session:
        stalled = repo.stalled_datasets(session, now)
    for dataset in stalled:
        if dataset.lease_until is None:  # never claimed: wait for the message, then re-send
            if not resend_due(dataset.sends, dataset.last_sent_at, dataset.created_at, now, base):
                continue
        elif dataset.attempt >= ctx.settings.max_attempts:
            message = (
                f"the ingest worker stopped responding during attempt {dataset.attempt} of "
                f"{ctx.settings.max_attempts}; upload the file again"
            )
            with transaction(ctx.sessions) as session:
                if repo.fail_stalled_dataset(session, dataset, message):
                    report.datasets_failed.append(dataset.id)
            continue
        else:
            with transaction(ctx.sessions) as session:
                if not repo.release_dataset_lease(session, dataset, now):
                    continue
        log.info("dataset %s still processing; re-sending its ingest", dataset.id)
        if send_ingest(ctx, dataset.id):
            report.datasets_resent.append(dataset.id)


class SweeperThread:
    """Runs ``sweep_once`` every ``FITQ_SWEEP_INTERVAL_SECONDS`` in the API process."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fitq-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        orphans_due = utcnow()
        while not self._stop.wait(self._ctx.settings.sweep_interval_seconds):
            now = utcnow()
            try:
                sweep_once(self._ctx, now, orphans=now >= orphans_due)
            except Exception:  # the store or broker is down: try again next period
                log.exception("sweep failed")
                continue
            if now >= orphans_due:
                orphans_due = now + ORPHAN_SWEEP_INTERVAL
