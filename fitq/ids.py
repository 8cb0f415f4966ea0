"""Prefixed, time-ordered ids (``job_…``, ``ds_…``): a ULID body (48-bit milliseconds + 80 random
bits, Crockford base32), so sorting ids sorts by creation time and cursors need nothing else."""

from __future__ import annotations

import re
import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

JOB_PREFIX = "job_"
DATASET_PREFIX = "ds_"
SWEEP_PREFIX = "swp_"
WEBHOOK_PREFIX = "wh_"
# A delivery's id is its events' webhook-id header: the "msg_" of the Standard Webhooks examples.
DELIVERY_PREFIX = "msg_"


_lock = threading.Lock()
_last = 0  # the last value this process issued


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """Monotonic within a process (ULID's monotonic mode): within one millisecond the random
    part counts up, so ids issued one after another sort in issue order."""
    global _last
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        value = (ms << 80) | secrets.randbits(80)
        if value >> 80 <= _last >> 80:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))


def is_valid_id(value: str, prefix: str) -> bool:
    """Whether ``value`` is a well-formed id of this kind (malformed ids answer 404, never 500)."""
    return value.startswith(prefix) and bool(_BODY.match(value[len(prefix) :]))
