"""Graceful drain: when a worker is asked to stop (SIGTERM, a rolling deploy), its running job
is checkpointed at the next batch and handed back to the queue instead of being lost or
waited for. Celery's parent process gets the SIGTERM; it tells its pool children with SIGUSR2,
which sets a flag the job watcher reads."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

DRAIN_SIGNAL = signal.SIGUSR2
requested = threading.Event()


def _on_drain(signum: int, frame: FrameType | None) -> None:
    requested.set()


def install_child_handler() -> None:
    """In a pool child: SIGUSR2 means 'hand your job back'."""
    signal.signal(DRAIN_SIGNAL, _on_drain)


def signal_children() -> None:
    """In the parent: tell every pool child to drain (Linux: children listed by /proc)."""
    pid = os.getpid()
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    children = listing.read_text().split() if listing.exists() else []
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), DRAIN_SIGNAL)
    log.info("drain: asked %d pool children to hand their jobs back", len(children))
