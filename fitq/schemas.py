"""What the API returns for jobs: JobRead and the paged list. Shared by the API and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fitq.errors import JobErrorType
from fitq.spec import JobSpec, ModelSummary
from fitq.statuses import JobStatus

HistoryEpoch = dict[str, float | int | None]


class Progress(BaseModel):
    epoch: int = Field(description="Epochs completed.")
    epochs: int
    eta_seconds: float | None = None


class JobResult(BaseModel):
    test_loss: float | None = Field(None, description="None when the job had no test data.")
    test_metrics: dict[str, float | None] = Field(default_factory=dict)
    model_summary: ModelSummary
    train_seconds: float
    model_url: str | None = None
    execution: dict[str, Any] = Field(description="The execution settings fitq chose.")
    early_stopping: dict[str, Any] | None = Field(
        None, description="stopped_epoch, best_epoch (1-based), restored_best_weights."
    )
    environment: dict[str, Any] = Field(description="Device, backend and versions.")


class JobError(BaseModel):
    type: JobErrorType
    message: str


class JobRead(BaseModel):
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


class JobList(BaseModel):
    data: list[JobRead]
    has_more: bool
    next_after: str | None = Field(description="Pass as ?after= for the next page.")


class Health(BaseModel):
    status: str
