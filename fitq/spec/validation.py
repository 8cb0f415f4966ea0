"""Shape, parameter and data checks in pure Python, before a job is queued: every layer's
output shape and parameter count (tests hold them equal to Keras's), the data's shapes and
values against the model's input, output and loss, the splits, and the parameter budget."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fitq.errors import SpecError
from fitq.schema_docs import Documented
from fitq.spec.arguments import did_you_mean
from fitq.spec.compile import CompileSpec, OutputCompile
from fitq.spec.data import LabelEncoding
from fitq.spec.job import FitSpec, ModelSpec
from fitq.spec.layers import Embedding, Normalization, Shape
from fitq.spec.losses import LossBase
from fitq.spec.metrics import SPARSE_METRICS, metric_type


class LayerSummary(Documented):
    """One layer of the model: its type, name, output shape and parameter count."""

    type: str
    name: str | None = None
    inputs: list[str] | None = None  # a graph's layer: what it is called on
    output_shape: list[int | None]  # batch dimension first, as None
    params: int


class ModelSummary(Documented):
    """The model as Keras's summary shows it: layers, shapes and parameter counts."""

    layers: list[LayerSummary]
    input_shape: list[int | None]  # a graph's first input
    output_shape: list[int | None]  # a graph's first output
    # A graph's inputs and outputs by name, in order (a stack has one of each, unnamed).
    inputs: dict[str, list[int | None]] | None = None
    outputs: dict[str, list[int | None]] | None = None
    total_params: int
    trainable_params: int


class EstimatedWork(Documented):
    """The work a job asks for: training rows after the splits, times epochs."""

    train_rows: int
    epochs: int
    samples_x_epochs: int


@dataclass(frozen=True)
class ValueRange:
    """What is known of an array's values (inline arrays; datasets once they carry stats)."""

    low: float
    high: float
    integral: bool


@dataclass(frozen=True)
class SplitData:
    x_shape: Sequence[int]
    y_shape: Sequence[int]
    x_values: ValueRange | None = None
    y_values: ValueRange | None = None
    y_classes: Sequence[float] | None = None  # distinct target values, when few and integral
    labels: Sequence[str] | None = None  # a text target's labels: y holds their codes
    # Named inputs or outputs (data keyed by the model's input or output names): each part
    # as if it were the whole x (inputs) or the whole y (outputs).
    x_parts: Mapping[str, SplitData] | None = None
    y_parts: Mapping[str, SplitData] | None = None
    weighted: bool = False  # rows carry sample weights


def summarize(
    model: ModelSpec, max_params: int | None = None, *, standardize: bool = False
) -> ModelSummary:
    shape = model.resolved_input_shape
    assert shape is not None  # guaranteed by ModelSpec's validator
    input_shape: Shape = shape
    layers: list[LayerSummary] = []
    if standardize:  # a Normalization adapted to the training rows, first
        adapted = Normalization(type="Normalization").param_count(shape)
        layers.append(
            LayerSummary(type="Normalization", output_shape=[None, *shape], params=adapted)
        )
    trainable = 0
    # A graph's tensors by name, its inputs' first; a stack's layer takes the one before.
    tensors: dict[str, Shape] = {i.name: i.shape for i in model.inputs or []}
    for i, layer in enumerate(model.layers):
        loc = f"model.layers.{i}"
        wired = model.layer_inputs(i) if model.is_graph else None
        # Embedding takes the data's token ids: a model input, as is.
        on_input = i == 0 if wired is None else len(wired) == 1 and wired[0] in model.input_names
        if isinstance(layer, Embedding) and not on_input:
            where = "as the first layer" if wired is None else "on a model input"
            raise SpecError(loc, f"expected Embedding only {where}, received it at {i}")
        if isinstance(layer, Normalization) and layer.adapted and not on_input:
            where = "as the first layer" if wired is None else "on a model input"
            raise SpecError(
                loc,
                f"expected a Normalization without mean and variance (adapted to the training "
                f"rows) only {where}, received it at {i}: give its mean and variance there",
            )
        shapes = [tensors[name] for name in wired] if wired is not None else [shape]
        shape = layer.graph_output_shape(shapes, loc)  # checks the inputs first
        params = layer.graph_param_count(shapes)
        if not model.frozen(i) and layer.trainable is not False:
            trainable += layer.graph_trainable_param_count(shapes)
        if layer.name is not None:
            tensors[layer.name] = shape
        layers.append(
            LayerSummary(
                type=layer.type,
                name=layer.name,
                inputs=wired,
                output_shape=[None, *shape],
                params=params,
            )
        )
    named_inputs = named_outputs = None
    if model.is_graph:
        named_inputs = {name: [None, *tensors[name]] for name in model.input_names}
        named_outputs = {name: [None, *tensors[name]] for name in model.graph_outputs}
        shape = tensors[model.graph_outputs[0]]
    total = sum(layer.params for layer in layers)
    if max_params is not None and total > max_params:
        raise SpecError(
            "model.layers",
            f"expected at most {max_params:,} parameters (FITQ_MAX_PARAMS), received a model "
            f"with {total:,}",
        )
    return ModelSummary(
        layers=layers,
        input_shape=[None, *input_shape],
        output_shape=[None, *shape],
        inputs=named_inputs,
        outputs=named_outputs,
        total_params=total,
        trainable_params=trainable,
    )


