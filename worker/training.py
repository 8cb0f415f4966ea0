"""Spec → ``keras.Model`` → fit → evaluate, as plain functions over in-memory arrays.

The calls mirror what a user writes by hand (``keras.utils.set_random_seed(seed)``, a
``Sequential`` of layers, ``compile``, ``fit``, ``evaluate``), so a job's numbers equal the
hand-run ones. Only ``keras.*`` APIs are used: the backend is a setting."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from fitq.spec.compile import CompileSpec
from fitq.spec.job import FitSpec, ModelSpec

HistoryEpoch = dict[str, float | int | None]
EpochHook = Callable[[list[HistoryEpoch]], None]

# User metric name → Keras metric class; the user's string becomes the metric's name, so it is
# the key in history and results ("rmse" included when it joins, though Keras says otherwise).
METRICS: dict[str, Callable[[str], keras.metrics.Metric]] = {
    "mae": lambda name: keras.metrics.MeanAbsoluteError(name=name),
    "mse": lambda name: keras.metrics.MeanSquaredError(name=name),
}
LOSSES: dict[str, str] = {"mse": "mse", "mae": "mae"}
OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class TrainingData:
    train: Arrays
    validation: Arrays | None = None
    test: Arrays | None = None


@dataclass
class TrainingOutcome:
    model: keras.Model
    history: list[HistoryEpoch]
    non_finite: bool
    test_loss: float | None = None
    test_metrics: dict[str, float | None] = field(default_factory=dict)
    train_seconds: float = 0.0
    execution: dict[str, Any] = field(default_factory=dict)


def build_model(spec: ModelSpec) -> keras.Model:
    """``Sequential([Input(shape), layer, …])``: the same weights as ``input_shape=`` on the
    first layer after the same seed (checked by a test)."""
    layers: list[Any] = [keras.Input(shape=spec.resolved_input_shape)]
    for layer in spec.layers:
        # The type is allowlisted by the spec's discriminated union: no user string reaches
        # getattr unchecked.
        layers.append(getattr(keras.layers, layer.type)(**layer.keras_kwargs()))
    return keras.Sequential(layers)


def compile_model(model: keras.Model, spec: CompileSpec) -> None:
    optimizer = OPTIMIZERS[spec.optimizer.type](**spec.optimizer.keras_kwargs())
    metrics = [METRICS[name](name) for name in spec.metrics]
    model.compile(loss=LOSSES[spec.loss], optimizer=optimizer, metrics=metrics)


def _clean(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


class _EpochRecorder(keras.callbacks.Callback):
    """Keeps the per-epoch history, reports it, and stops training on a non-finite loss."""

    def __init__(self, on_epoch: EpochHook | None) -> None:
        super().__init__()
        self.history: list[HistoryEpoch] = []
        self.non_finite = False
        self._on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        entry: HistoryEpoch = {"epoch": epoch + 1}
        entry.update({key: _clean(value) for key, value in (logs or {}).items()})
        self.history.append(entry)
        if entry.get("loss") is None:
            self.non_finite = True
            self.model.stop_training = True
        if self._on_epoch is not None:
            self._on_epoch(self.history)


def train(
    model_spec: ModelSpec,
    compile_spec: CompileSpec,
    fit_spec: FitSpec,
    data: TrainingData,
    seed: int,
    on_epoch: EpochHook | None = None,
) -> TrainingOutcome:
    keras.utils.set_random_seed(seed)
    model = build_model(model_spec)
    compile_model(model, compile_spec)
    recorder = _EpochRecorder(on_epoch)
    validation = (data.validation.x, data.validation.y) if data.validation else None

    started = time.perf_counter()
    model.fit(
        data.train.x,
        data.train.y,
        batch_size=fit_spec.batch_size,
        epochs=fit_spec.epochs,
        validation_data=validation,
        shuffle=fit_spec.shuffle,
        callbacks=[recorder],
        verbose=0,
    )
    outcome = TrainingOutcome(
        model=model,
        history=recorder.history,
        non_finite=recorder.non_finite,
        execution={
            "steps_per_execution": 1,
            "jit_compile": bool(getattr(model, "jit_compile", False)),
            "run_eagerly": bool(model.run_eagerly),
            "data": "in_memory",
        },
    )
    if data.test is not None and not recorder.non_finite:
        scores = model.evaluate(
            data.test.x,
            data.test.y,
            batch_size=fit_spec.batch_size,
            verbose=0,
            return_dict=True,
        )
        outcome.test_loss = _clean(scores["loss"])
        outcome.test_metrics = {name: _clean(scores[name]) for name in compile_spec.metrics}
    outcome.train_seconds = time.perf_counter() - started
    return outcome
