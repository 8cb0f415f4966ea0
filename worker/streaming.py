"""Training data too large for memory: batches read from memory-mapped ``.npy`` arrays by
row index, with a seeded shuffle per epoch, so a worker's memory stays bounded by a few
batches whatever the dataset's size."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import keras
import numpy as np

# Rows as read → what the model takes (class indexes, one-hot rows, a dict of named parts).
Transform = Callable[[np.ndarray], Any]


class RowBatches(keras.utils.PyDataset):
    """Batches of ``x[rows]`` / ``y[rows]``; rows are reshuffled at each epoch's end with a
    generator seeded by the job's seed, so a job's batches are the same on every run."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rows: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        transform_x: Transform | None = None,
        transform_y: Transform | None = None,
        sample_weight: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
    ) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.rows = rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.transform_x = transform_x
        self.transform_y = transform_y
        self.sample_weight = sample_weight  # a batch's weights, from its rows of x and y
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(rows) if shuffle else rows

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        # Sorted within the batch: reads walk the file forwards; the batch's rows are the same.
        rows = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        x = np.asarray(self.x[rows], dtype=np.float32)
        y = np.asarray(self.y[rows], dtype=np.float32)
        batch = (
            self.transform_x(x) if self.transform_x else x,
            self.transform_y(y) if self.transform_y else y,
        )
        weights = self.sample_weight(x, y) if self.sample_weight else None
        return batch if weights is None else (*batch, weights)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(self.rows)

    def skip_epochs(self, epochs: int) -> None:
        """The order after ``epochs`` epochs, as a run that trained them would have it."""
        for _ in range(epochs):
            self.on_epoch_end()


class Rows(Protocol):
    """What ``column_moments`` reads: an array, a memory map, or a view of some columns."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...


def column_moments(x: Rows, rows: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance per feature over ``x[rows]`` in float64, a chunk at a time (what
    ``Normalization.adapt`` computes, without holding the array)."""
    count = 0
    mean = np.zeros(x.shape[1:])
    m2 = np.zeros(x.shape[1:])
    for start in range(0, len(rows), chunk):
        part = np.asarray(x[np.sort(rows[start : start + chunk])], dtype=np.float64)
        n = len(part)
        part_mean = part.mean(axis=0)
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + ((part - part_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        count = total
    return mean, m2 / max(count, 1)