def split_rows(rows: int, fraction: float) -> tuple[int, int]:
    """Keras's ``validation_split`` arithmetic: the last ``fraction`` of the rows is held out."""
    kept = math.floor(rows * (1.0 - fraction))
    return kept, rows - kept


def check_data(
    model: ModelSpec,
    summary: ModelSummary,
    compile_spec: CompileSpec,
    splits: Mapping[str, SplitData],
) -> LabelEncoding | None:
    """``splits`` maps ``train`` / ``validation`` / ``test`` to their shapes (rows first).
    Returns how a classification target will be encoded, if it needs to be (a model of one
    output only: the targets of several outputs come as their losses take them)."""
    inputs = summary.inputs or {"": summary.input_shape}
    outputs = summary.outputs or {model.output_names[0]: summary.output_shape}
    compiled = _per_output(compile_spec, list(outputs))
    encoding = None
    if "train" in splits:
        train = _parts("train", "y", splits["train"], list(outputs), model.is_graph)
        for name, output in compiled.items():
            planned = plan_labels(output, _shape_of(outputs[name]), train[name])
            if planned is not None and len(outputs) > 1:
                raise SpecError(
                    f"data.train.y.{name}",
                    f"{output.loss.type} expected targets as it takes them (class indices "
                    "0..k-1, 0/1, or one row per class) in a model of several outputs, "
                    f"received classes {', '.join(f'{c:g}' for c in planned.classes[:5])}: fitq "
                    "encodes labels for a model of one output only",
                )
            encoding = planned
    embeddings = _embedding_inputs(model)
    for split, data in splits.items():
        for name, part in _parts(split, "x", data, list(inputs), model.is_graph).items():
            model_in = _shape_of(inputs[name])
            loc = f"data.{split}.x{f'.{name}' if data.x_parts else ''}"
            if tuple(part.x_shape[1:]) != model_in:
                what = f"the model's input {name!r}" if name else "the model's input"
                raise SpecError(
                    loc,
                    f"expected rows of shape {list(model_in)} ({what}), "
                    f"received rows of shape {list(part.x_shape[1:])}",
                )
            if name in embeddings and part.x_values is not None:
                _check_token_ids(loc, part.x_values, embeddings[name])
        for name, part in _parts(split, "y", data, list(outputs), model.is_graph).items():
            loc = f"data.{split}.y{f'.{name}' if data.y_parts else ''}"
            model_out = _shape_of(outputs[name])
            if encoding is not None:
                _check_classes(loc, part, encoding)
            _check_targets(loc, part, model_out, compiled[name], encoding)
    return encoding


def _shape_of(shape: Sequence[int | None]) -> Shape:
    return tuple(d for d in shape[1:] if d is not None)


