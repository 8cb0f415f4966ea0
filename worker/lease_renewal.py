"""A background thread that renews a lease while long work holds it (an upload being
ingested), so work longer than the lease is not mistaken for a dead worker; it notices when
the lease is no longer ours. (A training job's lease is renewed by ``worker.watch``.)"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class LeaseRenewal:
    def __init__(self, beat: Callable[[], bool], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fitq-lease-renewal", daemon=True)

    def __enter__(self) -> LeaseRenewal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._beat():
                    self.lost.set()
                    return
            except Exception:  # a store hiccup: keep trying until the lease says otherwise
                log.exception("heartbeat failed")
