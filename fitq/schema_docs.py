"""Descriptions for the JSON schema (and so for ``/openapi.json`` and generated clients):
every model and every property says what it is. A property documented where it is declared
(``Field(description=…)``) keeps its words; others take them from the glossary below, by
``Model.property`` or by property name; an argument of a Keras class (a layer, loss,
optimizer, metric, schedule or callback) otherwise points at that Keras argument."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

_KERAS_DEFAULT = "; absent: Keras's default"

GLOSSARY: dict[str, str] = {
    # ---- sweeps ---------------------------------------------------------------------------
    "FloatParam.low": "The smallest value drawn.",
    "FloatParam.high": "The largest value drawn.",
    "FloatParam.log": "Draw on a log scale (low above 0, no step): for learning rates.",
    "FloatParam.step": "Draw low plus multiples of step only (absent: any value).",
    "IntParam.low": "The smallest value drawn.",
    "IntParam.high": "The largest value drawn (or the last step below it).",
    "IntParam.step": "Draw low plus multiples of step only.",
    "IntParam.log": "Draw on a log scale (low of 1 or more, step 1).",
    "CategoricalParam.choices": "The values drawn from: numbers, strings, booleans or null.",
    "Objective.metric": "A key of the job's history (loss, val_loss, a metric, val_ and a "
    "metric): its value at a trial's last epoch is the trial's score.",
    "Objective.direction": "Whether a lower (minimize) or higher (maximize) score is better.",
    "SweepCreate.space": "A dotted path into the job (compile.optimizer.learning_rate, "
    "model.layers.1.units, fit.batch_size) and the parameter each trial draws for it.",
    "SweepCreate.objective": "What each trial scores, and which way is better.",
    "SweepCreate.sampler": "Optuna's sampler: tpe (TPESampler), random (RandomSampler) or "
    "grid (GridSampler, over int and categorical parameters).",
    "SweepCreate.pruner": "Optuna's pruner, asked after each epoch of a trial: none, median "
    "(MedianPruner) or hyperband (HyperbandPruner from 1 epoch to the job's epochs, "
    "reduction factor 3).",
    "SweepCreate.max_trials": "Trials to run in all (a grid runs at most its size).",
    "SweepCreate.parallelism": "Trials queued or running at once, at most.",
    "SweepRead.trials": "Every trial so far, by number.",
    # ---- webhooks -------------------------------------------------------------------------
    "WebhookDeliveryRead.attempts": "Every attempt so far, in order.",
    # ---- spec: shared Keras arguments -----------------------------------------------------
    "type": "Which kind this is: the Keras name (a layer class, a loss or optimizer name).",
    "name": "The layer's name, unique in the model; a graph model's layers name each other by it.",
    "inputs": "A graph model's layer: the names of the model inputs or earlier layers it is "
    "called on (absent: the layer before).",
    "trainable": "false: the layer's weights are not trained (layer.trainable = False).",
    "input_shape": "The shape of one input row (no batch dimension): on the model or its "
    "first layer.",
    "units": "Dimensionality of the output (Keras's units).",
    "activation": "The activation function, by Keras name.",
    "recurrent_activation": "The activation of the recurrent step's gates.",
    "use_bias": "Whether the layer adds a bias vector.",
    "kernel_initializer": "How the kernel weights start, by Keras initializer name.",
    "bias_initializer": "How the bias starts, by Keras initializer name.",
    "recurrent_initializer": "How the recurrent kernel starts, by Keras initializer name.",
    "depthwise_initializer": "How the depthwise kernel starts, by Keras initializer name.",
    "pointwise_initializer": "How the pointwise kernel starts, by Keras initializer name.",
    "embeddings_initializer": "How the embedding matrix starts, by Keras initializer name.",
    "kernel_regularizer": "L1/L2 penalty on the kernel weights.",
    "bias_regularizer": "L1/L2 penalty on the bias.",
    "depthwise_regularizer": "L1/L2 penalty on the depthwise kernel.",
    "pointwise_regularizer": "L1/L2 penalty on the pointwise kernel.",
    "l1": "The L1 penalty factor.",
    "l2": "The L2 penalty factor.",
    "rate": "The fraction of inputs dropped while training.",
    "seed": "The layer's own seed; absent: drawn from the job's seeded generator.",
    "filters": "The number of output channels.",
    "kernel_size": "The convolution window: one size, or one per spatial axis.",
    "strides": "The step of the window: one size, or one per spatial axis.",
    "padding": "valid (no padding) or same (output as large as the input / strides).",
    "pool_size": "The pooling window: one size, or one per spatial axis.",
    "depth_multiplier": "Output channels per input channel of the depthwise step.",
    "momentum": "The momentum factor.",
    "epsilon": "A small number added for numerical stability.",
    "center": "Whether to add the learned offset (beta).",
    "scale": "Whether to multiply by the learned scale (gamma).",
    "axis": "The axis it works along (-1: the last).",
    "axes": "The axis (or one per input) of the dot product.",
    "normalize": "L2-normalise along the axes before the dot product (cosine proximity).",
    "layer": "The wrapped layer, as a layer object of its own.",
    "merge_mode": "How the forward and backward outputs combine: concat, sum, mul or ave.",
    "return_sequences": "Return the output of every step, not just the last.",
    "dropout": "The fraction of the inputs dropped while training.",
    "recurrent_dropout": "The fraction of the recurrent state dropped while training.",
    "input_dim": "The vocabulary size: token ids are 0 … input_dim - 1.",
    "output_dim": "The size of each embedding vector.",
    "mask_zero": "Whether token id 0 is padding, masked in later layers.",
    "mask_value": "Time steps whose every feature equals this value are masked.",
    "target_shape": "The output shape of one row (one -1 allowed, inferred).",
    "n": "How many times the input is repeated.",
    "size": "The upsampling factor: one, or one per spatial axis.",
    "interpolation": "How values between pixels are computed (nearest, bilinear, …).",
    "offset": "Added after scaling.",
    "stddev": "The standard deviation of the noise.",
    "num_heads": "The number of attention heads.",
    "key_dim": "The size of each head's query and key.",
    "value_dim": "The size of each head's value; absent: key_dim.",
    "mean": "The mean to subtract: one number or one per feature; absent with variance: "
    "adapted to the training rows.",
    "variance": "The variance to divide by (its square root): one number or one per feature.",
    "invert": "Undo the normalization instead (x * sqrt(variance) + mean).",
    "factor": "How far it transforms: a fraction, or a [low, high] range.",
    "height_factor": "How far along the height: a fraction, or a [low, high] range.",
    "width_factor": "How far along the width: a fraction, or a [low, high] range.",
    "height": "The output height, in pixels.",
    "width": "The output width, in pixels.",
    "fill_mode": "How points outside the input are filled (reflect, wrap, constant, nearest).",
    "fill_value": "The value outside the input with fill_mode constant.",
    "value_range": "The range of the input values, [low, high].",
    "RandomFlip.mode": "Which flips: horizontal, vertical, or horizontal_and_vertical.",
    # ---- losses, metrics, optimizers, schedules, callbacks --------------------------------
    "from_logits": "Whether the model outputs logits (true) or probabilities (false).",
    "label_smoothing": "Targets are squeezed towards 1 / classes by this fraction.",
    "alpha": "The weighting factor (focal losses: of the positive class; schedules: the "
    "floor, as a fraction of the initial rate).",
    "gamma": "The focusing parameter of the focal loss.",
    "apply_class_balancing": "Whether to weight classes by alpha.",
    "delta": "Where the Huber loss turns from quadratic to linear.",
    "thresholds": "The probability (or several) above which a prediction counts as positive.",
    "threshold": "The probability above which a prediction counts as positive.",
    "top_k": "Count a prediction as positive when its class is in the k highest.",
    "class_id": "Compute the metric for this class only.",
    "average": "How per-class values combine: micro, macro or weighted (needed for outputs "
    "wider than 1).",
    "class_aggregation": "How per-output R² values combine.",
    "num_regressors": "The number of regressors, for the adjusted R².",
    "k": "How many of the highest predictions count.",
    "num_thresholds": "How many thresholds the curve is approximated with.",
    "curve": "ROC or PR (precision-recall).",
    "multi_label": "Whether each output is its own binary label.",
    "MetricBase.name": "The metric's key in history and results (absent: its type).",
    "learning_rate": "The learning rate: a number, or a schedule object.",
    "clipnorm": "Clip each weight's gradient to this norm.",
    "clipvalue": "Clip each gradient value to [-clipvalue, clipvalue].",
    "global_clipnorm": "Clip all gradients together to this global norm.",
    "beta_1": "The decay rate of the first-moment estimates.",
    "beta_2": "The decay rate of the second-moment estimates.",
    "amsgrad": "Whether to use the AMSGrad variant.",
    "weight_decay": "The decoupled weight decay factor.",
    "nesterov": "Whether to use Nesterov momentum.",
    "rho": "The discounting factor of the gradient history.",
    "centered": "Whether to normalise by the gradient's estimated variance.",
    "initial_accumulator_value": "Where the accumulators start.",
    "beta_2_decay": "The decay rate of the second moment (Adafactor).",
    "epsilon_1": "Regularisation constant of the squared gradient (Adafactor).",
    "epsilon_2": "Regularisation constant of the parameter scale (Adafactor).",
    "clip_threshold": "The threshold of the update's RMS (Adafactor).",
    "relative_step": "Whether the learning rate follows the step count (Adafactor).",
    "class_name": "The schedule's Keras class name.",
    "config": "The schedule's arguments, as keras.optimizers.schedules.serialize writes them.",
    "module": "Keras's module of the schedule (as serialize writes it; optional).",
    "registered_name": "Keras's registered name (as serialize writes it; optional).",
    "initial_learning_rate": "The learning rate at step 0.",
    "decay_steps": "The number of steps a decay period lasts.",
    "decay_rate": "The factor the rate is multiplied by each period.",
    "staircase": "Decay in steps (whole periods) rather than continuously.",
    "end_learning_rate": "The rate at the end of the decay.",
    "power": "The power of the polynomial.",
    "cycle": "Whether to restart the decay after decay_steps.",
    "boundaries": "The steps where the rate changes.",
    "values": "The rate before the first boundary, between boundaries, and after the last.",
    "warmup_target": "The rate the warmup climbs to.",
    "warmup_steps": "The number of warmup steps.",
    "first_decay_steps": "The steps of the first period.",
    "t_mul": "How much longer each period is than the last.",
    "m_mul": "How much lower each period's initial rate is than the last's.",
    "monitor": "The logged value watched (a history key, e.g. val_loss).",
    "mode": "min, max, or auto (from the monitor's name).",
    "patience": "Epochs without improvement before it acts.",
    "min_delta": "The smallest change that counts as an improvement.",
    "restore_best_weights": "Whether the model ends with the best epoch's weights.",
    "cooldown": "Epochs to wait after a reduction before watching again.",
    "min_lr": "The rate is never reduced below this.",
    "save_best_only": "Keep the model of the best epoch only (else the last).",
    "initial_value_threshold": "The monitor must beat this before a model is kept.",
    "histogram_freq": "Every how many epochs weight histograms are written (0: never).",
    "write_graph": "Whether the model's graph is written.",
    "write_steps_per_second": "Whether training speed is logged.",
    "update_freq": "epoch, batch, or every how many batches values are written.",
    # ---- spec: model, compile, fit, data --------------------------------------------------
    "layers": "The model's layers, in order.",
    "GraphInput.name": "The input's name (keras.Input(name=…)): what layers and keyed data "
    "refer to.",
    "GraphInput.shape": "The shape of one input row (no batch dimension).",
    "loss": "The loss: a Keras name, an object with its arguments, or one per output.",
    "optimizer": "The optimizer: a Keras name, or an object with its arguments.",
    "metrics": "The metrics: names or objects, a list, or lists keyed by output.",
    "batch_size": "Rows per gradient step (fit's batch_size).",
    "epochs": "Passes over the training rows (fit's epochs).",
    "shuffle": "Whether fit shuffles the training rows each epoch.",
    "early_stopping": "keras.callbacks.EarlyStopping's arguments (or list it in callbacks).",
    "spec_version": "The spec's version (1).",
    "model": "The model: layers, a Keras model's JSON, or a fine-tuning of a job.",
    "compile": "model.compile's loss, optimizer and metrics.",
    "fit": "model.fit's settings and callbacks.",
    "resources": "What the job trains on.",
    "data": "Training, validation and test data, inline or by dataset id.",
    "train": "The training data.",
    "validation": "Validation data, evaluated at each epoch's end.",
    "test": "Test data, evaluated once after training (the result's test metrics).",
    "test_split": "Hold out the last fraction of the training rows for evaluate.",
    "shuffle_before_split": "Shuffle the training rows (job's seed) before any split.",
    "standardize": "A Normalization adapted to the training rows is put first.",
    "label_encoding": "How classification targets were encoded (None: used as sent).",
    "dataset_id": "A stored dataset's id (ds_…).",
    "from_job": "Fine-tuning: the succeeded job whose trained model this job starts from.",
    "freeze": "Fine-tuning: layers kept as trained, by index or name.",
    "classes": "The target values, in order: class i is classes[i].",
    "names": "The original text labels of the classes, when the target was text.",
    "one_hot": "Whether targets are one-hot rows (else class indexes).",
    "ColumnGroup.name": "The model input's or output's name.",
    "ColumnGroup.shape": "The shape of one row of it.",
    "ColumnGroup.columns": "The [start, stop) column ranges it takes, in order.",
    "array": "Which stored array holds the weights: x or y.",
    "column": "The column of that array.",
    "rows": "The number of rows.",
    "x_shape": "The features' shape, rows first.",
    "y_shape": "The targets' shape, rows first.",
    "x_groups": "A model of several inputs: each input's columns of x.",
    "y_groups": "A model of several outputs: each output's columns of y.",
    "sample_weight": "Where each row's sample weight is.",
    # ---- job reads --------------------------------------------------------------------------
    "id": "The id.",
    "status": "Where it is in its life.",
    "created_at": "When it was created (UTC).",
    "started_at": "When a worker started its current or last attempt (UTC).",
    "finished_at": "When it ended (UTC).",
    "spec": "The job as stored: data by dataset id, seed always set.",
    "progress": "Epochs done, epochs asked for, time left, queue position.",
    "history": "One entry per epoch done: epoch, loss and every logged metric.",
    "result": "What a succeeded job produced.",
    "error": "Why it failed.",
    "attempts": "How many times a worker started it.",
    "cancel_requested": "Whether a cancel was asked for (it takes effect at the next batch).",
    "epoch": "Epochs done.",
    "eta_seconds": "Estimated seconds left.",
    "test_metrics": "Every compiled metric (and each output's loss) on the test data.",
    "model_summary": "Layers, output shapes and parameter counts.",
    "train_seconds": "Seconds spent in fit and evaluate.",
    "model_url": "Where the trained .keras file is downloaded.",
    "message": "What went wrong, in words.",
    "JobError.type": "The kind of failure.",
    "time": "When it happened (UTC).",
    "JobEventRead.data": "The event's fields.",
    "has_more": "Whether another page follows.",
    "next_after": "The cursor of the next page (pass it as after).",
    "Health.status": "ok.",
    "Readiness.status": "ready, or what is not.",
    # ---- lists and datasets -------------------------------------------------------------------
    "JobList.data": "This page's jobs, newest first.",
    "DatasetList.data": "This page's datasets, newest first.",
    "EventList.data": "This page's events, oldest first.",
    "TenantList.data": "Each tenant's usage.",
    "format": "How the upload is read: csv, npz or jsonl.",
    "filename": "The uploaded file's name.",
    "x_dtype": "The stored features' dtype.",
    "y_dtype": "The stored targets' dtype.",
    "feature_names": "The feature columns' names, in order.",
    "target_names": "The target columns' names, in order.",
    "target_columns": "Per target column: its statistics.",
    "size_bytes": "The bytes stored.",
    "ColumnStats.name": "The column's name.",
    "min": "The smallest value.",
    "max": "The largest value.",
    "std": "The standard deviation.",
    "missing": "How many values were missing.",
    # ---- errors, validation, usage ------------------------------------------------------------
    "ErrorBody.type": "The kind of error.",
    "details": "One entry per field refused.",
    "loc": "The field, as a dotted path into the request (data.train.x.0).",
    "received": "The value received, as sent (large values summarised).",
    "ErrorEnvelope.error": "The error.",
    "valid": "Always true in a 200 answer (a refusal is a 422).",
    "estimated_work": "Training rows, epochs, and their product.",
    "train_rows": "Rows trained on, after the splits.",
    "samples_x_epochs": "Training rows times epochs.",
    "LayerSummary.type": "The Keras layer class.",
    "LayerSummary.name": "The layer's name, if it has one.",
    "LayerSummary.inputs": "A graph's layer: what it is called on.",
    "output_shape": "The output shape, batch dimension first (as null).",
    "params": "Its parameter count.",
    "ModelSummary.inputs": "A graph's inputs by name: their shapes.",
    "ModelSummary.outputs": "A graph's outputs by name: their shapes.",
    "ModelSummary.input_shape": "The input shape, batch first (a graph's first input).",
    "total_params": "Every parameter, trainable or not.",
    "trainable_params": "The parameters training updates.",
    "tenant": "The tenant's id.",
    "active_jobs": "Queued and running jobs, against the limit.",
    "dataset_bytes": "Bytes of stored datasets, against the quota.",
    "gpu_seconds_per_day": "GPU-seconds used in the last 24 hours, against the quota.",
    "parameters_per_job": "The largest model a job may train.",
    "used": "How much is used.",
    "limit": "The most allowed (null: no limit).",
}


def describe(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """``json_schema_extra`` of fitq's models: a description for the model and for each of
    its properties that has none."""
    keras = getattr(model, "keras_reference", lambda: None)()
    if "description" not in schema and keras is not None:
        schema["description"] = f"{keras}, with its arguments as Keras takes them."
    bases = [cls.__name__ for cls in model.__mro__]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if "description" in prop:
            continue
        found = next((GLOSSARY[f"{b}.{name}"] for b in bases if f"{b}.{name}" in GLOSSARY), None)
        text = found or GLOSSARY.get(name)
        if text is None and keras is not None:
            text = f"{keras}'s {name} argument."
        if text is None:
            continue
        if keras is not None and name not in required and name not in _FITQ_FIELDS:
            text = text.removesuffix(".") + _KERAS_DEFAULT + "."
        prop["description"] = text


# Fields of a Keras-named object that are fitq's, not the Keras class's arguments.
_FITQ_FIELDS = {"type", "name", "inputs", "trainable", "input_shape", "seed"}


class Documented(BaseModel):
    """A model of the API whose JSON schema describes it and each of its properties."""

    model_config = ConfigDict(json_schema_extra=describe)


def described_with_examples(*examples: dict[str, Any]) -> Any:
    """``json_schema_extra`` for a model that also shows examples (API explorers and
    schemathesis start from them)."""

    def extra(schema: dict[str, Any], model: type[BaseModel]) -> None:
        describe(schema, model)
        schema["examples"] = list(examples)

    return extra