def _per_output(compile_spec: CompileSpec, outputs: list[str]) -> dict[str, OutputCompile]:
    try:
        return compile_spec.per_output(outputs)
    except ValueError as exc:
        loc, _, message = str(exc).partition(": ")
        raise SpecError(loc, message) from None


def _embedding_inputs(model: ModelSpec) -> dict[str, int]:
    """The model inputs an Embedding layer reads token ids from → its ``input_dim``."""
    found = {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, Embedding):
            wired = model.layer_inputs(index) if model.is_graph else [""]
            if index == 0 or model.is_graph:
                found[wired[0]] = layer.input_dim
    return found


def _parts(
    split: str, axis: str, data: SplitData, names: list[str], keyed: bool
) -> dict[str, SplitData]:
    """A split's data per model input (``axis`` "x") or output ("y"): the named parts, or the
    one array for a model of one. ``keyed``: the model names its inputs and outputs (a
    graph); a stack's one input and output are never keyed."""
    parts = data.x_parts if axis == "x" else data.y_parts
    what = "inputs" if axis == "x" else "outputs"
    loc = f"data.{split}.{axis}"
    if parts is None:
        if len(names) > 1:
            raise SpecError(
                loc,
                f"expected an object of arrays keyed by the model's {what} "
                f"({', '.join(map(repr, names))}), received one array",
            )
        return {names[0]: data}
    if not keyed:
        raise SpecError(
            loc,
            f"expected one array (a Sequential model has one input and one output), received "
            f"an object keyed by {', '.join(map(repr, parts))}",
        )
    unknown = [key for key in parts if key not in names]
    if unknown:
        raise SpecError(
            f"{loc}.{unknown[0]}",
            f"expected keys naming the model's {what} ({', '.join(map(repr, names))}), "
            f"received {unknown[0]!r}{did_you_mean(unknown[0], names)}",
        )
    missing = [name for name in names if name not in parts]
    if missing:
        raise SpecError(
            loc, f"expected an array for every model {what[:-1]}, received none for {missing[0]!r}"
        )
    return {name: parts[name] for name in names}


def plan_labels(
    compile_spec: OutputCompile, model_out: Shape, train: SplitData
) -> LabelEncoding | None:
    """Classification targets become what the loss expects: classes 0..k-1 (sparse), one-hot
    rows (categorical, from one label column), 0/1 (binary, two classes). Regression targets and
    targets already in that form are left as they are."""
    family = compile_spec.loss.family
    classes = list(train.y_classes) if train.y_classes is not None else None
    labels = list(train.labels) if train.labels is not None else None
    if family == "regression" or classes is None:
        return None
    scalar = tuple(train.y_shape[1:]) in ((), (1,))
    one_hot = family == "categorical" and scalar and model_out[-1] >= 2
    if family == "categorical" and not one_hot:
        return None  # already one row per class
    if family in ("binary", "hinge") and (len(classes) > 2 or not scalar):
        return None  # several binary targets, or values the range check will refuse
    contiguous = classes == list(range(len(classes)))
    if family in ("binary", "hinge") and set(classes) <= {0.0, 1.0}:
        contiguous = True
    if family == "hinge" and set(classes) <= {-1.0, 1.0}:
        contiguous = True  # Keras's hinge takes -1/1 as given (and makes 0/1 into -1/1)
    if contiguous and not one_hot and labels is None:
        return None
    return LabelEncoding(classes=classes, names=labels, one_hot=one_hot)


def _check_classes(loc: str, data: SplitData, encoding: LabelEncoding) -> None:
    if data.y_classes is None:
        return
    unseen = sorted(set(data.y_classes) - set(encoding.classes))
    if unseen:
        raise SpecError(
            loc,
            f"expected only classes seen in the training targets, received "
            f"{', '.join(f'{c:g}' for c in unseen[:5])}",
        )


def _check_token_ids(loc: str, values: ValueRange, input_dim: int) -> None:
    if not values.integral or values.low < 0 or values.high >= input_dim:
        raise SpecError(
            loc,
            f"expected integer token ids in [0, {input_dim}) for the Embedding layer, received "
            f"values in [{values.low:g}, {values.high:g}]"
            f"{'' if values.integral else ' that are not all integers'}",
        )


