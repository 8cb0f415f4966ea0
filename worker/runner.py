"""One job's life in a worker: claim (atomic, fenced by attempt), load data, train with
per-epoch progress and a heartbeat, store the model, write the outcome. Plain code with its
dependencies passed in, so tests drive it without Celery."""

from __future__ import annotations

import errno
import logging
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fitq import logs
from fitq.artifacts import ArtifactStore, checkpoint_key, model_key, tensorboard_key
from fitq.errors import JobErrorType
from fitq.settings import Settings
from fitq.spec import JobSpec, StoredData, summarize
from fitq.spec.job import ModelCheckpoint, TensorBoard
from fitq.statuses import CancelReason, JobStatus
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.sweeps.advance import SendTrain, TrialPruning, advance_sweep
from fitq.webhooks.delivery import send_due
from worker import checkpoints
from worker.backend import describe_environment, visible_gpus
from worker.metrics import job_metrics
from worker.training import (
    Arrays,
    Execution,
    HistoryEpoch,
    Resume,
    TrainingData,
    TrainingOutcome,
    TrainingStopped,
    prepare_data,
    save_model,
    train,
)
from worker.watch import JobWatch, StopReason
from worker.worker_error import StoreUnreachable, fail_with_worker_error

log = logging.getLogger(__name__)


