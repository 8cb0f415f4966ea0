"""An uploaded dataset's ingest: claim it, parse the upload a chunk at a time into ``x.npy``
and ``y.npy`` (memory-mappable, float32), compute per-column statistics, encode a categorical
target, and mark it ready, or failed with a message naming the row and column. Files are
written under temporary names and renamed only when complete: a failure leaves none behind."""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from fitq import logs
from fitq.artifacts import ArtifactStore, dataset_key
from fitq.settings import Settings
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Dataset
from worker.lease_renewal import LeaseRenewal
from worker.npy import ColumnStats, NpyWriter
from worker.parsers import MAX_CLASSES, Chunk, IngestError, IngestLimits, parse, row_name

# Disk an upload's arrays must leave free for everything else on the host.
DISK_RESERVE_BYTES = 256 * 2**20

log = logging.getLogger(__name__)

MAX_TRACKED_CLASSES = 1_000  # distinct numeric target values listed as classes


@dataclass
class Ingested:
    rows: int
    x_shape: list[int]
    y_shape: list[int]
    feature_names: list[str]
    target_names: list[str]
    stats: dict[str, Any]
    labels: list[str] | None
    size_bytes: int


class _Targets:
    """Turns one target column's raw values into numbers: numeric values as they are, labels
    (strings) as class codes, ordered by label once every row is seen."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where
        self.codes: dict[str, int] = {}
        self.labels_mode = False
        self.rows = 0

    def convert(self, chunk: Chunk) -> np.ndarray:
        values = chunk.y
        if values.dtype != object:
            if not self.labels_mode:
                self.rows += len(values)
                return values
            # Labels came first; numbers in a later chunk are labels too ("1" stays "1").
            values = np.array([_as_label(v) for v in values], dtype=object)
        if not self.labels_mode:
            numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
            if not np.isnan(numeric).any():
                self._finite(numeric, chunk.first_row)
                self.rows += len(values)
                return numeric
            if self.rows:
                i = int(np.argmax(np.isnan(numeric)))
                raise IngestError(
                    f"{row_name(chunk.first_row + i, self.where)}, column {self.name!r}: "
                    f"expected a number like the rows before, received {values[i]!r}"
                )
            self.labels_mode = True
        codes = np.fromiter(
            (self.codes.setdefault(str(v), len(self.codes)) for v in values),
            dtype=np.float64,
            count=len(values),
        )
        if len(self.codes) > MAX_CLASSES:
            raise IngestError(
                f"column {self.name!r}: expected a categorical target of at most {MAX_CLASSES:,} "
                f"classes, received more"
            )
        self.rows += len(values)
        return codes

    def _finite(self, numeric: np.ndarray, first_row: int) -> None:
        bad = ~np.isfinite(numeric)
        if bad.any():
            i = int(np.argmax(bad))
            raise IngestError(
                f"{row_name(first_row + i, self.where)}, column {self.name!r}: expected a finite "
                f"number, received {numeric[i]}"
            )

    def sorted_labels(self) -> tuple[list[str], np.ndarray]:
        """The labels in order, and the map from first-seen codes to their sorted index."""
        labels = sorted(self.codes)
        remap = np.empty(len(labels), dtype=np.float32)
        for new, label in enumerate(labels):
            remap[self.codes[label]] = new
        return labels, remap


def _as_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_text(what: str, values: list[str]) -> None:
    """Text the store keeps must be storable everywhere: PostgreSQL refuses NUL characters."""
    for value in values:
        if "\x00" in value:
            raise IngestError(f"expected {what} without NUL characters, received {value!r}")


def ingest_file(
    source: Path,
    file_format: str,
    target: list[str],
    features: list[str] | None,
    artifacts: ArtifactStore,
    dataset_id: str,
    limits: IngestLimits,
) -> Ingested:
    parsed = parse(source, file_format, target, features, limits)
    _check_text("column names", [*parsed.feature_names, *parsed.target_names])
    x_key, y_key = dataset_key(dataset_id, "x"), dataset_key(dataset_id, "y")
    targets = _Targets(parsed.target_names[0] if parsed.target_names else "y", file_format)
    x_stats = ColumnStats(math.prod(parsed.x_row_shape))
    y_stats = ColumnStats(max(1, math.prod(parsed.y_row_shape)))
    classes: set[float] | None = set()
    try:
        with artifacts.staged(x_key) as x_tmp, artifacts.staged(y_key) as y_tmp:
            with (
                NpyWriter(x_tmp, parsed.x_row_shape) as xw,
                NpyWriter(y_tmp, parsed.y_row_shape) as yw,
            ):
                for chunk in parsed.chunks:
                    y = targets.convert(chunk)
                    xw.append(chunk.x)
                    yw.append(y)
                    x_stats.update(chunk.x)
                    y_stats.update(y)
                    if classes is not None and not targets.labels_mode:
                        classes.update(np.unique(y).tolist())
                        if len(classes) > MAX_TRACKED_CLASSES:
                            classes = None
                rows = xw.rows
            if rows == 0:
                raise IngestError("expected at least one data row, received none")
            labels = None
            if targets.labels_mode:
                labels, remap = targets.sorted_labels()
                _check_text("labels", labels)
                y_stats = _remap_in_place(y_tmp, remap)
                classes = set(range(len(labels)))
    finally:
        for path in parsed.extracted:
            path.unlink(missing_ok=True)
    integral_classes = sorted(classes) if classes is not None and y_stats.integral else None
    stats = {
        "x": x_stats.describe(parsed.feature_names),
        "y": y_stats.describe(parsed.target_names),
        "x_min": x_stats.global_low,
        "x_max": x_stats.global_high,
        "x_integral": x_stats.integral,
        "y_min": y_stats.global_low,
        "y_max": y_stats.global_high,
        "y_integral": y_stats.integral,
        "y_classes": integral_classes,
        "columns_truncated": x_stats.truncated,
    }
    size = sum(artifacts.local_path(k).stat().st_size for k in (x_key, y_key))
    return Ingested(
        rows=rows,
        x_shape=[rows, *parsed.x_row_shape],
        y_shape=[rows, *parsed.y_row_shape],
        feature_names=parsed.feature_names,
        target_names=parsed.target_names,
        stats=stats,
        labels=labels,
        size_bytes=size,
    )


def _remap_in_place(path: Path, remap: np.ndarray) -> ColumnStats:
    """Rewrite first-seen label codes as sorted-label codes; returns the codes' statistics."""
    y = np.load(path, mmap_mode="r+")
    stats = ColumnStats(1)
    for start in range(0, len(y), 1 << 20):
        part = y[start : start + (1 << 20)]
        part[...] = remap[part.astype(np.int64)]
        stats.update(np.asarray(part, dtype=np.float64))
    y.flush()
    del y
    return stats


