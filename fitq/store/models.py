"""SQLAlchemy 2 models. Every user-owned row carries ``tenant_id``; schema changes go through
Alembic (``fitq/store/migrations``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fitq.store.types import FiniteJSON, UTCDateTime, utcnow

# A column the API shows: read by the hot job poll (``fitq.store.statements.JOB_COLUMNS``).
SHOWN = {"shown": True}


class Base(DeclarativeBase):
    pass


class Job(Base):
    """A training job. Columns marked ``SHOWN`` are what its API document (``JobRead``) is
    made of: ``service/jobs/presenter.py:job_document`` reads those and no others."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=SHOWN)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), info=SHOWN)
    queue: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(FiniteJSON, info=SHOWN)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, info=SHOWN)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=SHOWN)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=SHOWN)

    # Claim and fencing: a worker's writes carry the attempt it claimed.
    attempt: Mapped[int] = mapped_column(Integer, default=0, info=SHOWN)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(255))
    # GPUs the claiming worker holds: GPU-seconds = gpus x seconds from started_at to the end.
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sends of the task message, for the sweeper's re-send backoff.
    sends: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when every send was refused (the broker is down); NULL once one went through.
    unsent_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    epoch: Mapped[int] = mapped_column(Integer, default=0, info=SHOWN)
    epochs: Mapped[int] = mapped_column(Integer, info=SHOWN)
    eta_seconds: Mapped[float | None] = mapped_column(Float, info=SHOWN)
    history: Mapped[list[dict[str, Any]]] = mapped_column(FiniteJSON, default=list, info=SHOWN)
    result: Mapped[dict[str, Any] | None] = mapped_column(FiniteJSON, info=SHOWN)
    error_type: Mapped[str | None] = mapped_column(String(32), info=SHOWN)
    error_message: Mapped[str | None] = mapped_column(Text, info=SHOWN)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, info=SHOWN)
    model_key: Mapped[str | None] = mapped_column(String(255), info=SHOWN)
    max_runtime_seconds: Mapped[float | None] = mapped_column(Float)
    # Epochs the last checkpoint holds (jobs/<id>/checkpoint.keras); a next attempt resumes there.
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)
    # Claims a draining worker handed back: they do not count as attempts (attempt stays
    # monotonic for fencing; attempts = attempt - handbacks).
    handbacks: Mapped[int] = mapped_column(Integer, default=0, info=SHOWN)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)  # the last event's seq
    # Why a cancelled job stopped: "requested" (a cancel through the API, a sweep's included)
    # or "pruned" (its sweep's pruner stopped it). NULL for every other status.
    cancel_reason: Mapped[str | None] = mapped_column(String(16), info=SHOWN)
    # A sweep's trial: the sweep, the trial's number (from 0) and the values its space drew.
    sweep_id: Mapped[str | None] = mapped_column(String(40), info=SHOWN)
    trial: Mapped[int | None] = mapped_column(Integer, info=SHOWN)
    trial_params: Mapped[dict[str, Any] | None] = mapped_column(FiniteJSON)
    # What Optuna's sampler and pruner recorded on the trial (its system attributes: the
    # grid point, the Hyperband rungs it passed), as Optuna's own storage would keep them.
    trial_system_attrs: Mapped[dict[str, Any] | None] = mapped_column(FiniteJSON)

    __table_args__ = (
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
        # A trial's number is taken once: two processes advancing a sweep cannot both add it.
        Index("ix_jobs_sweep_trial", "sweep_id", "trial", unique=True),
        Index("ix_jobs_tenant_status_id", "tenant_id", "status", "id"),
        Index("ix_jobs_status_lease", "status", "lease_until"),
        Index("ix_jobs_queue_status_id", "queue", "status", "id"),  # queue positions
    )


