"""Every query of the job store, one module per domain, all reachable as ``repo.<name>``
(``from fitq.store import repository as repo``). Functions take a Session and never commit: the
caller's unit of work (``fitq.store.db.transaction``) does.

API-side reads filter by ``tenant_id``. Worker-side writes address a job by id and are fenced
by the attempt the worker claimed, so a redelivered message or a stale worker never overwrites
a newer attempt."""

from __future__ import annotations

from fitq.store.repository.datasets import (
    active_job_ids_using,
    add_dataset,
    claim_dataset,
    delete_dataset,
    fail_stalled_dataset,
    finish_dataset,
    get_dataset,
    get_dataset_by_id,
    list_datasets,
    mark_dataset_sent,
    release_dataset_lease,
    renew_dataset_lease,
    stalled_datasets,
)
from fitq.store.repository.events import (
    add_event,
    list_events,
)
from fitq.store.repository.jobs import (
    add_idempotency_key,
    add_job,
    cancel,
    cancel_queued,
    delete_idempotency_key,
    delete_job,
    fail_queued,
    fail_unsent,
    get_idempotency_key,
    get_job,
    jobs_ahead,
    list_jobs,
    mark_sent,
    queue_position,
    queued_before,
    request_cancel,
)
from fitq.store.repository.keys import (
    add_api_key,
    list_api_keys,
    revoke_api_key,
)
from fitq.store.repository.retention import (
    expired_datasets,
    expired_models,
)
from fitq.store.repository.runs import (
    JobControl,
    JobOutcome,
    claim_job,
    finish_job,
    get_job_by_id,
    hand_back,
    heartbeat,
    job_control,
    record_checkpoint,
    record_epoch,
)
from fitq.store.repository.sweeper import (
    ExpiredLease,
    QueuedJob,
    expired_leases,
    fail_expired,
    requeue_expired,
    unclaimed_jobs,
)
from fitq.store.repository.usage import (
    active_jobs,
    dataset_bytes,
    datasets_by_status,
    gpu_seconds_since,
    jobs_by_status,
    queued_by_queue,
    tenant_ids,
)
from fitq.store.repository.workers import (
    beat_worker,
    live_workers,
    prune_workers,
    remove_worker,
)

__all__ = [
    "ExpiredLease",
    "JobControl",
    "JobOutcome",
    "QueuedJob",
    "active_job_ids_using",
    "active_jobs",
    "add_api_key",
    "add_dataset",
    "add_event",
    "add_idempotency_key",
    "add_job",
    "beat_worker",
    "cancel",
    "cancel_queued",
    "claim_dataset",
    "claim_job",
    "dataset_bytes",
    "datasets_by_status",
    "delete_dataset",
    "delete_idempotency_key",
    "delete_job",
    "expired_datasets",
    "expired_leases",
    "expired_models",
    "fail_expired",
    "fail_queued",
    "fail_stalled_dataset",
    "fail_unsent",
    "finish_dataset",
    "finish_job",
    "get_dataset",
    "get_dataset_by_id",
    "get_idempotency_key",
    "get_job",
    "get_job_by_id",
    "gpu_seconds_since",
    "hand_back",
    "heartbeat",
    "job_control",
    "jobs_ahead",
    "jobs_by_status",
    "list_api_keys",
    "list_datasets",
    "list_events",
    "list_jobs",
    "live_workers",
    "mark_dataset_sent",
    "mark_sent",
    "prune_workers",
    "queue_position",
    "queued_before",
    "queued_by_queue",
    "record_checkpoint",
    "record_epoch",
    "release_dataset_lease",
    "remove_worker",
    "renew_dataset_lease",
    "request_cancel",
    "requeue_expired",
    "revoke_api_key",
    "stalled_datasets",
    "tenant_ids",
    "unclaimed_jobs",
]
