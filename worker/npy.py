"""Writing ``.npy`` files a chunk at a time (the row count is known only at the end) and the
per-column statistics computed on the way, so memory never holds more than one chunk."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

HEADER_BYTES = 128  # room for any shape numpy can describe here; rewritten at close


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    text = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    body = text.encode("latin1")
    padding = HEADER_BYTES - 10 - len(body) - 1
    if padding < 0:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte .npy header")
    header = b"\x93NUMPY\x01\x00" + (HEADER_BYTES - 10).to_bytes(2, "little") + body
    return header + b" " * padding + b"\n"


class NpyWriter:
    """Appends rows of one shape and dtype to a ``.npy`` file; ``np.load`` reads the result."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: Any = np.float32) -> None:
        self.path = path
        self.row_shape = row_shape
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file: BinaryIO = open(path, "wb")
        self._file.write(_header(self.dtype, (0, *row_shape)))

    def append(self, chunk: np.ndarray) -> None:
        if chunk.shape[1:] != self.row_shape:
            raise ValueError(f"expected rows of shape {self.row_shape}, received {chunk.shape[1:]}")
        self._file.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.rows += len(chunk)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(_header(self.dtype, (self.rows, *self.row_shape)))
        self._file.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


MAX_STAT_COLUMNS = 1024


class ColumnStats:
    """Count, min, max, mean and standard deviation per column, combined chunk by chunk
    (Chan et al.'s parallel update, in float64), and whether every value is an integer."""

    def __init__(self, columns: int) -> None:
        self.columns = min(columns, MAX_STAT_COLUMNS)
        self.truncated = columns > MAX_STAT_COLUMNS
        self.count = 0
        self.mean = np.zeros(self.columns)
        self.m2 = np.zeros(self.columns)
        self.low = np.full(self.columns, np.inf)
        self.high = np.full(self.columns, -np.inf)
        self.global_low = np.inf
        self.global_high = -np.inf
        self.integral = True

    def update(self, chunk: np.ndarray) -> None:
        if not len(chunk):
            return
        flat = chunk.reshape(len(chunk), -1)
        self.global_low = min(self.global_low, float(flat.min()))
        self.global_high = max(self.global_high, float(flat.max()))
        self.integral = self.integral and bool(np.all(np.mod(flat, 1) == 0))
        part = flat[:, : self.columns].astype(np.float64)
        n = len(part)
        mean = part.mean(axis=0)
        m2 = ((part - mean) ** 2).sum(axis=0)
        delta = mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total
        self.low = np.minimum(self.low, part.min(axis=0))
        self.high = np.maximum(self.high, part.max(axis=0))

    @property
    def variance(self) -> np.ndarray:
        return self.m2 / self.count if self.count else self.m2

    def describe(self, names: list[str]) -> list[dict[str, Any]]:
        std = np.sqrt(self.variance)
        return [
            {
                "name": names[i] if i < len(names) else str(i),
                "min": float(self.low[i]),
                "max": float(self.high[i]),
                "mean": float(self.mean[i]),
                "std": float(std[i]),
                "missing": 0,  # rows with a missing value are refused at ingest
            }
            for i in range(self.columns)
        ]
