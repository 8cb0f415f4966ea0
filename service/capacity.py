"""What the live workers can serve, from their heartbeat rows: readiness reports it, job
routing picks a queue by it, and the sweeper fails jobs no live worker will ever take."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from fitq.devices import gpu_queue, queue_for
from fitq.liveness import live_since
from fitq.settings import Settings
from fitq.store import repository as repo


def queues_served(queue_lists: Iterable[str]) -> Counter[str]:
    """Worker processes per queue, from each worker's comma-separated queues."""
    counts: Counter[str] = Counter()
    for queues in queue_lists:
        counts.update(q for q in queues.split(",") if q)
    return counts


def live_queues(session: Session, settings: Settings, now: datetime | None = None) -> Counter[str]:
    """Live worker processes per queue they consume."""
    return queues_served(w.queues for w in repo.live_workers(session, live_since(settings, now)))


def training_queue(gpus: int | None, live: Counter[str]) -> str:
    """The queue of a job asking for ``gpus`` GPUs; unset: one GPU where a live worker
    serves ``gpu1`` (``live``: what ``queues_served`` counts), else the CPU queue."""
    if gpus is None:
        gpus = 1 if live[gpu_queue(1)] else 0
    return queue_for(gpus)
