"""Spec → ``keras.Model`` → fit → evaluate, as plain functions over in-memory arrays.

The calls mirror what a user writes by hand (``keras.utils.set_random_seed(seed)``, a
``Sequential`` of layers, ``compile``, ``fit``, ``evaluate``), so a job's numbers equal the
hand-run ones. Only ``keras.*`` APIs are used: the backend is a setting."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

import keras
import numpy as np

from fitq.spec.compile import CompileSpec
from fitq.spec.data import ColumnGroup, LabelEncoding, WeightColumn, split_groups
from fitq.spec.job import (
    FitSpec,
    ModelCheckpoint,
    ModelSpec,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
)
from fitq.spec.layers import LayerBase, Normalization
from fitq.spec.losses import LossBase
from fitq.spec.metrics import METRIC_CLASSES, MetricBase
from fitq.spec.optimizers import OptimizerBase, ScheduleBase
from fitq.spec.validation import split_rows
from worker import checkpoints
from worker.backend import visible_gpus
from worker.pacing import Pacing, plan_pacing
from worker.streaming import RowBatches, column_moments
from worker.traced import Prepared, reuse_key, traced_models
from worker.watch import StopReason

HistoryEpoch = dict[str, float | int | None]
EpochHook = Callable[[list[HistoryEpoch]], None]


@dataclass(frozen=True)
class Arrays:
    """Features and targets (arrays or memory maps); ``rows`` selects and orders rows without
    copying them (shuffles and splits of a large dataset stay indexes until batches are read)."""

    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray | None = None
    # A model of several inputs or outputs: the named groups of x's or y's columns.
    x_groups: list[ColumnGroup] | None = None
    y_groups: list[ColumnGroup] | None = None
    # The column of x or y holding the sample weights (its groups then leave it out).
    sample_weight: WeightColumn | None = None

    @property
    def count(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    @property
    def nbytes(self) -> int:
        per_row = (self.x.nbytes + self.y.nbytes) / max(len(self.x), 1)
        return int(per_row * self.count)

    def row_index(self) -> np.ndarray:
        return np.arange(len(self.x)) if self.rows is None else self.rows

    def materialize(self) -> tuple[np.ndarray, np.ndarray]:
        """In memory, as a hand-written script would hold them."""
        if self.rows is None:
            return np.asarray(self.x), np.asarray(self.y)
        return np.asarray(self.x[self.rows]), np.asarray(self.y[self.rows])

    def with_rows(self, rows: np.ndarray) -> Arrays:
        return replace(self, rows=rows)

    def model_x(self, x: np.ndarray) -> Any:
        """Rows of x as the model takes them: the array, or a dict of its named inputs."""
        return _named(x, self.x_groups)

    def model_y(self, y: np.ndarray) -> Any:
        return _named(y, self.y_groups)

    def weights(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Rows' sample weights, from the rows of x and y read (None: unweighted)."""
        where = self.sample_weight
        if where is None:
            return None
        return np.ascontiguousarray((x if where.array == "x" else y)[:, where.column])


def _named(array: np.ndarray, groups: list[ColumnGroup] | None) -> Any:
    """The named groups of ``array`` as ``fit`` takes them; one group is the array itself
    (what a model of one input or output takes)."""
    named = split_groups(array, groups)
    if isinstance(named, dict) and len(named) == 1:
        return next(iter(named.values()))
    return named


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
    # ModelCheckpoint: the file it wrote (the job's model) and what it holds.
    saved_model: Path | None = None
    model_checkpoint: dict[str, Any] | None = None


# Layers built before the model, by index into the spec's layers (adapted Normalizations).
Prebuilt = dict[int, keras.layers.Layer]


def build_model(
    spec: ModelSpec, first: keras.layers.Layer | None = None, prebuilt: Prebuilt | None = None
) -> keras.Model:
    """``Sequential([Input(shape), layer, …])``: the same weights as ``input_shape=`` on the
    first layer after the same seed (checked by a test). ``first`` (a fitted Normalization)
    goes right after the input. A graph is Keras's functional API (``build_graph``)."""
    prebuilt = prebuilt or {}
    if spec.is_graph:
        return build_graph(spec, first, prebuilt)
    layers: list[Any] = [keras.Input(shape=spec.resolved_input_shape)]
    if first is not None:
        layers.append(first)
    layers.extend(
        prebuilt[i] if i in prebuilt else keras_layer(layer) for i, layer in enumerate(spec.layers)
    )
    return keras.Sequential(layers)