def _check_targets(
    loc: str,
    data: SplitData,
    model_out: Shape,
    compile_spec: OutputCompile,
    encoding: LabelEncoding | None,
) -> None:
    """The targets against the loss and the model's output: its width for a class loss, the
    targets' shape, then their classes (encoded) or values (raw)."""
    _check_output_width(compile_spec.loss, model_out)
    _check_target_shape(loc, data, model_out, compile_spec.loss, encoding)
    scalars = tuple(data.y_shape[1:]) == ()
    one_hot = encoding is not None and encoding.one_hot
    for index, metric in enumerate(compile_spec.metrics):
        if metric_type(metric) in SPARSE_METRICS and one_hot:
            raise SpecError(
                f"{compile_spec.metrics_loc}.{index}",
                f"{metric_type(metric)} expected integer class labels, received targets that "
                f"{compile_spec.loss.type} takes one-hot (fitq encodes them so): use "
                f"{metric_type(metric).removeprefix('sparse_')}",
            )
        if metric_type(metric) == "f1_score" and scalars:
            raise SpecError(
                f"{compile_spec.metrics_loc}.{index}",
                f"f1_score expected 2-D targets of shape [rows, {model_out[-1]}] "
                f"(as Keras's metric takes them), received scalars in {loc}: send each row's "
                "target as a list ([[0.0], [1.0], …])",
            )
    if encoding is not None:
        _check_class_count(loc, compile_spec.loss, encoding, model_out[-1])
    elif data.y_values is not None:
        _check_target_values(loc, data, model_out, compile_spec, data.y_values)


def _sparse_shapes(model_out: Shape) -> tuple[Shape, Shape]:
    """Shapes of integer class labels for an output of ``model_out``: with or without a
    trailing 1."""
    return model_out[:-1], (*model_out[:-1], 1)


def _check_output_width(loss: LossBase, model_out: Shape) -> None:
    sparse = loss.family == "sparse"
    if loss.family in ("sparse", "categorical") and model_out[-1] < 2:
        raise SpecError(
            "model.layers",
            f"{loss.type} expected an output of width ≥ 2 (one column per class), received "
            f"width {model_out[-1]}"
            f"{': use binary_crossentropy for two classes in one column' if not sparse else ''}",
        )


def _check_target_shape(
    loc: str, data: SplitData, model_out: Shape, loss: LossBase, encoding: LabelEncoding | None
) -> None:
    y_rows = tuple(data.y_shape[1:])
    if loss.family == "sparse" or (encoding is not None and encoding.one_hot):
        if y_rows not in _sparse_shapes(model_out):
            raise SpecError(
                loc,
                f"{loss.type} expected integer class labels of shape {list(model_out[:-1])}, "
                f"received targets of shape {list(y_rows)}",
            )
    elif y_rows != model_out and not (y_rows == () and model_out == (1,)):
        raise SpecError(
            loc,
            f"expected targets of shape {list(model_out)} (the model's output)"
            f"{' or scalars' if model_out == (1,) else ''}, "
            f"received targets of shape {list(y_rows)}",
        )


def _check_class_count(loc: str, loss: LossBase, encoding: LabelEncoding, width: int) -> None:
    classes = len(encoding.classes)
    limit = 2 if loss.family in ("binary", "hinge") else width
    if classes > limit:
        raise SpecError(
            loc,
            f"{loss.type} expected at most {limit} classes (the output width), received "
            f"{classes} distinct targets",
        )


