"""Structural limits on JSON bodies, checked on the raw bytes before they are parsed.

A body within the size limit can still be hostile: ``[[[[…]]]]`` 100,000 levels deep makes a
recursive parser fail, one array of millions of items makes every later loop slow, and
millions of small arrays (``[0],[0],…``: 15 M in 60 MB) cost the parser gigabytes of Python
objects. All three are measured here with NumPy over the body's punctuation (strings
removed first), so the check costs a few C passes over the bytes and no Python object per
value."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# A JSON string, escapes included; possessive and with an optional closing quote, so an
# unterminated string consumes the rest in one linear pass instead of failing at every quote.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_PUNCTUATION = b"[]{},"
_NOT_PUNCTUATION = bytes(b for b in range(256) if b not in _PUNCTUATION)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE = np.zeros(256, dtype=np.int8)
_CLOSE[[ord("]"), ord("}")]] = 1
_CHUNK = 1 << 20
_MAX_COUNTED_DEPTH = 32767


@dataclass(frozen=True)
class JsonShape:
    depth: int  # deepest nesting of arrays and objects; 0 for a scalar
    widest: int  # most items in one array or members in one object (an empty one counts 1)
    containers: int  # arrays and objects in all


class JsonTooDeep(ValueError):
    def __init__(self, limit: int, depth: int) -> None:
        # Depths are counted in int16: deeper ones read as its maximum.
        received = f"{depth:,}" if depth < _MAX_COUNTED_DEPTH else f"over {depth - 1:,}"
        super().__init__(
            f"expected JSON nested at most {limit} levels deep, received {received} levels "
            "(FITQ_MAX_JSON_DEPTH)"
        )


class JsonTooWide(ValueError):
    def __init__(self, limit: int, widest: int) -> None:
        super().__init__(
            f"expected JSON arrays and objects of at most {limit:,} items, received one with "
            f"{widest:,} (FITQ_MAX_JSON_ITEMS); send larger data as a dataset (POST /v1/datasets)"
        )


class JsonTooManyContainers(ValueError):
    def __init__(self, limit: int, containers: int) -> None:
        super().__init__(
            f"expected at most {limit:,} arrays and objects in one JSON body, received "
            f"{containers:,} (FITQ_MAX_JSON_CONTAINERS); send larger data as a dataset "
            "(POST /v1/datasets, a .npz)"
        )


def measure(
    body: bytes, max_depth: int | None = None, max_containers: int | None = None
) -> JsonShape:
    """Depth, widest container and count of containers of a JSON document. Malformed JSON
    gets some answer; the parser that runs next reports it. With ``max_depth`` or
    ``max_containers``, raises ``JsonTooDeep`` or ``JsonTooManyContainers`` as soon as it is
    known, before the width pass."""
    tokens = _STRING.sub(b'""', body).translate(None, _NOT_PUNCTUATION)
    containers = tokens.count(b"[") + tokens.count(b"{")
    if max_containers is not None and containers > max_containers:
        raise JsonTooManyContainers(max_containers, containers)
    codes = np.frombuffer(tokens, dtype=np.uint8)
    depth_after = _depth_after(codes)
    depth = int(depth_after.max(initial=0))
    if max_depth is not None and depth > max_depth:
        raise JsonTooDeep(max_depth, depth)
    widest = _widest(codes, depth_after, depth)
    return JsonShape(depth=depth, widest=widest, containers=containers)


def check(body: bytes, max_depth: int, max_items: int, max_containers: int) -> None:
    """Raise ``JsonTooDeep``, ``JsonTooWide`` or ``JsonTooManyContainers`` when ``body``
    breaks a limit."""
    brackets = body.count(b"[") + body.count(b"{")  # an upper bound: strings may hold some
    if body.count(b",") < max_items and brackets <= min(max_depth, max_containers):
        return  # cannot break any limit: skip the passes
    shape = measure(body, max_depth, max_containers)
    if shape.widest > max_items:
        raise JsonTooWide(max_items, shape.widest)


def _depth_after(codes: np.ndarray) -> np.ndarray:
    """Nesting depth after each token, clamped to int16 (deeper is refused anyway), computed
    a chunk at a time so a hostile body never needs more than a few bytes per token."""
    out = np.empty(len(codes), dtype=np.int16)
    carry = 0
    for start in range(0, len(codes), _CHUNK):
        chunk = codes[start : start + _CHUNK]
        steps = _OPEN[chunk].astype(np.int64) - _CLOSE[chunk]
        running = np.cumsum(steps) + carry
        carry = int(running[-1])
        np.clip(running, -_MAX_COUNTED_DEPTH, _MAX_COUNTED_DEPTH, out=running)
        out[start : start + len(chunk)] = running
    return out


def _widest(codes: np.ndarray, depth_after: np.ndarray, depth: int) -> int:
    """Items of a container at depth d = the commas at depth d after its opening bracket and
    before the next opening bracket at depth d (containers at one depth never overlap), + 1.
    Values are not tokens, so an empty container counts as one item: an upper bound."""
    is_open = _OPEN[codes].astype(bool)
    is_comma = codes == ord(",")
    widest = 0
    for level in range(1, depth + 1):
        at_level = depth_after == level
        opens = np.flatnonzero(is_open & at_level)
        if not len(opens):
            continue
        commas = np.flatnonzero(is_comma & at_level)
        bounds = np.searchsorted(commas, opens)
        counts = np.diff(np.append(bounds, len(commas)))
        widest = max(widest, int(counts.max()) + 1)
    return widest
