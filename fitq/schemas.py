"""What the API returns: jobs (JobRead and the paged list), datasets and sweeps. Shared by
the API and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, Strict, field_validator

from fitq.errors import JobErrorType
from fitq.schema_docs import Documented
from fitq.spec import JobSpec, ModelSummary
from fitq.spec.base import SpecModel
from fitq.spec.sweep import SweepCreate
from fitq.statuses import CancelReason, DatasetStatus, JobStatus, SweepStatus
from fitq.sweeps.trials import TrialState
from fitq.webhooks.events import EventType

HistoryEpoch = dict[str, float | int | None]


class Progress(Documented):
    """How far a job is: epochs done, epochs asked for, estimated time left, and its place
    in the queue."""

    epoch: int = Field(description="Epochs completed.")
    epochs: int
    eta_seconds: float | None = None
    queue_position: int | None = Field(
        None, description="While queued: 1 for the next job its queue hands out."
    )


class JobResult(Documented):
    """What a succeeded job produced: test loss and metrics, model summary, timings, and
    where its model is."""

    test_loss: float | None = Field(None, description="None when the job had no test data.")
    test_metrics: dict[str, float | None] = Field(default_factory=dict)
    model_summary: ModelSummary
    train_seconds: float
    model_url: str | None = None
    tensorboard_url: str | None = Field(
        None, description="The TensorBoard logs (.tar.gz), for jobs with that callback."
    )
    execution: dict[str, Any] = Field(description="The execution settings fitq chose.")
    labels: list[Any] | None = Field(
        None, description="Class i of the model's output is labels[i] (encoded targets)."
    )
    early_stopping: dict[str, Any] | None = Field(
        None, description="stopped_epoch, best_epoch (1-based), restored_best_weights."
    )
    model_checkpoint: dict[str, Any] | None = Field(
        None,
        description="A ModelCheckpoint callback's: monitor, saved_epoch (1-based: the epoch "
        "whose model is the job's model), best (its monitor value, with save_best_only).",
    )
    environment: dict[str, Any] = Field(description="Device, backend and versions.")


class JobError(Documented):
    """Why a job failed: the kind of failure and a message."""

    type: JobErrorType
    message: str


class JobRead(Documented):
    """A job: its spec, status, progress, per-epoch history, and result or error."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: JobSpec
    progress: Progress
    history: list[HistoryEpoch]
    result: JobResult | None
    error: JobError | None
    attempts: int
    cancel_requested: bool
    cancel_reason: CancelReason | None = Field(
        None,
        description="Why a cancelled job stopped: 'requested' (a cancel through the API, its "
        "sweep's included) or 'pruned' (its sweep's pruner stopped it; its history is kept).",
    )
    sweep_id: str | None = Field(None, description="The sweep this job is a trial of.")
    trial: int | None = Field(None, description="The trial's number in its sweep, from 0.")


class JobList(Documented):
    """A page of jobs, newest first."""

    data: list[JobRead]
    has_more: bool
    next_after: str | None = Field(description="Pass as ?after= for the next page.")


class Health(Documented):
    """The process answers."""

    status: str


class Readiness(Health):
    """Whether the process can serve: its store and broker answer."""

    workers: dict[str, int] | None = Field(
        None, description="Live worker processes per queue, from their heartbeat rows."
    )


class ColumnStats(Documented):
    """Statistics of one column of an uploaded dataset."""

    name: str
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    missing: int


class DatasetError(Documented):
    """Why a dataset failed to ingest."""

    message: str