def _check_target_values(
    loc: str, data: SplitData, model_out: Shape, compile_spec: OutputCompile, values: ValueRange
) -> None:
    """Raw (not encoded) targets: labels in range for a sparse loss, probabilities for a
    binary or categorical one, labels for ``sparse_categorical_accuracy``."""
    loss, width = compile_spec.loss, model_out[-1]
    sparse = loss.family == "sparse"
    if sparse and (not values.integral or values.low < 0 or values.high >= width):
        raise SpecError(
            loc,
            f"{loss.type} expected integer class labels in [0, {width}), received values in "
            f"[{values.low:g}, {values.high:g}]"
            f"{'' if values.integral else ' that are not all integers'}",
        )
    if loss.family in ("binary", "categorical") and (values.low < 0 or values.high > 1):
        raise SpecError(
            loc,
            f"{loss.type} expected targets in [0, 1], received values in "
            f"[{values.low:g}, {values.high:g}]",
        )
    if loss.family == "hinge" and (values.low < -1 or values.high > 1):
        raise SpecError(
            loc,
            f"{loss.type} expected targets -1 or 1 (or 0 or 1), received values in "
            f"[{values.low:g}, {values.high:g}]",
        )
    y_rows = tuple(data.y_shape[1:])
    for metric in compile_spec.metrics:
        name = metric_type(metric)
        labels = y_rows in _sparse_shapes(model_out) and values.integral
        if name in SPARSE_METRICS and not sparse and not labels:
            raise SpecError(
                compile_spec.metrics_loc,
                f"{name} expected integer class labels of shape {list(model_out[:-1])}, "
                f"received targets of shape {list(y_rows)}",
            )


def _check_metrics(compile_spec: OutputCompile, model_out: Shape) -> None:
    """Metrics that report one number only for some outputs."""
    for index, metric in enumerate(compile_spec.metrics):
        average = getattr(metric, "average", None)
        if metric_type(metric) == "f1_score" and average is None and model_out[-1] > 1:
            raise SpecError(
                f"{compile_spec.metrics_loc}.{index}",
                "f1_score without an average reports one value per class; fitq records one "
                f'number per metric: expected {{"type": "f1_score", "average": '
                f'"macro"}} (or "micro", "weighted") for an output of width '
                f"{model_out[-1]}, received no average",
            )


def check_splits(
    fit: FitSpec,
    logged_names: list[str],
    train_rows: int,
    has_validation: bool,
    test_split: float | None,
) -> EstimatedWork:
    """Rows left after ``data.test_split`` and ``fit.validation_split``, and early stopping's
    monitor against what will be logged."""
    rows = train_rows
    if test_split:
        rows, held_out = split_rows(rows, test_split)
        if rows < 1 or held_out < 1:
            raise SpecError(
                "data.test_split",
                f"expected a split that leaves rows on both sides, received {test_split} of "
                f"{train_rows} rows ({rows} to train, {held_out} to test)",
            )
    if fit.validation_split:
        kept, held_out = split_rows(rows, fit.validation_split)
        if kept < 1 or held_out < 1:
            raise SpecError(
                "fit.validation_split",
                f"expected a split that leaves rows on both sides, received "
                f"{fit.validation_split} of {rows} rows ({kept} to train, {held_out} to validate)",
            )
        rows = kept
    logged = history_keys(logged_names, validated=has_validation or bool(fit.validation_split))
    watching = [(f"fit.callbacks.{i}", c) for i, c in enumerate(fit.callbacks)]
    if fit.early_stopping is not None:
        watching.insert(0, ("fit.early_stopping", fit.early_stopping))
    for loc, callback in watching:
        monitor = getattr(callback, "monitor", None)
        if monitor is None:
            continue
        _check_monitor(f"{loc}.monitor", monitor, logged)
        name = monitor.removeprefix("val_")
        per_output_loss = name != "loss" and name.endswith("_loss")
        if callback.type in ("EarlyStopping", "ModelCheckpoint") and per_output_loss:
            if getattr(callback, "mode", None) == "auto":
                raise SpecError(
                    f"{loc}.mode",
                    f"expected mode 'min' with monitor {monitor!r} (Keras cannot tell which "
                    "way an output's loss improves), received 'auto'",
                )
    return EstimatedWork(train_rows=rows, epochs=fit.epochs, samples_x_epochs=rows * fit.epochs)


