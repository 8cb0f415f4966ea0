"""When a worker counts as live: its last heartbeat row is younger than a few intervals."""

from __future__ import annotations

from datetime import datetime, timedelta

from fitq.settings import Settings
from fitq.store.types import utcnow

MISSED_BEATS = 3


def live_since(settings: Settings, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(seconds=MISSED_BEATS * settings.worker_heartbeat_seconds)