class DatasetRead(Documented):
    """A dataset as stored: its status, shapes, column names and statistics."""

    id: str
    status: DatasetStatus
    created_at: datetime
    finished_at: datetime | None
    source: str = Field(description="'upload', or 'inline' for arrays posted with a job.")
    format: str | None
    filename: str | None
    rows: int | None
    x_shape: list[int] | None
    y_shape: list[int] | None
    x_dtype: str | None
    y_dtype: str | None
    feature_names: list[str] | None
    target_names: list[str] | None
    columns: list[ColumnStats] | None = Field(
        None, description="Per feature column (at most 1,024): min, max, mean, std, missing."
    )
    target_columns: list[ColumnStats] | None = None
    labels: list[str] | None = Field(
        None, description="A categorical target's labels: class i in y was labels[i]."
    )
    size_bytes: int
    error: DatasetError | None


class DatasetList(Documented):
    """A page of datasets, newest first."""

    data: list[DatasetRead]
    has_more: bool
    next_after: str | None


class JobEventRead(Documented):
    """One thing that happened to a job (queued, started, epoch, checkpoint, finished, …)."""

    seq: int = Field(description="Per job, from 1.")
    time: datetime
    type: str = Field(description="status, epoch, checkpoint or log.")
    data: dict[str, Any]


class EventList(Documented):
    """A page of a job's events, oldest first."""

    data: list[JobEventRead]
    has_more: bool


class PredictResponse(Documented):
    """The model's predictions, one per row."""

    y: list[Any] | dict[str, list[Any]] = Field(
        description="The model's outputs, one per input row; for a model of several outputs, "
        "an object of them keyed by the Keras output names."
    )
    labels: list[Any] | None = Field(
        None, description="Output class i is labels[i], for jobs whose targets were encoded."
    )


class UsageItem(Documented):
    """An amount used, against its limit."""

    used: int
    limit: int


class UsageAmount(Documented):
    """An amount used (no limit set)."""

    used: float
    limit: float | None = Field(description="None: no cap.")


class Usage(Documented):
    """The caller's use of its quotas and its limits."""

    tenant: str
    active_jobs: UsageItem = Field(description="Queued + running jobs.")
    gpu_seconds_per_day: UsageAmount = Field(
        description="GPU-seconds the tenant's jobs held in the last 24 hours."
    )
    dataset_bytes: UsageItem = Field(description="Bytes of stored datasets, inline ones included.")
    sample_epochs_per_job: int = Field(description="The per-job cap on training rows x epochs.")
    batch_size_per_job: int = Field(description="The per-job cap on fit.batch_size.")
    sequence_length_per_job: int = Field(description="Steps into a sequence layer, per job.")
    parameters_per_job: int


class TenantUsage(Documented):
    """One tenant's use of its quotas."""

    tenant: str
    jobs: dict[str, int] = Field(description="Jobs by status.")
    active_jobs: int
    dataset_bytes: int
    gpu_seconds_per_day: float


class TenantList(Documented):
    """Every tenant's usage (admins only)."""

    data: list[TenantUsage]


class TrialRead(Documented):
    """One trial of a sweep: the values it drew, its job, its state and objective value."""

    number: int = Field(description="The trial's number in its sweep, from 0.")
    job_id: str = Field(description="The trial's job: GET /v1/jobs/{job_id} for its history.")
    params: dict[str, Any] = Field(description="The value each path of the space drew.")
    state: TrialState = Field(
        description="queued or running (its job's status), complete (succeeded), pruned "
        "(stopped by the pruner), failed, or cancelled."
    )
    value: float | None = Field(
        description="The objective at the trial's last epoch; complete trials only."
    )
    epochs: int = Field(description="Epochs the trial trained.")


class BestTrial(Documented):
    """The complete trial with the best objective value."""

    number: int = Field(description="The trial's number in its sweep, from 0.")
    job_id: str = Field(description="The trial's job, whose model and history are the best's.")
    params: dict[str, Any] = Field(description="The value each path of the space drew.")
    value: float = Field(description="The objective at the trial's last epoch.")