def _check_fit_options(
    fit: FitSpec, compile_spec: CompileSpec, compiled: dict[str, OutputCompile], model_out: Shape
) -> None:
    """``class_weight`` against the loss's classes; ReduceLROnPlateau against a schedule."""
    if fit.class_weight is not None and len(compiled) > 1:
        raise SpecError(
            "fit.class_weight",
            f"expected class_weight only for a model of one output (as Keras), received a "
            f"model of {len(compiled)}",
        )
    loss = next(iter(compiled.values())).loss
    if fit.class_weight is not None:
        if loss.family == "regression":
            raise SpecError(
                "fit.class_weight",
                f"expected a classification loss with class_weight, received {loss.type!r} "
                "(its targets are numbers, not classes)",
            )
        classes = 2 if loss.family in ("binary", "hinge") else model_out[-1]
        outside = sorted(int(k) for k in fit.class_weight if int(k) >= classes)
        if outside:
            raise SpecError(
                "fit.class_weight",
                f"expected class indices in [0, {classes}) ({loss.type} with an output of "
                f"width {model_out[-1]}), received {outside[0]}",
            )
    scheduled = getattr(compile_spec.optimizer, "scheduled", False)
    for index, callback in enumerate(fit.callbacks):
        if callback.type == "ReduceLROnPlateau" and scheduled:
            raise SpecError(
                f"fit.callbacks.{index}",
                "ReduceLROnPlateau expected a number as compile.optimizer.learning_rate, "
                "received a schedule (Keras cannot set the rate a schedule computes)",
            )


def history_keys(logged_names: list[str], *, validated: bool) -> list[str]:
    """Every key of a job's per-epoch history: ``loss`` and what ``compile`` logs
    (``CompileSpec.logged_names``), each with its ``val_`` twin when the job validates."""
    logged = ["loss", *logged_names]
    return logged + [f"val_{name}" for name in logged] if validated else logged


def _check_monitor(loc: str, monitor: str, logged: list[str]) -> None:
    if monitor not in logged:
        raise SpecError(
            loc,
            f"expected one of {', '.join(map(repr, logged))} (what this job logs), "
            f"received {monitor!r}",
        )


class Validation(Documented):
    """What ``POST /v1/validate`` answers, and what ``POST /v1/jobs`` checks the same way."""

    valid: bool = True
    model_summary: ModelSummary
    estimated_work: EstimatedWork
    label_encoding: LabelEncoding | None = None


def validate_job(
    model: ModelSpec,
    compile_spec: CompileSpec,
    fit: FitSpec,
    splits: Mapping[str, SplitData],
    *,
    test_split: float | None,
    max_params: int | None,
    standardize: bool = False,
) -> Validation:
    if standardize and model.from_job is not None:
        raise SpecError(
            "data.standardize",
            "expected no standardize when fine-tuning: the source model is loaded as trained, "
            "with its own Normalization if it had one",
        )
    if standardize and len(model.input_names) > 1:
        raise SpecError(
            "data.standardize",
            f"expected standardize only for a model of one input, received a model of "
            f"{len(model.input_names)}: add a Normalization layer on each input instead",
        )
    summary = summarize(model, max_params, standardize=standardize)
    outputs = summary.outputs or {model.output_names[0]: summary.output_shape}
    compiled = _per_output(compile_spec, list(outputs))
    for name, output in compiled.items():
        _check_metrics(output, _shape_of(outputs[name]))
    model_out = _shape_of(summary.output_shape)
    _check_fit_options(fit, compile_spec, compiled, model_out)
    if fit.class_weight is not None and "train" in splits and splits["train"].weighted:
        raise SpecError(
            "fit.class_weight",
            "expected class_weight or sample weights on the training data, received both "
            "(Keras's fit takes one or the other: fold the class weights into the sample "
            "weights)",
        )
    encoding = check_data(model, summary, compile_spec, splits)
    work = check_splits(
        fit,
        compile_spec.logged_names(list(outputs)),
        splits["train"].x_shape[0],
        "validation" in splits,
        test_split,
    )
    return Validation(model_summary=summary, estimated_work=work, label_encoding=encoding)
