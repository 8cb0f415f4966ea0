"""Watching a running job from a background thread: it renews the job's lease, reads the
user's cancel request a few times a second and notes a lost lease; the training loop checks
``reason`` at every batch and stops there (a flag read, no I/O on the hot path). A drain is
read at each epoch's end instead (``draining``): the job is handed back from there, so the
next attempt resumes exactly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from fitq.store.repository import JobControl
from worker import drain

log = logging.getLogger(__name__)


class StopReason(StrEnum):
    cancelled = "cancelled"
    max_runtime = "max_runtime"
    lease_lost = "lease_lost"
    drain = "drain"  # the worker is shutting down: checkpoint at the epoch's end, hand back


class JobWatch:
    def __init__(
        self,
        renew: Callable[[], bool],
        control: Callable[[], JobControl],
        *,
        poll_seconds: float,
        heartbeat_seconds: float,
        max_runtime_seconds: float | None,
    ) -> None:
        self._renew = renew
        self._control = control
        self._poll = poll_seconds
        self._heartbeat = heartbeat_seconds
        self.started = time.monotonic()
        self.deadline = self.started + max_runtime_seconds if max_runtime_seconds else None
        self.reason: StopReason | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fitq-job-watch", daemon=True)

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._heartbeat + 5)

    def check(self) -> StopReason | None:
        """Called at every batch: the watcher's finding, or the deadline passing."""
        if self.reason is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.reason = StopReason.max_runtime
        return self.reason

    def draining(self) -> bool:
        """Called at each epoch's end: the worker is shutting down."""
        return drain.requested.is_set()

    def _run(self) -> None:
        last_renewal = time.monotonic()
        while not self._stop.wait(self._poll):
            try:
                if time.monotonic() - last_renewal >= self._heartbeat:
                    last_renewal = time.monotonic()
                    if not self._renew():
                        self.reason = StopReason.lease_lost
                        return
                control = self._control()
                if not control.owned:
                    self.reason = StopReason.lease_lost
                    return
                if control.cancel_requested and self.reason is None:
                    self.reason = StopReason.cancelled
            except Exception:  # a store hiccup: try again; the lease says when it is too late
                log.exception("watching the job failed")
