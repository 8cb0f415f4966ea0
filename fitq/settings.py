"""Every setting of fitq, in one pydantic-settings class (env prefix ``FITQ_``).

Embedded defaults live under ``FITQ_DATA_DIR``: a SQLite job store, kombu's filesystem
transport and a local artifact directory, so one laptop runs everything with no services.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITQ_", extra="ignore")

    data_dir: Path = Field(Path(".fitq"), description="Root of every embedded default.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file.")
    broker_url: str | None = Field(None, description="Celery broker; default filesystem.")
    artifacts_dir: Path | None = Field(None, description="Artifact store root directory.")
    artifacts_url: str | None = Field(
        None,
        pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$",
        description="s3://bucket/prefix: artifacts in S3-compatible storage instead.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, a test server); default: AWS."
    )

    log_format: Literal["text", "json"] = Field(
        "text", description="json: one object per line with job id, dataset id and tenant."
    )
    default_tenant: str = Field("default", description="The tenant of every request, auth off.")
    auth: Literal["on", "off"] = Field(
        "on", description="API keys required. `fitq serve` on loopback sets off unless told on."
    )
    max_attempts: int = Field(3, ge=1, description="Claims of one job before worker_lost.")
    lease_seconds: float = Field(60.0, gt=0, description="A running job's lease per heartbeat.")
    heartbeat_seconds: float = Field(5.0, gt=0, description="Worker heartbeat interval.")
    worker_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a worker process writes its heartbeat row."
    )
    no_capacity_seconds: float = Field(
        600.0, gt=0, description="Fail a job queued this long on a queue no live worker serves."
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve a worker's Prometheus metrics here (fitq worker: +1 per process).",
    )
    worker_max_jobs: int | None = Field(
        None, ge=1, description="Recycle a worker's pool process after this many jobs."
    )
    worker_max_memory_mb: int | None = Field(
        None, ge=1, description="Recycle a pool process once its memory passes this (MiB)."
    )
    checkpoint_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "The longest a running job goes between checkpoints (sooner while 5 % of its "
            "time or an epoch is more, as long as saving costs under 3 %)."
        ),
    )
    cancel_poll_seconds: float = Field(
        0.25, gt=0, description="How often a worker reads its running job's cancel flag."
    )
    max_runtime_seconds: float = Field(
        86_400.0, gt=0, description="Server-wide cap on one job's training time."
    )
    time_limit_grace_seconds: float = Field(
        60.0, ge=0, description="Celery's hard time_limit is the runtime limit plus this."
    )
    sweep_interval_seconds: float = Field(5.0, gt=0, description="Sweeper period.")
    sweeper_enabled: bool = True
    resend_after_seconds: float = Field(
        60.0, gt=0, description="Re-send a queued job nobody claimed after this (doubling)."
    )
    max_unsent_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description=(
            "A queued job whose every send the broker refused for this long fails "
            "broker_unavailable; until then it stays queued and is re-sent with backoff."
        ),
    )
    broker_polling_interval: float = Field(0.05, gt=0, description="Filesystem transport poll.")
    send_timeout_seconds: float = Field(5.0, gt=0, description="Give up sending a task after.")
    worker_proc_alive_timeout: float = Field(
        120.0, gt=0, description="Seconds a Celery child may take to import TensorFlow."
    )
    max_inline_rows: int = Field(100_000, ge=1, description="Rows of inline data per array.")
    max_params: int = Field(50_000_000, ge=1, description="Parameter budget of one model.")
    max_activation_bytes: int = Field(
        8 * 2**30,
        ge=1,
        description=(
            "Estimated activations of one training batch (every layer's output, forward and "
            "backward): 422 beyond, naming the largest layer."
        ),
    )
    predict_timeout_seconds: float = Field(30.0, gt=0, description="Wait for a prediction.")
    max_predict_rows: int = Field(10_000, ge=1, description="Rows of one predict request.")
    model_cache_size: int = Field(8, ge=1, description="Models an inference worker keeps.")
    model_retention_days: float | None = Field(
        None, gt=0, description="Delete a finished job's model this long after; unset: keep."
    )
    dataset_retention_days: float | None = Field(
        None, gt=0, description="Delete unused datasets this long after upload; unset: keep."
    )
    max_active_jobs: int = Field(
        100, ge=1, description="Queued + running jobs per tenant (429 beyond)."
    )
    max_gpu_seconds_per_day: float | None = Field(
        None, gt=0, description="GPU-seconds per tenant in any 24 h (429 beyond); unset: no cap."
    )
    max_dataset_bytes: int = Field(
        50 * 2**30, ge=1, description="Stored dataset bytes per tenant (403 beyond)."
    )
    max_sample_epochs: int = Field(
        10**10, ge=1, description="Per job: training rows x epochs (422 beyond)."
    )
    max_batch_size: int = Field(65_536, ge=1, description="Per job: fit.batch_size (422 beyond).")
    max_sequence_length: int = Field(
        10_000, ge=1, description="Per job: steps into a sequence layer (422 beyond)."
    )
    max_request_bytes: int = Field(
        64 * 2**20,
        ge=1,
        description="Any other request body (413 beyond); uploads have their own.",
    )
    max_json_depth: int = Field(32, ge=2, description="Nesting of a JSON body (422 beyond).")
    max_json_items: int = Field(
        100_000, ge=1, description="Items in one JSON array or object (422 beyond)."
    )
    max_json_containers: int = Field(
        1_000_000,
        ge=2,
        description="Arrays and objects in one JSON body, all told (422 beyond).",
    )
    max_upload_bytes: int = Field(5 * 2**30, ge=1, description="Largest dataset upload (413).")
    max_columns: int = Field(
        10_000, ge=1, description="Columns of an uploaded CSV or JSON lines file (fails beyond)."
    )
    max_header_bytes: int = Field(
        64 * 2**10,
        ge=1024,
        description="A request's line and headers together, at most (431, connection closed).",
    )
    header_seconds: float = Field(
        30.0,
        gt=0,
        description="A request's line and headers must arrive within this (408).",
    )
    body_idle_seconds: float = Field(
        30.0,
        gt=0,
        description="A request body that sends nothing for this long is cut off (408).",
    )
    in_memory_bytes: int = Field(
        2 * 2**30, ge=0, description="Train from arrays in memory up to this; stream above it."
    )
    webhook_allow_http: bool = Field(
        False, description="Webhook URLs may be plain http as well as https."
    )
    webhook_allow_loopback: bool = Field(
        False, description="Webhook URLs may name loopback addresses and use plain http."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="A webhook attempt's limit: connect, send and answer."
    )
    webhook_retry_seconds: float = Field(
        5.0, gt=0, description="Wait before a webhook's second attempt; doubles after each."
    )
    webhook_retry_max_seconds: float = Field(
        3600.0, gt=0, description="The longest wait between two attempts of a webhook."
    )
    webhook_retry_window_seconds: float = Field(
        86400.0, gt=0, description="A webhook is retried until this long after its event."
    )

    @field_validator("data_dir", "artifacts_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Resolved once, so child processes and relative working directories agree.
        return value.expanduser().resolve() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'fitq.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def cache_dir(self) -> Path:
        """Where a host keeps local copies of remote artifacts (memory-mapped datasets)."""
        return self.data_dir / "cache"

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"

    def child_env(self) -> dict[str, str]:
        """The environment that pins child processes to these exact settings."""
        env = {
            "FITQ_DATA_DIR": str(self.data_dir),
            "FITQ_DATABASE_URL": self.resolved_database_url,
            "FITQ_BROKER_URL": self.resolved_broker_url,
            "FITQ_ARTIFACTS_DIR": str(self.resolved_artifacts_dir),
        }
        if self.artifacts_url:
            env["FITQ_ARTIFACTS_URL"] = self.artifacts_url
        if self.s3_endpoint_url:
            env["FITQ_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        return env


@lru_cache
def get_settings() -> Settings:
    return Settings()
