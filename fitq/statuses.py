"""Job and dataset statuses."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's state: queued, running, then succeeded, failed or cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
# What counts against a tenant's FITQ_MAX_ACTIVE_JOBS: every status not finished. Migration
# 0009's triggers keep the same count in SQL (tests/fitq/test_job_counts.py holds them equal).
ACTIVE = frozenset(JobStatus) - FINISHED


class CancelReason(StrEnum):
    """Why a cancelled job stopped: a cancel through the API (a sweep's cancel included), or
    its sweep's pruner."""

    requested = "requested"
    pruned = "pruned"


class SweepStatus(StrEnum):
    """A sweep's state: queued until a trial starts, running, then succeeded (a trial
    completed), failed (none did) or cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (SweepStatus.queued, SweepStatus.running)


class DatasetStatus(StrEnum):
    """A dataset's state: processing (ingesting), ready, or failed."""

    processing = "processing"
    ready = "ready"
    failed = "failed"