class SweepRead(Documented):
    """A sweep: its status, every trial so far, the best one and counts by state."""

    id: str
    status: SweepStatus
    created_at: datetime
    finished_at: datetime | None
    spec: SweepCreate = Field(
        description="The sweep as accepted: its job as stored (data stored, seed drawn), "
        "which each trial's values are set into."
    )
    trials: list[TrialRead]
    best: BestTrial | None = Field(description="None until a trial completes.")
    counts: dict[str, int] = Field(description="Trials by state, every state listed.")
    max_trials: int = Field(description="Trials the sweep runs (fewer when its grid is smaller).")
    cancel_requested: bool
    error: str | None = Field(None, description="Why a failed sweep failed.")


class SweepList(Documented):
    """A page of sweeps, newest first."""

    data: list[SweepRead]
    has_more: bool
    next_after: str | None = Field(description="Pass as ?after= for the next page.")


MAX_WEBHOOK_URL = 2048


class WebhookCreate(SpecModel):
    """``POST /v1/webhooks``: where to push which events."""

    url: str = Field(
        min_length=1,
        max_length=MAX_WEBHOOK_URL,
        description="Where events are POSTed: https (http only where the service allows "
        "it); never a loopback, private, link-local or metadata address.",
    )
    events: list[Annotated[EventType, Strict(False)]] = Field(
        min_length=1,
        max_length=len(EventType),
        description="The events to send: job.succeeded, job.failed, job.cancelled, "
        "sweep.completed (a sweep ended, whatever its status).",
    )
    description: str | None = Field(None, max_length=255, description="A note for you.")

    @field_validator("events")
    @classmethod
    def _once_each(cls, events: list[EventType]) -> list[EventType]:
        repeated = sorted({e.value for e in events if events.count(e) > 1})
        if repeated:
            raise ValueError(f"expected each event once, received {repeated[0]!r} twice")
        return events


class WebhookRead(Documented):
    """A webhook endpoint (its secret is shown once, when it is created)."""

    id: str
    url: str = Field(description="Where events are POSTed.")
    events: list[EventType] = Field(description="The events sent to it.")
    description: str | None = Field(description="Your note, as given.")
    created_at: datetime


class WebhookCreated(WebhookRead):
    """A new webhook endpoint, with the secret its deliveries are signed with."""

    secret: str = Field(
        description="The signing secret (whsec_…), shown this once: verify each delivery "
        "with it (fitq.verify_webhook, or any Standard Webhooks library)."
    )


class WebhookList(Documented):
    """A page of webhook endpoints, newest first."""

    data: list[WebhookRead]
    has_more: bool
    next_after: str | None = Field(description="Pass as ?after= for the next page.")


class WebhookAttemptRead(Documented):
    """One try of a delivery."""

    number: int = Field(description="The attempt's number, from 1.")
    at: datetime = Field(description="When it was sent (its webhook-timestamp).")
    status_code: int | None = Field(description="The receiver's answer; None when none came.")
    error: str | None = Field(description="Why it failed: the answer, a timeout, a refusal.")
    duration_ms: float = Field(description="Milliseconds until the answer or the failure.")


class WebhookDeliveryRead(Documented):
    """One event sent to one endpoint, with every attempt so far."""

    id: str = Field(
        description="The webhook-id header of every attempt: the same on retries, so a "
        "receiver can skip one it has seen."
    )
    event_type: str = Field(description="job.succeeded, …, or webhook.test.")
    subject_id: str | None = Field(description="The job or sweep the event tells of.")
    status: str = Field(
        description="pending (to be tried, or tried again at next_attempt_at), delivered "
        "(answered 2xx) or failed (no 2xx within the retry window)."
    )
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    finished_at: datetime | None = Field(description="When it was delivered, or given up.")
    attempts: list[WebhookAttemptRead]
    payload: dict[str, Any] = Field(description="The body as signed and sent.")


class WebhookDeliveryList(Documented):
    """A page of an endpoint's deliveries, newest first."""

    data: list[WebhookDeliveryRead]
    has_more: bool
    next_after: str | None = Field(description="Pass as ?after= for the next page.")