class RunResult(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    handed_back = "handed_back"  # the worker is draining; the job waits for another
    duplicate = "duplicate"  # not queued when the message arrived: delivered twice, or late
    lost = "lost"  # the lease passed to another attempt while this one trained


class LeaseLost(Exception):
    pass


class DataError(Exception):
    pass


class TrialPruned(Exception):
    """The trial's sweep pruner stopped it at an epoch's end."""


def _classify(job_id: str, exc: Exception) -> tuple[JobErrorType, str]:
    """An unexpected error's job error type and the message the user reads."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        # Artifacts are written under temporary names: nothing half-written is left.
        return JobErrorType.training_error, f"the artifact store ran out of disk space ({exc})"
    log.exception("job %s failed", job_id)
    if type(exc).__name__ == "ResourceExhaustedError":
        return JobErrorType.out_of_memory, f"{type(exc).__name__}: {exc}"
    return JobErrorType.training_error, f"{type(exc).__name__}: {exc}"


@dataclass
class JobRunner:
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    settings: Settings
    worker_name: str
    # Sends a handed-back job's message again (Celery in the worker); None in tests.
    resend: Callable[[str, float | None], None] | None = None
    # Sends a sweep's new trial to its queue, once a trial of the sweep has ended here.
    send_trial: SendTrain | None = None
    # Sends a due webhook delivery's id (fitq.webhooks.delivery.send_due): a job that ended
    # here is told of at once, not at the API's next sweeper pass.
    send_webhook: Callable[[str], None] | None = None

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def run(self, job_id: str) -> RunResult:
        attempt = self._claim(job_id)
        if attempt is None:
            self._note_duplicate(job_id)
            return RunResult.duplicate
        try:
            return self._run_attempt(job_id, attempt)
        except Exception as exc:  # fitq's own failure around the training: say so on the job
            owned = fail_with_worker_error(self.sessions, job_id, attempt, exc)
            return RunResult.failed if owned else RunResult.lost

    def _note_duplicate(self, job_id: str) -> None:
        """Logged with the job's id and tenant, as every line about a job (a re-sent message
        that arrives after its first one was claimed: the sweeper's, on a slow start)."""
        with transaction(self.sessions) as session:
            row = repo.get_job_by_id(session, job_id)
            tenant = row.tenant_id if row is not None else None
        with logs.bound(job_id=job_id, tenant=tenant):
            log.info("job %s is not queued: message ignored (duplicate or late)", job_id)

    def _claim(self, job_id: str) -> int | None:
        """The claim, tried again while the store is unreachable (a restart, a failover) for
        up to a lease; then ``StoreUnreachable``."""
        deadline = time.monotonic() + self.settings.lease_seconds
        pause = 0.5
        while True:
            try:
                with transaction(self.sessions) as session:
                    return repo.claim_job(
                        session, job_id, self.worker_name, self._lease, gpus=visible_gpus()
                    )
            except OperationalError as exc:
                if time.monotonic() + pause > deadline:
                    raise StoreUnreachable(f"job {job_id}: the store did not answer") from exc
                log.warning("job %s: the store is unreachable (%s); claiming again", job_id, exc)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _run_attempt(self, job_id: str, attempt: int) -> RunResult:
        queue, epoch_before, tenant, sweep_id = self._note_start(job_id, attempt)
        started = time.perf_counter()
        with logs.bound(job_id=job_id, tenant=tenant):
            log.info("job %s claimed, attempt %d", job_id, attempt)
            result = self._run_claimed(job_id, attempt)
        ended = result not in (RunResult.lost, RunResult.handed_back)
        if ended:
            self.artifacts.delete(checkpoint_key(job_id))
        with transaction(self.sessions) as session:
            row = repo.get_job_by_id(session, job_id)
            epochs = (row.epoch if row is not None else epoch_before) - epoch_before
        job_metrics().ended(queue, result, time.perf_counter() - started, epochs)
        if ended and sweep_id is not None:
            self._advance_sweep(sweep_id)
        if ended:
            self._send_webhooks()
        return result

    def _send_webhooks(self) -> None:
        if self.send_webhook is None:
            return
        try:
            send_due(self.sessions, self.settings, self.send_webhook)
        except Exception:  # the sweeper's next pass sends them
            log.exception("sending due webhooks failed")

    def _note_start(self, job_id: str, attempt: int) -> tuple[str, int, str, str | None]:
        """The job's queue, epochs done before this attempt, tenant and sweep; records its
        queue wait."""
        with transaction(self.sessions) as session:
            row = repo.get_job_by_id(session, job_id)
            assert row is not None
            queue, epoch, created, started = row.queue, row.epoch, row.created_at, row.started_at
            tenant, sweep_id = row.tenant_id, row.sweep_id
        if sweep_id is not None:  # a write of its own: SQLite fails a read turned write
            with transaction(self.sessions) as session:
                repo.mark_sweep_running(session, sweep_id)
        waited = (started - created).total_seconds() if attempt == 1 and started else None
        job_metrics().started(queue, waited)
        return queue, epoch, tenant, sweep_id

    def _advance_sweep(self, sweep_id: str) -> None:
        """A trial ended here: its sweep's next trials start now, not at the API's next
        sweeper pass (which would do the same, later)."""
        if self.send_trial is None:
            return
        try:
            advance_sweep(self.sessions, self.settings, sweep_id, self.send_trial)
        except Exception:  # the sweeper's next pass advances it
            log.exception("sweep %s: advancing after a trial failed", sweep_id)

    def _run_claimed(self, job_id: str, attempt: int) -> RunResult:
        with transaction(self.sessions) as session:
            row = repo.get_job_by_id(session, job_id)
            assert row is not None
            spec = JobSpec.model_validate(row.spec)
            max_runtime = row.max_runtime_seconds
            sweep_id, trial = row.sweep_id, row.trial
            resume = self._resume_point(job_id, row.history)
            if resume is not None:
                done = len(resume.history)
                repo.add_event(session, job_id, "checkpoint", {"resumed_from_epoch": done})
                log.info("job %s resumes from its checkpoint after epoch %d", job_id, done)

        history: list[HistoryEpoch] = list(resume.history) if resume else []
        pruning = TrialPruning.of_job(self.sessions, job_id, sweep_id, trial)
        watch = JobWatch(
            lambda: self._beat(job_id, attempt),
            lambda: self._control(job_id, attempt),
            poll_seconds=self.settings.cancel_poll_seconds,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            max_runtime_seconds=max_runtime,
        )
        # A directory for the files some callbacks write (TensorBoard's logs, the model
        # ModelCheckpoint saves), only for the jobs that have them.
        files: AbstractContextManager[str | None] = (
            tempfile.TemporaryDirectory(prefix="fitq-job-")
            if spec.fit.callback(TensorBoard) or spec.fit.callback(ModelCheckpoint)
            else nullcontext()
        )
        try:
            data = self._load_data(spec)
            with files as work_dir:
                job_dir = Path(work_dir) if work_dir is not None else None
                with watch:
                    outcome = self._train(
                        job_id, attempt, spec, data, history, watch, resume, job_dir, pruning
                    )
                return self._finish_trained(job_id, attempt, spec, outcome)
        except TrainingStopped as stop:
            if stop.reason == StopReason.drain:
                return self._hand_back(job_id, attempt, history, max_runtime)
            return self._stopped(job_id, attempt, history, StopReason(stop.reason), max_runtime)
        except LeaseLost:
            log.warning(
                "job %s attempt %d lost its lease; stopping without writing", job_id, attempt
            )
            return RunResult.lost
        except TrialPruned:
            return self._cancelled(job_id, attempt, history, CancelReason.pruned)
        except DataError as exc:
            return self._fail(job_id, attempt, history, JobErrorType.data_error, str(exc))
        except MemoryError as exc:
            return self._fail(job_id, attempt, history, JobErrorType.out_of_memory, repr(exc))
        except Exception as exc:
            return self._fail(job_id, attempt, history, *_classify(job_id, exc))

    # ---- steps ---------------------------------------------------------------------------

    def _load_data(self, spec: JobSpec) -> TrainingData:
        def load(stored: StoredData | None) -> Arrays | None:
            if stored is None:
                return None
            with transaction(self.sessions) as session:
                dataset = repo.get_dataset_by_id(session, stored.dataset_id)
            if dataset is None or dataset.x_key is None or dataset.y_key is None:
                raise DataError(f"dataset {stored.dataset_id} is missing from the store")
            try:
                # Memory maps: the training code reads them into memory or streams batches.
                return Arrays(
                    self.artifacts.load_array(dataset.x_key, mmap=True),
                    self.artifacts.load_array(dataset.y_key, mmap=True),
                    x_groups=stored.x_groups,
                    y_groups=stored.y_groups,
                    sample_weight=stored.sample_weight,
                )
            except (OSError, ValueError) as exc:
                raise DataError(f"dataset {stored.dataset_id} could not be read: {exc}") from exc

        train_arrays = load(spec.data.train)
        assert train_arrays is not None
        return prepare_data(
            train_arrays,
            load(spec.data.validation),
            load(spec.data.test),
            test_split=spec.data.test_split,
            shuffle_before_split=spec.data.shuffle_before_split,
            seed=spec.seed,
        )

    def _beat(self, job_id: str, attempt: int) -> bool:
        with transaction(self.sessions) as session:
            return repo.heartbeat(session, job_id, attempt, self._lease)

    def _resume_point(self, job_id: str, history: list[HistoryEpoch]) -> Resume | None:
        """The job's checkpoint, with the epoch it holds read from the file itself (a crash
        between saving it and recording it leaves the row one checkpoint behind)."""
        key = checkpoint_key(job_id)
        if not self.artifacts.exists(key):
            return None
        path = self.artifacts.local_path(key)
        state = checkpoints.read_state(path)
        if state is None or len(history) < state.epoch:  # not one to resume from exactly
            return None
        return Resume(path=path, state=state, history=list(history[: state.epoch]))

    def _source_model(self, spec: JobSpec) -> Path | None:
        """A fine-tuning job's source model, local (None for other jobs)."""
        source = spec.model.from_job
        if source is None:
            return None
        key = model_key(source)
        if not self.artifacts.exists(key):
            raise DataError(
                f"the model of job {source}, which this job fine-tunes, is no longer stored "
                "(the job was deleted or expired)"
            )
        return self.artifacts.local_path(key)

    def _checkpoint(
        self, job_id: str, attempt: int, write: Callable[[Path], None], epoch: int
    ) -> None:
        """Saved under a temporary name and renamed: a crash mid-save keeps the last one."""
        with self.artifacts.staged(checkpoint_key(job_id)) as path:
            write(path)
        with transaction(self.sessions) as session:
            owned = repo.record_checkpoint(session, job_id, attempt, epoch)
        if not owned:
            raise LeaseLost(job_id)

    def _hand_back(
        self, job_id: str, attempt: int, history: list[HistoryEpoch], max_runtime: float | None
    ) -> RunResult:
        """Training stopped at an epoch's end with that epoch checkpointed: return the job to
        the queue without counting an attempt, and re-send it."""
        with transaction(self.sessions) as session:
            owned = repo.hand_back(session, job_id, attempt, len(history))
        if not owned:
            return RunResult.lost
        log.info("job %s handed back after %d epochs: the worker is draining", job_id, len(history))
        if self.resend is not None:
            self.resend(job_id, max_runtime)
        return RunResult.handed_back

    def _control(self, job_id: str, attempt: int) -> repo.JobControl:
        with transaction(self.sessions) as session:
            return repo.job_control(session, job_id, attempt)

    def _stopped(
        self,
        job_id: str,
        attempt: int,
        history: list[HistoryEpoch],
        reason: StopReason,
        max_runtime: float | None,
    ) -> RunResult:
        if reason == StopReason.lease_lost:
            log.warning(
                "job %s attempt %d lost its lease; stopping without writing", job_id, attempt
            )
            return RunResult.lost
        if reason == StopReason.max_runtime:
            message = f"the job ran past its limit of {max_runtime:g} s and was stopped"
            return self._fail(job_id, attempt, history, JobErrorType.max_runtime_exceeded, message)
        return self._cancelled(job_id, attempt, history, CancelReason.requested)

    def _cancelled(
        self, job_id: str, attempt: int, history: list[HistoryEpoch], reason: CancelReason
    ) -> RunResult:
        """Stopped before its end, its history kept: at the user's request, or pruned."""
        outcome = repo.JobOutcome(status=JobStatus.cancelled, history=history, cancel_reason=reason)
        with transaction(self.sessions) as session:
            owned = repo.finish_job(session, job_id, attempt, outcome)
        log.info("job %s cancelled (%s) after %d epochs", job_id, reason, len(history))
        return RunResult.cancelled if owned else RunResult.lost

    def _train(
        self,
        job_id: str,
        attempt: int,
        spec: JobSpec,
        data: TrainingData,
        history: list[HistoryEpoch],
        watch: JobWatch,
        resume: Resume | None,
        job_dir: Path | None,
        pruning: TrialPruning | None = None,
    ) -> TrainingOutcome:
        started = time.monotonic()
        resumed = len(resume.history) if resume else 0

        def on_epoch(epochs_done: list[HistoryEpoch]) -> None:
            history[:] = epochs_done
            done = len(epochs_done)
            per_epoch = (time.monotonic() - started) / max(done - resumed, 1)
            eta = per_epoch * (spec.fit.epochs - done)
            with transaction(self.sessions) as session:
                owned = repo.record_epoch(
                    session,
                    job_id,
                    attempt,
                    history=epochs_done,
                    eta_seconds=eta,
                    lease=self._lease,
                )
            if not owned:
                raise LeaseLost(job_id)
            if pruning is not None and pruning.should_prune(epochs_done):
                raise TrialPruned(job_id)

        tensorboard_dir = saved_model = None
        if job_dir is not None and spec.fit.callback(TensorBoard) is not None:
            tensorboard_dir = job_dir / "tensorboard"
        if job_dir is not None and spec.fit.callback(ModelCheckpoint) is not None:
            saved_model = job_dir / "model.keras"
        execution = Execution(
            standardize=spec.data.standardize,
            label_encoding=spec.data.label_encoding,
            in_memory_bytes=self.settings.in_memory_bytes,
            should_stop=watch.check,
            draining=watch.draining,
            checkpoint=lambda write, epoch: self._checkpoint(job_id, attempt, write, epoch),
            checkpoint_seconds=self.settings.checkpoint_seconds,
            resume=resume,
            base_model=self._source_model(spec),
            tensorboard_dir=tensorboard_dir,
            model_checkpoint_path=saved_model,
        )
        outcome = train(
            spec.model,
            spec.compile,
            spec.fit,
            data,
            spec.seed,
            on_epoch=on_epoch,
            execution=execution,
        )
        if tensorboard_dir is not None:  # training ended normally: keep its logs
            self._store_logs(job_id, tensorboard_dir)
        return outcome

    def _store_logs(self, job_id: str, logs_dir: Path) -> None:
        """The TensorBoard log directory as one .tar.gz (its event files under ``train/``
        and ``validation/``), which ``tensorboard --logdir`` reads once unpacked."""
        with self.artifacts.staged(tensorboard_key(job_id)) as path:
            with tarfile.open(path, "w:gz") as archive:
                archive.add(logs_dir, arcname=job_id)

    def _finish_trained(
        self, job_id: str, attempt: int, spec: JobSpec, outcome: TrainingOutcome
    ) -> RunResult:
        has_test = spec.data.test is not None or bool(spec.data.test_split)
        test_failed = has_test and outcome.test_loss is None
        if outcome.non_finite or test_failed:
            where = "the test loss" if test_failed and not outcome.non_finite else "the loss"
            epoch = len(outcome.history)
            message = f"{where} became NaN or infinite (epoch {epoch}); training stopped"
            return self._fail(
                job_id, attempt, outcome.history, JobErrorType.non_finite_loss, message
            )

        key = model_key(job_id)
        if outcome.saved_model is not None:  # ModelCheckpoint's file is the job's model
            self.artifacts.put_file(key, outcome.saved_model)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                save_model(outcome.model, path, spec.fit)
                self.artifacts.put_file(key, path)
        result: dict[str, Any] = {
            "test_loss": outcome.test_loss,
            "test_metrics": outcome.test_metrics,
            "model_summary": summarize(spec.model, standardize=spec.data.standardize).model_dump(),
            "labels": spec.data.label_encoding.labels if spec.data.label_encoding else None,
            "train_seconds": outcome.train_seconds,
            "execution": outcome.execution,
            "early_stopping": outcome.early_stopping,
            "model_checkpoint": outcome.model_checkpoint,
            "tensorboard_url": (
                f"/v1/jobs/{job_id}/tensorboard"
                if spec.fit.callback(TensorBoard) is not None
                else None
            ),
            "environment": describe_environment(),
        }
        done = repo.JobOutcome(
            status=JobStatus.succeeded, history=outcome.history, result=result, model_key=key
        )
        with transaction(self.sessions) as session:
            owned = repo.finish_job(session, job_id, attempt, done)
        if not owned:
            log.warning("job %s attempt %d finished after losing its lease", job_id, attempt)
            return RunResult.lost
        log.info("job %s succeeded in %.2fs", job_id, outcome.train_seconds)
        return RunResult.succeeded

    def _fail(
        self,
        job_id: str,
        attempt: int,
        history: list[HistoryEpoch],
        error_type: JobErrorType,
        message: str,
    ) -> RunResult:
        outcome = repo.JobOutcome(
            status=JobStatus.failed, history=history, error_type=error_type, error_message=message
        )
        with transaction(self.sessions) as session:
            owned = repo.finish_job(session, job_id, attempt, outcome)
        log.info("job %s failed (%s): %s", job_id, error_type, message)
        return RunResult.failed if owned else RunResult.lost