def build_graph(
    spec: ModelSpec, first: keras.layers.Layer | None = None, prebuilt: Prebuilt | None = None
) -> keras.Model:
    """As a script writes a functional model: ``x = Input(shape, name=…)`` per input, then
    each layer built and called on its inputs in the order listed (``h = Dense(8,
    name=…)(x)``; a merge layer on a list, ``Add()([a, b])``; attention on its query and
    value, ``mha(q, v)``), then ``Model(x, output)`` (lists for several).
    Layers draw their seeds in that order, as the script's do."""
    assert spec.inputs is not None
    model_inputs = [keras.Input(shape=i.shape, name=i.name) for i in spec.inputs]
    tensors: dict[str, Any] = dict(zip(spec.input_names, model_inputs, strict=True))
    if first is not None:  # standardize: a model of one input
        tensors[spec.input_names[0]] = first(model_inputs[0])
    for index, layer_spec in enumerate(spec.layers):
        layer = prebuilt[index] if prebuilt and index in prebuilt else keras_layer(layer_spec)
        called = [tensors[name] for name in spec.layer_inputs(index)]
        if layer_spec.called_on_arguments:
            output = layer(*called)
        elif layer_spec.arity == (1, 1):
            output = layer(called[0])
        else:
            output = layer(called)
        tensors[str(layer_spec.name)] = output
    outputs = [tensors[name] for name in spec.graph_outputs]
    # One input or output as itself, several as a list: ``Model(x, y)``, ``Model([a, b],
    # [p, q])``, as a script writes them.
    return keras.Model(
        model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        outputs[0] if len(outputs) == 1 else outputs,
    )


def keras_layer(spec: LayerBase) -> keras.layers.Layer:
    """``keras.layers.<type>(**arguments)``, a wrapped layer built first and passed in, as a
    script writes ``Bidirectional(LSTM(8))``. The type is allowlisted by the spec's
    discriminated union: no user string reaches getattr unchecked."""
    kwargs = spec.keras_kwargs()
    kwargs.update({name: keras_layer(inner) for name, inner in spec.wrapped().items()})
    return getattr(keras.layers, spec.type)(**kwargs)