@dataclass
class DatasetIngestor:
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    settings: Settings

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def run(self, dataset_id: str) -> str:
        with transaction(self.sessions) as session:
            attempt = repo.claim_dataset(session, dataset_id, self._lease)
            row = repo.get_dataset_by_id(session, dataset_id)
        with logs.bound(dataset_id=dataset_id, tenant=row.tenant_id if row else None):
            return self._run_claimed(dataset_id, attempt, row)

    def _run_claimed(self, dataset_id: str, attempt: int | None, row: Dataset | None) -> str:
        if attempt is None or row is None or row.source_key is None:
            log.info("dataset %s is not waiting for ingest: message ignored", dataset_id)
            return "duplicate"
        options = row.options or {}
        beat = lambda: self._beat(dataset_id, attempt)  # noqa: E731
        try:
            with LeaseRenewal(beat, self.settings.heartbeat_seconds):
                ingested = ingest_file(
                    self.artifacts.local_path(row.source_key),
                    row.format or "csv",
                    options.get("target") or [],
                    options.get("features"),
                    self.artifacts,
                    dataset_id,
                    self._limits(row.tenant_id),
                )
        except IngestError as exc:
            return self._finish(dataset_id, attempt, row.source_key, error=str(exc))
        except Exception as exc:
            log.exception("dataset %s: ingest failed", dataset_id)
            return self._finish(
                dataset_id, attempt, row.source_key, error=f"the file could not be ingested: {exc}"
            )
        return self._finish(dataset_id, attempt, row.source_key, ingested=ingested)

    def _limits(self, tenant_id: str) -> IngestLimits:
        """The tenant's dataset quota left (its stored bytes, this upload's file included),
        or the disk's free space less a reserve, whichever is less."""
        quota = self.settings.max_dataset_bytes
        with transaction(self.sessions) as session:
            used = repo.dataset_bytes(session, tenant_id)
        free = shutil.disk_usage(self.settings.data_dir).free - DISK_RESERVE_BYTES
        left = max(quota - used, 0)
        if free < left:
            return IngestLimits(
                self.settings.max_columns, max(free, 0), f"the disk's free space ({free:,} bytes)"
            )
        return IngestLimits(
            self.settings.max_columns,
            left,
            f"the {left:,} bytes left of this tenant's {quota:,} (FITQ_MAX_DATASET_BYTES)",
        )

    def _beat(self, dataset_id: str, attempt: int) -> bool:
        with transaction(self.sessions) as session:
            return repo.renew_dataset_lease(session, dataset_id, attempt, self._lease)

    def _finish(
        self,
        dataset_id: str,
        attempt: int,
        source_key: str,
        *,
        ingested: Ingested | None = None,
        error: str | None = None,
    ) -> str:
        with transaction(self.sessions) as session:
            owned = repo.finish_dataset(session, dataset_id, attempt, ingested, error)
        if owned:
            self.artifacts.delete(source_key)  # the arrays are the stored form now
        status = "ready" if ingested else "failed"
        log.info("dataset %s %s%s", dataset_id, status, f": {error}" if error else "")
        return status if owned else "lost"
