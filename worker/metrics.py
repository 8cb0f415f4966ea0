"""Worker metrics for Prometheus. Pool children record them (prometheus_client's multiprocess
mode: one file per process under ``FITQ_DATA_DIR/metrics/<host>-<parent pid>``); the Celery parent
serves the sum on ``FITQ_WORKER_METRICS_PORT`` when it is set.

``prepare_multiprocess_dir`` must run before anything imports prometheus_client, which picks
its storage at import: ``worker.celery_app`` calls it first thing."""

from __future__ import annotations

import os
import shutil
import socket
from functools import cache
from pathlib import Path
from typing import Any

from fitq.settings import Settings

_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def prepare_multiprocess_dir(settings: Settings) -> Path:
    """A fresh metrics folder for this worker, inherited by its pool children."""
    if _ENV in os.environ:
        return Path(os.environ[_ENV])
    # The host too: containers sharing one data volume each number their processes from 1.
    folder = settings.data_dir / "metrics" / f"{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[_ENV] = str(folder)
    return folder


def serve(port: int) -> None:
    """The parent's /metrics: every child's files, summed."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, registry=registry)


class JobMetrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.duration = Histogram(
            "fitq_job_duration_seconds",
            "Wall time of a job attempt on this worker, by queue and how it ended.",
            ["queue", "result"],
            buckets=DURATION_BUCKETS,
        )
        self.queue_wait = Histogram(
            "fitq_job_queue_wait_seconds",
            "From submit to a job's first start.",
            ["queue"],
            buckets=DURATION_BUCKETS,
        )
        self.epochs = Counter("fitq_epochs_trained", "Epochs trained.", ["queue"])

    def started(self, queue: str, waited: float | None) -> None:
        if waited is not None:
            self.queue_wait.labels(queue).observe(max(waited, 0.0))

    def ended(self, queue: str, result: Any, seconds: float, epochs: int) -> None:
        self.duration.labels(queue, getattr(result, "value", str(result))).observe(seconds)
        if epochs > 0:
            self.epochs.labels(queue).inc(epochs)


@cache
def job_metrics() -> JobMetrics:
    return JobMetrics()