def label_transform(
    encoding: LabelEncoding | None, width: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """Stored class values → class indexes (``classes`` is sorted), one-hot when asked."""
    if encoding is None:
        return None
    classes = np.asarray(encoding.classes, dtype=np.float32)
    eye = np.eye(width, dtype=np.float32)

    def transform(y: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(classes, y.reshape(len(y)))
        return eye[codes] if encoding.one_hot else codes.astype(np.float32)

    return transform


def compile_model(
    model: keras.Model,
    spec: CompileSpec,
    jit_compile: bool | None = None,
    pacing: Pacing | None = None,
) -> None:
    """``model.compile`` with the Keras objects the spec names (each class as
    ``fitq/spec`` names it, with the arguments the user set)."""
    loss = (
        {name: _loss(loss) for name, loss in spec.loss.items()}
        if isinstance(spec.loss, dict)
        else _loss(spec.loss)
    )
    metrics = (
        {name: [_metric(m) for m in listed] for name, listed in spec.metrics.items()}
        if isinstance(spec.metrics, dict)
        else [_metric(m) for m in spec.metrics]
    )
    model.compile(
        loss=loss,
        optimizer=_optimizer(spec.optimizer),
        metrics=metrics,
        loss_weights=spec.loss_weights,
        jit_compile="auto" if jit_compile is None else jit_compile,
        steps_per_execution=pacing.steps_per_execution if pacing else 1,
        run_eagerly=pacing.run_eagerly if pacing else False,
    )


def _loss(spec: LossBase) -> keras.losses.Loss:
    return getattr(keras.losses, spec.keras_class)(**spec.keras_kwargs())


def _optimizer(spec: OptimizerBase) -> keras.optimizers.Optimizer:
    kwargs = spec.keras_kwargs()
    rate = spec.learning_rate
    if isinstance(rate, ScheduleBase):
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, rate.class_name)(
            **rate.keras_kwargs()
        )
    return getattr(keras.optimizers, spec.keras_class)(**kwargs)


def _metric(metric: str | MetricBase) -> str | keras.metrics.Metric:
    """The user's string becomes the metric's name, so it is the key in history and results
    ("rmse" included, though Keras calls it root_mean_squared_error), as Keras names a metric
    given by string. "accuracy" stays Keras's own string (Keras picks the accuracy)."""
    if isinstance(metric, MetricBase):
        return getattr(keras.metrics, metric.keras_class)(**metric.keras_kwargs())
    keras_class = METRIC_CLASSES[metric]
    if keras_class is None:
        return metric
    return getattr(keras.metrics, keras_class)(name=metric)


def save_model(model: keras.Model, path: Path, fit: FitSpec) -> None:
    """``model.save(path)`` with the compile settings the user's own ``compile`` would have
    written: fitq's execution choices (``run_eagerly`` for a short job, several
    ``steps_per_execution``) are not theirs, and a loaded model would keep them (predicting
    eagerly, re-fitting in steps). ``get_compile_config`` is what Keras's saving reads."""
    with users_compile_settings(model, fit):
        model.save(path)


@contextmanager
def users_compile_settings(model: keras.Model, fit: FitSpec) -> Iterator[None]:
    """While saving: ``get_compile_config`` (what Keras's saving reads) without fitq's
    execution choices."""
    config = model.get_compile_config()
    config.update(
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto" if fit.jit_compile is None else fit.jit_compile,
    )
    with mock.patch.object(model, "get_compile_config", lambda: config):
        yield


def mixed_policy() -> str:
    """The mixed policy for this process's device: float16 where a GPU computes, bfloat16
    (what CPUs support) otherwise."""
    return "mixed_float16" if visible_gpus() else "mixed_bfloat16"


def mirrored_devices(execution_devices: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The devices a job is mirrored over: every GPU of this process when it has several
    (a ``gpu<k>`` worker), else none (one device needs no strategy)."""
    if execution_devices is not None:
        return execution_devices
    gpus = visible_gpus()
    return tuple(f"/gpu:{i}" for i in range(gpus)) if gpus > 1 else None


@contextmanager
def distribution(devices: tuple[str, ...] | None) -> Iterator[None]:
    """Build, compile and load under ``tf.distribute.MirroredStrategy`` over ``devices``: Keras
    then splits each batch across them and all-reduces the gradients."""
    if not devices or keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    with tf.distribute.MirroredStrategy(devices=list(devices)).scope():
        yield


@contextmanager
def dtype_policy(name: str | None) -> Iterator[None]:
    """Keras's dtype policy is global: set it while the model is built and compiled (layers
    and the loss-scaling optimizer take it then), and put the previous one back."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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
    rows = train.row_index()
    if shuffle_before_split:
        rows = np.random.default_rng(seed).permutation(len(train.x))
    if test_split:
        kept = split_rows(len(rows), test_split)[0]
        test = train.with_rows(rows[kept:])
        rows = rows[:kept]
    if shuffle_before_split or test_split:
        train = train.with_rows(rows)
    return TrainingData(train, validation, test)


def class_weights(fit: FitSpec) -> dict[int, float] | None:
    """``fit.class_weight`` as Keras takes it (JSON keys are strings)."""
    if fit.class_weight is None:
        return None
    return {int(key): weight for key, weight in fit.class_weight.items()}


def _clean(value: Any) -> float | None:
    # One number: a metric of one output may be a 1-element array (F1Score per class).
    number = float(np.asarray(value).item())
    return number if math.isfinite(number) else None


class TrainingStopped(Exception):
    """Raised from a batch (cancel, time limit, lost lease: training ends there, no
    validation pass or evaluate first) or from an epoch's end (a drain, once the epoch's
    checkpoint is saved)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _StopAtBatch(keras.callbacks.Callback):
    def __init__(self, should_stop: Callable[[], str | None]) -> None:
        super().__init__()
        self._should_stop = should_stop

    def _check(self) -> None:
        reason = self._should_stop()
        if reason is not None:
            raise TrainingStopped(reason)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()


class _EpochRecorder(keras.callbacks.Callback):
    """Keeps the per-epoch history, reports it, and stops training on a non-finite loss."""

    def __init__(self, on_epoch: EpochHook | None, earlier: list[HistoryEpoch]) -> None:
        super().__init__()
        self.history: list[HistoryEpoch] = list(earlier)  # epochs a resumed run starts after
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


# Stores a checkpoint that ``write`` puts at the path it is given, taken after ``epoch``.
StoreCheckpoint = Callable[[Callable[[Path], None], int], None]


class _AtEpochEnd(keras.callbacks.Callback):
    """The last callback at each epoch's end, so what it saves includes every other one's
    work for the epoch (the history recorded, EarlyStopping's counters). It checkpoints when
    ``checkpoints.checkpoint_due`` says so (a short job never pays for one; a long one loses
    at most about an epoch or 5 % of its time; never more than ``interval`` apart), and when
    the worker drains it checkpoints and hands the job back. Nothing is saved where training
    ends anyway."""

    # What the first save is expected to take, before one was timed (the seed model's
    # .keras takes 26-37 ms here).
    FIRST_SAVE_SECONDS = 0.05

    def __init__(
        self,
        store: StoreCheckpoint | None,
        interval: float,
        draining: Callable[[], bool] | None,
        epochs: int,
        early_stopping: keras.callbacks.EarlyStopping | None,
        reduce_lr: keras.callbacks.ReduceLROnPlateau | None = None,
        model_checkpoint: checkpoints.ResumableModelCheckpoint | None = None,
    ) -> None:
        super().__init__()
        self._reduce_lr = reduce_lr
        self._model_checkpoint = model_checkpoint
        self._store = store
        self._interval = interval
        self._draining = draining
        self._epochs = epochs
        self._early_stopping = early_stopping
        self._started = self._last = time.monotonic()
        self.saves = 0
        self.saving = 0.0  # seconds spent saving, all saves
        self._last_save = self.FIRST_SAVE_SECONDS

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        if self.model.stop_training or done >= self._epochs:
            return
        draining = self._draining is not None and self._draining()
        now = time.monotonic()
        due = checkpoints.checkpoint_due(
            trained=now - self._started - self.saving,
            since_last=now - self._last,
            saving=self.saving,
            next_save=self._last_save,
            longest_interval=self._interval,
        )
        if self._store is not None and (draining or due):
            model, stopper, reducer = self.model, self._early_stopping, self._reduce_lr
            saver = self._model_checkpoint
            self._store(
                lambda path: checkpoints.save(model, path, done, stopper, reducer, saver), done
            )
            self._last = time.monotonic()
            self._last_save = self._last - now
            self.saving += self._last_save
            self.saves += 1
        if draining:
            raise TrainingStopped(StopReason.drain)


@dataclass(frozen=True)
class Resume:
    """A checkpoint to continue from: the saved model (weights, optimizer state, compile
    settings), the state Keras does not save, and the history of the epochs it holds."""

    path: Path
    state: checkpoints.CheckpointState
    history: list[HistoryEpoch]


@dataclass(frozen=True)
class Execution:
    """How to feed the model: fitq's choice per job, recorded in ``result.execution``."""

    standardize: bool = False
    label_encoding: LabelEncoding | None = None
    in_memory_bytes: int | None = None  # above it, stream batches from the memory maps
    should_stop: Callable[[], str | None] | None = None  # read at every batch
    draining: Callable[[], bool] | None = None  # read at each epoch's end
    checkpoint: StoreCheckpoint | None = None
    checkpoint_seconds: float = 300.0
    resume: Resume | None = None
    # Mirror over these devices; None: every GPU of the process when it has more than one.
    devices: tuple[str, ...] | None = None
    # Reuse a kept traced model of the same architecture (worker/traced.py).
    reuse_traced: bool = True
    # Fine-tuning: the source job's model file (the spec's ``model.from_job``).
    base_model: Path | None = None
    # Where the TensorBoard callback writes (jobs that ask for it).
    tensorboard_dir: Path | None = None
    # Where the ModelCheckpoint callback writes its .keras (jobs that ask for it).
    model_checkpoint_path: Path | None = None


def train(
    model_spec: ModelSpec,
    compile_spec: CompileSpec,
    fit_spec: FitSpec,
    data: TrainingData,
    seed: int,
    on_epoch: EpochHook | None = None,
    execution: Execution = Execution(),
) -> TrainingOutcome:
    """What a hand-written script does, in this order: ``set_random_seed(seed)``; with
    ``standardize``, ``norm = Normalization(); norm.adapt(x_train)``; ``Sequential([Input,
    (norm,) *layers])``; ``compile``; ``fit``; ``evaluate``. Each step below draws random
    numbers in the order that script would, so the numbers are the script's."""
    data_bytes = sum(a.nbytes for a in (data.train, data.validation, data.test) if a is not None)
    limit = execution.in_memory_bytes
    streamed = limit is not None and data_bytes > limit
    keras.utils.set_random_seed(seed)
    devices = mirrored_devices(execution.devices)
    resume = execution.resume
    if resume is not None:
        built = _resumed_model(resume, data, fit_spec, devices)
    else:
        built = _new_model(model_spec, compile_spec, fit_spec, data, execution, streamed, devices)
    model = built.model
    encoding = execution.label_encoding  # a model of one output only
    transform = label_transform(encoding, int(model.output_shape[-1])) if encoding else None
    initial_epoch = len(resume.history) if resume else 0
    feed = (
        _StreamedFeed(data, fit_spec, seed, transform, initial_epoch)
        if streamed
        else _MemoryFeed(data, transform)
    )
    callbacks = _FitCallbacks.for_job(on_epoch, fit_spec, execution)
    if resume is not None:
        checkpoints.restore_random_state(model, resume.state)

    started = time.perf_counter()
    model.fit(
        **feed.fit_arguments(fit_spec),
        epochs=fit_spec.epochs,
        initial_epoch=initial_epoch,
        class_weight=class_weights(fit_spec),
        callbacks=callbacks.in_order(),
        verbose=0,
    )
    built.keep_traced()  # only after a fit that ended normally
    outcome = TrainingOutcome(
        model=model,
        history=callbacks.recorder.history,
        non_finite=callbacks.recorder.non_finite,
        execution=_execution_report(
            built, fit_spec, execution, devices, streamed, data_bytes, callbacks.at_epoch_end
        ),
        early_stopping=_early_stopping_report(callbacks.stopper, fit_spec),
    )
    saver = callbacks.model_checkpoint
    if saver is not None and saver.saved_epoch is not None:
        outcome.saved_model = Path(saver.filepath)
        outcome.model_checkpoint = {
            "monitor": saver.monitor,
            "saved_epoch": saver.saved_epoch,
            "best": _clean(saver.best) if saver.save_best_only else None,
        }
    if data.test is not None and not outcome.non_finite:
        logged = compile_spec.logged_names(model_spec.output_names)
        _evaluate(outcome, feed, fit_spec, logged, callbacks.stop)
    outcome.train_seconds = time.perf_counter() - started
    return outcome


@dataclass
class _BuiltModel:
    """The model to fit, its pacing, and (new models) the traced model it may keep."""

    model: keras.Model
    pacing: Pacing
    reuse_key: str | None = None
    prepared: Prepared | None = None

    def keep_traced(self) -> None:
        prepared = self.prepared
        if self.reuse_key is not None and prepared is not None and prepared.traced is not None:
            traced_models.keep(self.reuse_key, prepared.traced)


def _resumed_model(
    resume: Resume, data: TrainingData, fit_spec: FitSpec, devices: tuple[str, ...] | None
) -> _BuiltModel:
    """The checkpoint's model: it carries its Normalization, weights, optimizer state and
    compile settings."""
    with distribution(devices):
        model = keras.models.load_model(resume.path, safe_mode=True)
    pacing = _pacing(data, fit_spec, model, eager_allowed=False)
    model.steps_per_execution = pacing.steps_per_execution
    return _BuiltModel(model, pacing)


def _new_model(
    model_spec: ModelSpec,
    compile_spec: CompileSpec,
    fit_spec: FitSpec,
    data: TrainingData,
    execution: Execution,
    streamed: bool,
    devices: tuple[str, ...] | None,
) -> _BuiltModel:
    """Built from the spec (the Normalization adapted first), compiled, or a kept traced
    model of the same architecture reset to these fresh weights. Fine-tuning: the source
    model loaded (``_fine_tuned``)."""
    if model_spec.from_job is not None:
        return _fine_tuned(model_spec, compile_spec, fit_spec, data, execution, devices)
    normalizer = _normalizer(data.train, streamed) if execution.standardize else None
    adapted = _adapted_layers(model_spec, data.train, streamed)
    policy = mixed_policy() if fit_spec.mixed_precision else None
    with distribution(devices), dtype_policy(policy):
        model = build_model(model_spec, normalizer, adapted)
        eager_allowed = not fit_spec.jit_compile and not devices
        pacing = _pacing(data, fit_spec, model, eager_allowed, compile_spec)
        key = _reuse_key(
            model_spec, compile_spec, fit_spec, data, pacing, execution, streamed, devices
        )
        prepared = traced_models.prepare(
            model,
            key,
            lambda fresh: compile_model(fresh, compile_spec, fit_spec.jit_compile, pacing),
        )
    return _BuiltModel(prepared.model, pacing, key, prepared)


def _fine_tuned(
    model_spec: ModelSpec,
    compile_spec: CompileSpec,
    fit_spec: FitSpec,
    data: TrainingData,
    execution: Execution,
    devices: tuple[str, ...] | None,
) -> _BuiltModel:
    """As a script fine-tunes: ``model = keras.models.load_model(path)``, the frozen layers'
    ``trainable = False``, then ``compile`` with this job's loss, optimizer and metrics (a
    fresh optimizer: the source's state is not carried). Never a kept traced model."""
    if execution.base_model is None:
        raise ValueError(f"fine-tuning job without its source model ({model_spec.from_job})")
    with distribution(devices):
        model = keras.models.load_model(execution.base_model, safe_mode=True)
        for index, layer_spec in enumerate(model_spec.layers):
            if model_spec.frozen(index):
                layer = (
                    model.get_layer(str(layer_spec.name))
                    if model_spec.is_graph
                    else model.layers[index]
                )
                layer.trainable = False
        eager_allowed = not fit_spec.jit_compile and not devices
        pacing = _pacing(data, fit_spec, model, eager_allowed, compile_spec)
        compile_model(model, compile_spec, fit_spec.jit_compile, pacing)
    return _BuiltModel(model, pacing)


@dataclass
class _FitCallbacks:
    """The callbacks of a job's fit, run in this order at each epoch's end: the user's
    (``fit.callbacks``, in the order given, as a script lists them; ReduceLROnPlateau adds
    ``learning_rate`` to the logs), then fitq's: record the epoch, EarlyStopping decides,
    then the checkpoint and the drain see the decided state."""

    user: list[keras.callbacks.Callback]
    recorder: _EpochRecorder
    stop: _StopAtBatch | None
    stopper: checkpoints.ResumableEarlyStopping | None
    at_epoch_end: _AtEpochEnd
    model_checkpoint: checkpoints.ResumableModelCheckpoint | None = None

    @classmethod
    def for_job(
        cls, on_epoch: EpochHook | None, fit_spec: FitSpec, execution: Execution
    ) -> _FitCallbacks:
        resume = execution.resume
        state = resume.state if resume else None
        stopper = None
        if fit_spec.stopping is not None:
            stopper = checkpoints.ResumableEarlyStopping(
                state, **fit_spec.stopping.model_dump(exclude={"type"})
            )
        user: list[keras.callbacks.Callback] = []
        reducer = saver = None
        for spec in fit_spec.callbacks:
            if isinstance(spec, ReduceLROnPlateau):
                reducer = checkpoints.ResumableReduceLROnPlateau(
                    state, **spec.model_dump(exclude={"type"})
                )
                user.append(reducer)
            elif isinstance(spec, TerminateOnNaN):
                user.append(keras.callbacks.TerminateOnNaN())
            elif isinstance(spec, TensorBoard):
                if execution.tensorboard_dir is None:
                    raise ValueError("a TensorBoard callback without a log directory")
                arguments = spec.model_dump(exclude={"type"})
                user.append(
                    keras.callbacks.TensorBoard(
                        log_dir=str(execution.tensorboard_dir), profile_batch=0, **arguments
                    )
                )
            elif isinstance(spec, ModelCheckpoint):
                if execution.model_checkpoint_path is None:
                    raise ValueError("a ModelCheckpoint callback without a file to write")
                saver = checkpoints.ResumableModelCheckpoint(
                    state,
                    lambda model: users_compile_settings(model, fit_spec),
                    filepath=str(execution.model_checkpoint_path),
                    **spec.model_dump(exclude={"type"}),
                )
                user.append(saver)
            # EarlyStopping (an entry here or fit.early_stopping) is the stopper, below.
        return cls(
            user=user,
            recorder=_EpochRecorder(on_epoch, resume.history if resume else []),
            stop=None if execution.should_stop is None else _StopAtBatch(execution.should_stop),
            stopper=stopper,
            at_epoch_end=_AtEpochEnd(
                execution.checkpoint,
                execution.checkpoint_seconds,
                execution.draining,
                fit_spec.epochs,
                stopper,
                reducer,
                saver,
            ),
            model_checkpoint=saver,
        )

    def in_order(self) -> list[keras.callbacks.Callback]:
        found = (*self.user, self.recorder, self.stop, self.stopper, self.at_epoch_end)
        return [callback for callback in found if callback is not None]


def _execution_report(
    built: _BuiltModel,
    fit_spec: FitSpec,
    execution: Execution,
    devices: tuple[str, ...] | None,
    streamed: bool,
    data_bytes: int,
    at_epoch_end: _AtEpochEnd,
) -> dict[str, Any]:
    """``result.execution``: how fitq ran the job."""
    model = built.model
    resume = execution.resume
    return {
        "steps_per_execution": built.pacing.steps_per_execution,
        "traced": "reused" if built.prepared is not None and built.prepared.reused else "new",
        "pacing": built.pacing.reason,
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "mixed_precision": model.dtype_policy.name if fit_spec.mixed_precision else None,
        "mirrored_over": list(devices) if devices else None,
        "run_eagerly": bool(model.run_eagerly),
        "data": "streamed" if streamed else "in_memory",
        "data_bytes": data_bytes,
        "standardize": execution.standardize,
        # A resumed run continues from an epoch's end with the state that drew its numbers
        # (worker/checkpoints.py): on CPU and in-memory data, bit for bit the uninterrupted
        # run's.
        "resumed_from_epoch": len(resume.history) if resume else None,
        "checkpoints": at_epoch_end.saves,
        "checkpoint_seconds": round(at_epoch_end.saving, 4),
    }


def _early_stopping_report(
    stopper: checkpoints.ResumableEarlyStopping | None, fit_spec: FitSpec
) -> dict[str, Any] | None:
    if stopper is None:
        return None
    return {
        "stopped_epoch": stopper.stopped_epoch + 1 if stopper.stopped_epoch else None,
        "best_epoch": stopper.best_epoch + 1,
        "restored_best_weights": bool(
            fit_spec.stopping
            and fit_spec.stopping.restore_best_weights
            and stopper.best_weights is not None
        ),
    }


def _evaluate(
    outcome: TrainingOutcome,
    feed: _MemoryFeed | _StreamedFeed,
    fit_spec: FitSpec,
    logged: list[str],
    stop: _StopAtBatch | None,
) -> None:
    """``model.evaluate`` on the test data: the test loss and every compiled metric (and
    each output's loss, in a model of several)."""
    scores = outcome.model.evaluate(
        **feed.test_arguments(fit_spec),
        callbacks=[stop] if stop else [],
        verbose=0,
        return_dict=True,
    )
    outcome.test_loss = _clean(scores["loss"])
    outcome.test_metrics = {name: _clean(scores[name]) for name in logged}


# What eager kernels compute bit for bit as the traced graph does (tested): these layers,
# losses, metrics and optimizers with a number for a learning rate. Recurrent layers do not
# (graph mode fuses their loop), nor do the hinge and focal losses, r2_score, top-k or a
# schedule's arithmetic (measured: the last bit of a loss or metric differs), so jobs using
# anything else stay traced, as a hand-written ``fit`` is.
EAGER_EXACT = frozenset(
    {"Dense", "Dropout", "Activation", "Flatten", "Reshape", "BatchNormalization",
     "LayerNormalization", "Normalization"}
)  # fmt: skip
EAGER_EXACT_LOSSES = frozenset(
    {"mse", "mae", "huber", "log_cosh", "binary_crossentropy", "categorical_crossentropy",
     "sparse_categorical_crossentropy"}
)  # fmt: skip
EAGER_EXACT_OPTIMIZERS = frozenset({"adam", "adamw", "sgd", "rmsprop", "adagrad"})
EAGER_EXACT_METRICS = frozenset(
    {"accuracy", "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
     "MeanAbsolutePercentageError", "BinaryAccuracy", "CategoricalAccuracy",
     "SparseCategoricalAccuracy", "AUC"}
)  # fmt: skip


def _eager_exact(model: keras.Model, compile_spec: CompileSpec) -> bool:
    optimizer = compile_spec.optimizer
    return (
        all(type(layer).__name__ in EAGER_EXACT for layer in model.layers)
        and all(loss.type in EAGER_EXACT_LOSSES for loss in compile_spec.losses)
        and optimizer.type in EAGER_EXACT_OPTIMIZERS
        and not optimizer.scheduled
        and all(
            isinstance(m, str) and (METRIC_CLASSES[m] or m) in EAGER_EXACT_METRICS
            for m in compile_spec.all_metrics
        )
    )


def _pacing(
    data: TrainingData,
    fit: FitSpec,
    model: keras.Model,
    eager_allowed: bool,
    compile_spec: CompileSpec | None = None,
) -> Pacing:
    """``compile_spec``: a new model's (None: a resumed one, never eager)."""
    # Sample weights: not measured eager against traced, so such jobs stay traced.
    weighted = data.train.sample_weight is not None
    exact = compile_spec is not None and _eager_exact(model, compile_spec) and not weighted
    eager_allowed = eager_allowed and exact
    rows = data.train.count
    held_out = split_rows(rows, fit.validation_split)[1] if fit.validation_split else 0
    evaluated = held_out + sum(a.count for a in (data.validation, data.test) if a is not None)
    pacing = plan_pacing(
        rows - held_out, fit.batch_size, fit.epochs, model.count_params(), evaluated
    )
    if pacing.run_eagerly and not eager_allowed:
        return plan_pacing(rows, fit.batch_size, max(fit.epochs, 10**6), model.count_params())
    return pacing


def _reuse_key(
    model: ModelSpec,
    compile_spec: CompileSpec,
    fit: FitSpec,
    data: TrainingData,
    pacing: Pacing,
    execution: Execution,
    streamed: bool,
    devices: tuple[str, ...] | None,
) -> str | None:
    """What a kept traced model must share with this job (None: never reused). Not kept:
    eager jobs (nothing traced), streamed data, mirrored models, and models with a fitted
    Normalization (``standardize``), whose adapted mean and variance a trace holds as
    constants."""
    adapted = any(isinstance(layer, Normalization) and layer.adapted for layer in model.layers)
    if (
        pacing.run_eagerly
        or streamed
        or devices
        or execution.standardize
        or adapted
        or not execution.reuse_traced
    ):
        return None
    return reuse_key(
        model=model.model_dump(mode="json"),
        compile=compile_spec.model_dump(mode="json"),
        batch_size=fit.batch_size,
        jit_compile=fit.jit_compile,
        mixed_precision=fit.mixed_precision,
        policy=keras.config.dtype_policy().name,
        steps_per_execution=pacing.steps_per_execution,
        x=(data.train.x.shape[1:], str(data.train.x.dtype)),
        y=(data.train.y.shape[1:], str(data.train.y.dtype)),
        groups=[
            [g.model_dump(mode="json") for g in groups or []]
            for groups in (data.train.x_groups, data.train.y_groups)
        ],
        # Fitting with sample weights traces another train step.
        weighted=data.train.sample_weight is not None,
        label_encoding=execution.label_encoding,
    )


def _normalizer(
    train: Arrays, streamed: bool, spec: Normalization | None = None, input_name: str = ""
) -> keras.layers.Normalization:
    """``norm = Normalization(); norm.adapt(x_train)``: on the training rows of the model's
    input (``input_name``'s, of a model of several); streamed data: the same statistics
    computed a chunk at a time."""
    kwargs = spec.keras_kwargs() if spec is not None else {}
    if not streamed:
        layer = keras.layers.Normalization(**kwargs)
        x = train.model_x(train.materialize()[0])
        layer.adapt(x[input_name] if isinstance(x, dict) else x)
        return layer
    group = next((g for g in train.x_groups or [] if g.name == input_name), None)
    columns = _GroupColumns(train.x, group) if group is not None else train.x
    mean, variance = column_moments(columns, train.row_index())
    return keras.layers.Normalization(mean=mean, variance=variance, **kwargs)


class _GroupColumns:
    """One named input's rows of a packed x, read as ``column_moments`` reads an array."""

    def __init__(self, x: np.ndarray, group: ColumnGroup) -> None:
        self.x, self.group = x, group
        self.shape = (len(x), *group.shape)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.group.take(np.asarray(self.x[rows]))


def _adapted_layers(model: ModelSpec, train: Arrays, streamed: bool) -> Prebuilt:
    """The spec's Normalization layers without statistics, each adapted to the training rows
    of the model input it is on (the checks allow them nowhere else)."""
    adapted: Prebuilt = {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, Normalization) and layer.adapted:
            name = model.layer_inputs(index)[0] if model.is_graph else ""
            adapted[index] = _normalizer(train, streamed, layer, name)
    return adapted


def _model_targets(
    arrays: Arrays, y: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None
) -> Any:
    """Rows of y as the loss takes them: the output's (or each named output's) columns, then
    a single output's labels encoded."""
    grouped = arrays.model_y(y)
    return transform(grouped) if transform else grouped


class _MemoryFeed:
    """Arrays in memory, handed to Keras as a user would: results equal hand-run Keras."""

    def __init__(
        self, data: TrainingData, transform: Callable[[np.ndarray], np.ndarray] | None
    ) -> None:
        def load(arrays: Arrays | None) -> tuple[Any, ...] | None:
            if arrays is None:
                return None
            x, y = arrays.materialize()
            loaded = (arrays.model_x(x), _model_targets(arrays, y, transform))
            weights = arrays.weights(x, y)
            return loaded if weights is None else (*loaded, weights)

        self.train = load(data.train)
        self.validation = load(data.validation)
        self.test = load(data.test)

    def fit_arguments(self, fit: FitSpec) -> dict[str, Any]:
        assert self.train is not None
        return {
            "x": self.train[0],
            "y": self.train[1],
            "sample_weight": self.train[2] if len(self.train) > 2 else None,
            "batch_size": fit.batch_size,
            "validation_data": self.validation,
            "validation_split": fit.validation_split or 0.0,
            "shuffle": fit.shuffle,
        }

    def test_arguments(self, fit: FitSpec) -> dict[str, Any]:
        assert self.test is not None
        weights = self.test[2] if len(self.test) > 2 else None
        return {
            "x": self.test[0],
            "y": self.test[1],
            "sample_weight": weights,
            "batch_size": fit.batch_size,
        }


class _StreamedFeed:
    """Batches read from the memory maps; ``validation_split`` keeps Keras's meaning (the last
    fraction of the training rows, before shuffling)."""

    def __init__(
        self,
        data: TrainingData,
        fit: FitSpec,
        seed: int,
        transform: Callable[[np.ndarray], np.ndarray] | None,
        initial_epoch: int = 0,
    ) -> None:
        rows = data.train.row_index()
        validation: RowBatches | None = None
        if fit.validation_split:
            kept = split_rows(len(rows), fit.validation_split)[0]
            validation = self._batches(data.train, rows[kept:], fit, seed, transform, shuffle=False)
            rows = rows[:kept]
        elif data.validation is not None:
            validation = self._batches(data.validation, None, fit, seed, transform, shuffle=False)
        self.train = self._batches(data.train, rows, fit, seed, transform, shuffle=fit.shuffle)
        self.train.skip_epochs(initial_epoch)  # a resumed run: the order of its next epoch
        self.validation = validation
        self.test = (
            self._batches(data.test, None, fit, seed, transform, shuffle=False)
            if data.test
            else None
        )

    @staticmethod
    def _batches(
        arrays: Arrays,
        rows: np.ndarray | None,
        fit: FitSpec,
        seed: int,
        transform: Callable[[np.ndarray], np.ndarray] | None,
        *,
        shuffle: bool,
    ) -> RowBatches:
        chosen = rows if rows is not None else arrays.row_index()

        def target(y: np.ndarray) -> Any:
            return _model_targets(arrays, y, transform)

        return RowBatches(
            arrays.x,
            arrays.y,
            chosen,
            fit.batch_size,
            shuffle=shuffle,
            seed=seed,
            transform_x=arrays.model_x if arrays.x_groups else None,
            transform_y=target if transform or arrays.y_groups else None,
            sample_weight=arrays.weights if arrays.sample_weight else None,
        )

    def fit_arguments(self, fit: FitSpec) -> dict[str, Any]:
        return {"x": self.train, "validation_data": self.validation}

    def test_arguments(self, fit: FitSpec) -> dict[str, Any]:
        assert self.test is not None
        return {"x": self.test}