class Sweep(Base):
    """A hyperparameter sweep. Its trials are jobs (``jobs.sweep_id``): their rows are the
    truth of each trial's state and value, from which the search (Optuna) is replayed."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # The SweepCreate as accepted, its job the stored template (data stored, seed drawn).
    spec: Mapped[dict[str, Any]] = mapped_column(FiniteJSON)
    queue: Mapped[str] = mapped_column(String(32))
    trials: Mapped[int] = mapped_column(Integer, default=0)  # trials created: the next number
    # The sampler's random generators after its last draw (fitq.sweeps.study.SamplerState).
    sampler_state: Mapped[list[Any] | None] = mapped_column(FiniteJSON)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_sweeps_tenant_id_id", "tenant_id", "id"),
        Index("ix_sweeps_status", "status"),
    )


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # "inline" (from a job) or "upload"
    format: Mapped[str | None] = mapped_column(String(16))  # csv, npz, jsonl
    filename: Mapped[str | None] = mapped_column(String(255))
    options: Mapped[dict[str, Any] | None] = mapped_column(FiniteJSON)  # target, features
    source_key: Mapped[str | None] = mapped_column(String(255))  # the upload as received
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Claim and lease of the ingest task, and its sends, as for jobs.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    rows: Mapped[int | None] = mapped_column(BigInteger)
    x_shape: Mapped[list[int] | None] = mapped_column(FiniteJSON)
    y_shape: Mapped[list[int] | None] = mapped_column(FiniteJSON)
    x_dtype: Mapped[str | None] = mapped_column(String(16))
    y_dtype: Mapped[str | None] = mapped_column(String(16))
    feature_names: Mapped[list[str] | None] = mapped_column(FiniteJSON)
    target_names: Mapped[list[str] | None] = mapped_column(FiniteJSON)
    stats: Mapped[dict[str, Any] | None] = mapped_column(FiniteJSON)
    labels: Mapped[list[Any] | None] = mapped_column(FiniteJSON)  # class i was labels[i]
    x_key: Mapped[str | None] = mapped_column(String(255))
    y_key: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_datasets_tenant_id_id", "tenant_id", "id"),
        Index("ix_datasets_status_lease", "status", "lease_until"),
    )


class JobEvent(Base):
    """What happened to a job, in order: ``seq`` counts from 1 per job."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(16))  # status, epoch, checkpoint, log
    data: Mapped[dict[str, Any]] = mapped_column(FiniteJSON)

    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)


class IdempotencyKey(Base):
    """``Idempotency-Key`` of a job submission, per tenant, kept 24 hours."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An API key: a short public prefix and the SHA-256 of its secret (never the secret)."""

    __tablename__ = "api_keys"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # user, admin
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerBeat(Base):
    """A live Celery worker, as its parent process reports every few seconds: what the API
    reads for readiness and capacity (no broadcast ping)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # Celery's node name
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(255))  # comma-separated
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobCount(Base):
    """Jobs counted by kind, kept by triggers on ``jobs`` (PostgreSQL only, migration 0009):
    ``active`` — a tenant's queued + running jobs (``name``: the tenant), ``queued`` — a
    queue's queued jobs (``name``: the queue). A submission reads these instead of counting
    rows, which costs as many index entries as there are jobs waiting. Elsewhere (SQLite)
    the table does not exist and the counts are computed."""

    __tablename__ = "job_counts"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookEndpoint(Base):
    """Where a tenant's events are pushed. ``secret`` is the signing key as the
    ``standardwebhooks`` library takes it (``whsec_`` + base64): signing needs the key itself,
    so it cannot be kept hashed; the API returns it once, at creation."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(FiniteJSON)
    description: Mapped[str | None] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_webhook_endpoints_tenant_id_id", "tenant_id", "id"),)


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the transaction of the change it
    tells of, then sent until the endpoint answers 2xx or the retry window closes. Its id is
    the ``webhook-id`` header of every attempt (receivers deduplicate on it); ``payload`` is
    the body as signed, the same bytes on every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(40))  # the job or sweep
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the next attempt is due
    # A message for the due attempt went to the webhooks queue at sent_at; an attempt in
    # flight holds the delivery until lease_until.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_at", "status", "next_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )


class WebhookAttempt(Base):
    """One try of a delivery: the answer's status code, or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40))
    number: Mapped[int] = mapped_column(Integer)  # from 1
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),
    )
