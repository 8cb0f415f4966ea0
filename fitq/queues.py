"""Task names, queue names and the Celery configuration shared by the API (producer) and the
worker (consumer). Plain data: importing this module imports no Celery."""

from __future__ import annotations

from typing import Any

from fitq.devices import CPU_QUEUE
from fitq.settings import Settings

TRAIN_TASK = "fitq.train"
# Training queues are named by GPUs per job (fitq.devices): "cpu", "gpu1", "gpu2", ...
TRAIN_QUEUE = CPU_QUEUE
# Parsing uploads runs on its own queue, so an upload is not stuck behind a long training job.
INGEST_TASK = "fitq.ingest_dataset"
DATASETS_QUEUE = "datasets"
# Predictions: a short request and reply (Celery's result backend carries the reply only).
PREDICT_TASK = "fitq.predict"
INFERENCE_QUEUE = "inference"
# Webhook deliveries: one HTTP request each, on a worker of their own (a thread pool), so a
# slow receiver holds up no upload or prediction.
WEBHOOK_TASK = "fitq.deliver_webhook"
WEBHOOKS_QUEUE = "webhooks"
WEBHOOK_THREADS = 8  # deliveries in flight at once per webhook worker


def hard_time_limit(settings: Settings, max_runtime: float | None) -> float:
    """Seconds after its start that a training task is killed (Celery's ``time_limit``) and
    its job counted as having run out of time: its runtime limit (the job's, or the
    default) plus a grace. The worker's own deadline stops it cleanly before then."""
    return (max_runtime or settings.max_runtime_seconds) + settings.time_limit_grace_seconds


def train_task_options(job_id: str, time_limit: float | None) -> dict[str, Any]:
    """The options of every ``fitq.train`` message, whoever sends it (the API, its Redis
    publisher, the sweeper, a worker handing a job back): the job's id as the only argument,
    Celery's hard time limit, no result, and the reprs Celery's saferepr would write
    (without its cost)."""
    return {
        "args": [job_id],
        "time_limit": time_limit,
        "ignore_result": True,
        "argsrepr": f"['{job_id}']",
        "kwargsrepr": "{}",
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.resolved_broker_url,
        # The job store is the truth: no result backend carries job state.
        "task_ignore_result": True,
        "task_default_queue": TRAIN_QUEUE,
        "task_routes": {
            TRAIN_TASK: {"queue": TRAIN_QUEUE},
            INGEST_TASK: {"queue": DATASETS_QUEUE},
            PREDICT_TASK: {"queue": INFERENCE_QUEUE},
            WEBHOOK_TASK: {"queue": WEBHOOKS_QUEUE},
        },
        "result_backend": result_backend(settings),
        "result_expires": 300,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Long jobs: ack after the task, take one message at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,  # the sweeper re-queues, with an attempt cap
        "worker_prefetch_multiplier": 1,
        # TensorFlow imports in each child after fork, before its first job.
        "worker_proc_alive_timeout": settings.worker_proc_alive_timeout,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        "broker_transport_options": {},
        # TensorFlow never gives GPU memory back: recycle the pool process instead.
        "worker_max_tasks_per_child": settings.worker_max_jobs,
        "worker_max_memory_per_child": (
            settings.worker_max_memory_mb * 1024 if settings.worker_max_memory_mb else None
        ),
    }
    if settings.uses_filesystem_broker:
        folder = str(settings.broker_dir)
        # kombu's filesystem transport with whole-message writes (fitq.embedded_broker).
        config["broker_transport"] = "fitq.embedded_broker:Transport"
        config["broker_transport_options"] = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_dir / "control"),
            "polling_interval": settings.broker_polling_interval,
        }
    else:
        config["broker_transport_options"] = {
            "socket_timeout": settings.send_timeout_seconds,
            "socket_connect_timeout": settings.send_timeout_seconds,
        }
    return config


def result_backend(settings: Settings) -> str:
    """Where prediction replies wait briefly: beside the broker (a folder, or the same Redis)."""
    url = settings.resolved_broker_url
    if settings.uses_filesystem_broker:
        return f"file://{settings.broker_dir / 'results'}"
    if url.startswith(("redis://", "rediss://")):
        return url
    return "rpc://"


def prepare_broker(settings: Settings) -> None:
    """The filesystem transport and result folder must exist before the first send or poll."""
    if settings.uses_filesystem_broker:
        (settings.broker_dir / "control").mkdir(parents=True, exist_ok=True)
        (settings.broker_dir / "results").mkdir(parents=True, exist_ok=True)
