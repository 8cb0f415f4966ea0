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
from fitq.spec.inference import split_rows
from fitq.spec.job import FitSpec, ModelSpec

HistoryEpoch = dict[str, float | int | None]
EpochHook = Callable[[list[HistoryEpoch]], None]

# User metric name → Keras metric; the user's string becomes the metric's name, so it is the key
# in history and results ("rmse" included, though Keras calls it root_mean_squared_error).
# "accuracy" stays Keras's own string: Keras picks binary, categorical or sparse accuracy from
# the shapes of targets and outputs, as it does for a hand-written compile.
METRICS: dict[str, type[keras.metrics.Metric]] = {
    "mae": keras.metrics.MeanAbsoluteError,
    "mse": keras.metrics.MeanSquaredError,
    "rmse": keras.metrics.RootMeanSquaredError,
    "mape": keras.metrics.MeanAbsolutePercentageError,
    "binary_accuracy": keras.metrics.BinaryAccuracy,
    "categorical_accuracy": keras.metrics.CategoricalAccuracy,
    "sparse_categorical_accuracy": keras.metrics.SparseCategoricalAccuracy,
    "auc": keras.metrics.AUC,
}
LOSSES: dict[str, type[keras.losses.Loss]] = {
    "mse": keras.losses.MeanSquaredError,
    "mae": keras.losses.MeanAbsoluteError,
    "huber": keras.losses.Huber,
    "log_cosh": keras.losses.LogCosh,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
}
OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
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
    early_stopping: dict[str, Any] | None = None


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
    metrics = [name if name == "accuracy" else METRICS[name](name=name) for name in spec.metrics]
    loss = LOSSES[spec.loss.type](**spec.loss.keras_kwargs())
    model.compile(loss=loss, optimizer=optimizer, metrics=metrics)


def prepare_data(
    train: Arrays,
    validation: Arrays | None,
    test: Arrays | None,
    *,
    test_split: float | None,
    shuffle_before_split: bool,
    seed: int,
) -> TrainingData:
    """``data.shuffle_before_split`` permutes the training rows with
    ``np.random.default_rng(seed)``; ``data.test_split`` then holds out the last fraction for
    ``evaluate``, with Keras's ``validation_split`` arithmetic."""
    if shuffle_before_split:
        order = np.random.default_rng(seed).permutation(len(train.x))
        train = Arrays(train.x[order], train.y[order])
    if test_split:
        kept = split_rows(len(train.x), test_split)[0]
        test = Arrays(train.x[kept:], train.y[kept:])
        train = Arrays(train.x[:kept], train.y[:kept])
    return TrainingData(train, validation, test)


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
    callbacks: list[keras.callbacks.Callback] = [recorder]
    stopper = None
    if fit_spec.early_stopping is not None:
        stopper = keras.callbacks.EarlyStopping(**fit_spec.early_stopping.model_dump())
        callbacks.append(stopper)
    validation = (data.validation.x, data.validation.y) if data.validation else None

    started = time.perf_counter()
    model.fit(
        data.train.x,
        data.train.y,
        batch_size=fit_spec.batch_size,
        epochs=fit_spec.epochs,
        validation_data=validation,
        validation_split=fit_spec.validation_split or 0.0,
        shuffle=fit_spec.shuffle,
        callbacks=callbacks,
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
    if stopper is not None:
        outcome.early_stopping = {
            "stopped_epoch": stopper.stopped_epoch + 1 if stopper.stopped_epoch else None,
            "best_epoch": stopper.best_epoch + 1,
            "restored_best_weights": bool(
                fit_spec.early_stopping
                and fit_spec.early_stopping.restore_best_weights
                and stopper.best_weights is not None
            ),
        }
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
