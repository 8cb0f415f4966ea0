"""Compiled, traced models kept between the jobs of one worker process.

Tracing ``train_function`` and ``test_function`` is most of a small job's time (about 40 %
of the seed job's, profiled). A job whose model, compile, pacing, data shapes and dtype
policy match a recent job's reuses that job's compiled model: the new job still builds its
own model after ``set_random_seed`` (so its initial weights, dropout seeds and RNG use are
exactly a fresh run's), then those values are assigned into the kept model's variables and
its optimizer is put back to its state before its first step. Tests hold the numbers equal
to hand-run Keras, first job and reusing jobs alike.

A model enters the cache only after a fit that ended normally, and leaves it while a job uses
it; each worker process runs one job at a time."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

# Larger models are not kept: their tracing is a small part of their training, while an idle
# kept copy (and the fresh model built beside it for the next job) holds gigabytes.
KEEP_MAX_PARAMS = 25_000_000


@dataclass
class Traced:
    model: keras.Model
    optimizer_start: list[np.ndarray]  # the optimizer's variables before its first step


@dataclass
class Prepared:
    model: keras.Model
    reused: bool
    traced: Traced | None  # what to keep once the fit has ended; None: not cacheable


class TracedModels:
    def __init__(self, size: int = 2) -> None:
        self._kept: OrderedDict[str, Traced] = OrderedDict()
        self._size = size

    def prepare(
        self, fresh: keras.Model, key: str | None, compile_model: Callable[[keras.Model], None]
    ) -> Prepared:
        """The model to fit: a kept one carrying ``fresh``'s values, or ``fresh`` compiled."""
        kept = self._kept.pop(key, None) if key is not None else None
        if kept is not None and _same_variables(kept.model, fresh):
            for target, source in zip(kept.model.variables, fresh.variables, strict=True):
                target.assign(source)
            for variable, start in zip(
                kept.model.optimizer.variables, kept.optimizer_start, strict=True
            ):
                variable.assign(start)
            return Prepared(kept.model, reused=True, traced=kept)
        compile_model(fresh)
        if key is None:
            return Prepared(fresh, reused=False, traced=None)
        # Built now (fit would build it first thing) to record its state before any step.
        fresh.optimizer.build(fresh.trainable_variables)
        initial = [np.array(variable.numpy()) for variable in fresh.optimizer.variables]
        return Prepared(fresh, reused=False, traced=Traced(fresh, initial))

    def keep(self, key: str, traced: Traced) -> None:
        if traced.model.count_params() > KEEP_MAX_PARAMS:
            return  # an idle copy (weights and optimizer slots) would cost more than a trace
        self._kept[key] = traced
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()


def _same_variables(kept: keras.Model, fresh: keras.Model) -> bool:
    ours, theirs = kept.variables, fresh.variables
    return len(ours) == len(theirs) and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype
        for a, b in zip(ours, theirs, strict=True)
    )


def reuse_key(**parts: Any) -> str:
    """Everything the traced functions depend on, as one canonical string."""
    return json.dumps(parts, sort_keys=True, default=str)


# One per worker process (Celery's prefork children each have their own).
traced_models = TracedModels()
