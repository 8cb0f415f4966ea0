"""Losses, metrics, optimizers, learning-rate schedules, callbacks and class weights by their
Keras names: each job is accepted by ``POST /v1/validate`` and trains bit-identical to the
same Keras code written by hand (CPU, in-memory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

import worker.training
from fitq.settings import Settings
from fitq.spec import JobCreate
from worker.pacing import Pacing
from worker.traced import traced_models
from worker.training import Arrays, TrainingData, TrainingOutcome, train

SEED = 21
EPOCHS = 3


def _arrays(kind: str, rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 4), dtype=np.float32)
    score = x @ np.array([1.0, -2.0, 0.5, 1.5], dtype=np.float32)
    if kind == "regression":
        y = (score + 0.1 * rng.standard_normal(rows)).astype(np.float32)
    elif kind == "counts":  # what poisson and msle take: positive targets
        y = np.abs(score + 0.1 * rng.standard_normal(rows)).astype(np.float32) + 0.1
    elif kind == "binary":  # rows of one value: f1_score takes 2-D targets only
        y = (score > np.median(score)).astype(np.float32)[:, None]
    elif kind == "hinge":
        y = np.where(score > np.median(score), 1.0, -1.0).astype(np.float32)
    else:
        classes = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
        y = np.eye(3, dtype=np.float32)[classes] if kind == "categorical" else classes
        y = y.astype(np.float32)
    return {"x": x, "y": y}


# The output layer each target kind takes, by hand and in the spec.
OUTPUTS = {
    "regression": (1, "linear"),
    "counts": (1, "softplus"),
    "binary": (1, "sigmoid"),
    "hinge": (1, "tanh"),
    "categorical": (3, "softmax"),
    "sparse": (3, "softmax"),
}


@dataclass
class Case:
    """The spec's compile and fit fragments, and the same by hand."""

    kind: str
    compile: dict[str, Any]
    by_hand: Callable[[], dict[str, Any]]  # model.compile's arguments, built fresh
    fit: dict[str, Any] = field(default_factory=dict)
    fit_by_hand: Callable[[], dict[str, Any]] = dict


S = keras.optimizers.schedules
CASES: dict[str, Case] = {
    "mean_squared_error by its Keras name, nadam": Case(
        "regression",
        {"loss": "mean_squared_error", "optimizer": "nadam", "metrics": ["mean_absolute_error"]},
        lambda: {"loss": "mean_squared_error", "optimizer": "nadam",
                 "metrics": ["mean_absolute_error"]},
    ),
    "poisson, msle, r2_score, adamax": Case(
        "counts",
        {"loss": "poisson", "optimizer": {"type": "Adamax", "learning_rate": 0.01},
         "metrics": ["msle", "r2_score", "log_cosh_error"]},
        lambda: {"loss": "poisson", "optimizer": keras.optimizers.Adamax(learning_rate=0.01),
                 "metrics": ["msle", "r2_score", "log_cosh_error"]},
    ),
    "ExponentialDecay schedule": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "sgd", "learning_rate": {
            "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.05, "decay_steps": 3, "decay_rate": 0.5,
                       "staircase": True}}}, "metrics": ["mae"]},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.SGD(
            learning_rate=S.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5, staircase=True)
        ), "metrics": ["mae"]},
    ),
    "CosineDecay with warmup, as Keras serialises it": Case(
        "regression",
        {"loss": "huber", "optimizer": {"type": "adam", "learning_rate": S.serialize(
            S.CosineDecay(0.0, decay_steps=10, warmup_target=0.02, warmup_steps=4))}},
        lambda: {"loss": "huber", "optimizer": keras.optimizers.Adam(
            S.CosineDecay(0.0, decay_steps=10, warmup_target=0.02, warmup_steps=4))},
    ),
    "PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecayRestarts": Case(
        "regression",
        {"loss": "mae", "optimizer": {"type": "rmsprop", "learning_rate": {
            "class_name": "PiecewiseConstantDecay",
            "config": {"boundaries": [4, 8], "values": [0.01, 0.005, 0.001]}}}},
        lambda: {"loss": "mae", "optimizer": keras.optimizers.RMSprop(
            S.PiecewiseConstantDecay([4, 8], [0.01, 0.005, 0.001]))},
    ),
    "PolynomialDecay on lion": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "lion", "learning_rate": {
            "class_name": "PolynomialDecay",
            "config": {"initial_learning_rate": 0.003, "decay_steps": 8, "power": 2.0}}}},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.Lion(
            S.PolynomialDecay(0.003, decay_steps=8, power=2.0))},
    ),
    "InverseTimeDecay and CosineDecayRestarts": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "adamw", "learning_rate": {
            "class_name": "CosineDecayRestarts",
            "config": {"initial_learning_rate": 0.01, "first_decay_steps": 3}}}},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.AdamW(
            S.CosineDecayRestarts(0.01, first_decay_steps=3))},
    ),
    "adafactor": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "adafactor", "learning_rate": {
            "class_name": "InverseTimeDecay",
            "config": {"initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.3}}}},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.Adafactor(
            S.InverseTimeDecay(0.01, decay_steps=2, decay_rate=0.3))},
    ),
    "binary focal crossentropy, precision, recall, auc": Case(
        "binary",
        {"loss": {"type": "binary_focal_crossentropy", "gamma": 1.5, "apply_class_balancing": True},
         "metrics": ["precision", "recall", {"type": "auc", "curve": "PR", "name": "pr_auc"},
                     {"type": "precision", "thresholds": 0.3, "name": "precision_at_03"},
                     "f1_score", "bce"]},
        lambda: {"loss": keras.losses.BinaryFocalCrossentropy(gamma=1.5,
                                                              apply_class_balancing=True),
                 "optimizer": "adam",
                 "metrics": ["precision", "recall", keras.metrics.AUC(curve="PR", name="pr_auc"),
                             keras.metrics.Precision(thresholds=0.3, name="precision_at_03"),
                             "f1_score", "bce"]},
    ),
    "class_weight": Case(
        "binary",
        {"loss": "binary_crossentropy", "metrics": ["binary_accuracy"]},
        lambda: {"loss": "binary_crossentropy", "optimizer": "adam",
                 "metrics": ["binary_accuracy"]},
        fit={"class_weight": {"0": 1.0, "1": 3.5}},
        fit_by_hand=lambda: {"class_weight": {0: 1.0, 1: 3.5}},
    ),
    "hinge on -1/1 targets": Case(
        "hinge",
        {"loss": "hinge", "metrics": ["hinge"]},
        lambda: {"loss": "hinge", "optimizer": "adam", "metrics": ["hinge"]},
    ),
    "squared_hinge": Case(
        "hinge",
        {"loss": "squared_hinge"},
        lambda: {"loss": "squared_hinge", "optimizer": "adam"},
    ),
    "categorical focal, kld, top-k, f1 macro": Case(
        "categorical",
        {"loss": {"type": "categorical_focal_crossentropy", "alpha": 0.5},
         "metrics": [{"type": "top_k_categorical_accuracy", "k": 2}, "kl_divergence",
                     {"type": "f1_score", "average": "macro"}, "categorical_hinge"]},
        lambda: {"loss": keras.losses.CategoricalFocalCrossentropy(alpha=0.5),
                 "optimizer": "adam",
                 "metrics": [keras.metrics.TopKCategoricalAccuracy(k=2), "kl_divergence",
                             keras.metrics.F1Score(average="macro"), "categorical_hinge"]},
    ),
    "kl_divergence by its alias, categorical_hinge": Case(
        "categorical",
        {"loss": "kld", "optimizer": "Adam", "metrics": ["accuracy"]},
        lambda: {"loss": "kld", "optimizer": "adam", "metrics": ["accuracy"]},
    ),
    "categorical_hinge loss, class_weight on one-hot targets": Case(
        "categorical",
        {"loss": "categorical_hinge"},
        lambda: {"loss": "categorical_hinge", "optimizer": "adam"},
        fit={"class_weight": {"2": 2.0}},
        fit_by_hand=lambda: {"class_weight": {2: 2.0}},
    ),
    "sparse top-k": Case(
        "sparse",
        {"loss": "sparse_categorical_crossentropy",
         "metrics": [{"type": "sparse_top_k_categorical_accuracy", "k": 2}]},
        lambda: {"loss": "sparse_categorical_crossentropy", "optimizer": "adam",
                 "metrics": [keras.metrics.SparseTopKCategoricalAccuracy(k=2)]},
    ),
    "ReduceLROnPlateau and TerminateOnNaN": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.05}},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.SGD(learning_rate=0.05)},
        fit={"callbacks": [
            {"type": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 0, "factor": 0.5,
             "min_delta": 10.0},
            {"type": "TerminateOnNaN"}]},
        fit_by_hand=lambda: {"callbacks": [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0, factor=0.5,
                                              min_delta=10.0),
            keras.callbacks.TerminateOnNaN()]},
    ),
    "EarlyStopping as a callbacks entry": Case(
        "regression",
        {"loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.05}, "metrics": ["mae"]},
        lambda: {"loss": "mse", "optimizer": keras.optimizers.SGD(learning_rate=0.05),
                 "metrics": ["mae"]},
        fit={"callbacks": [
            {"type": "EarlyStopping", "monitor": "val_mae", "patience": 0, "min_delta": 10.0,
             "restore_best_weights": True}]},
        fit_by_hand=lambda: {"callbacks": [
            keras.callbacks.EarlyStopping(monitor="val_mae", patience=0, min_delta=10.0,
                                          restore_best_weights=True)]},
    ),
}  # fmt: skip


def _body(
    case: Case, train: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int = SEED
) -> dict:
    units, activation = OUTPUTS[case.kind]
    return {
        "model": {
            "layers": [
                {"type": "Dense", "units": 8, "input_shape": [4], "activation": "relu"},
                {"type": "Dense", "units": units, "activation": activation},
            ]
        },
        "compile": case.compile,
        "fit": {"batch_size": 16, "epochs": EPOCHS, "validation_split": 0.25, **case.fit},
        "data": {
            "train": {"x": train["x"].tolist(), "y": train["y"].tolist()},
            "test": {"x": test["x"].tolist(), "y": test["y"].tolist()},
        },
        "seed": seed,
    }


def _by_hand(
    case: Case, train: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int = SEED
) -> tuple:
    units, activation = OUTPUTS[case.kind]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    model.compile(**case.by_hand())
    history = model.fit(
        train["x"], train["y"], batch_size=16, epochs=EPOCHS, validation_split=0.25, verbose=0,
        **case.fit_by_hand(),
    )  # fmt: skip
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    return history.history, scores


def _fitq(body: dict, test: dict[str, np.ndarray]) -> TrainingOutcome:
    job = JobCreate.model_validate(body)
    return train(
        job.model,
        job.compile,
        job.fit,
        TrainingData(Arrays(job.data.train.x, job.data.train.y), test=Arrays(test["x"], test["y"])),
        seed=body["seed"],
    )


def _assert_same(outcome: TrainingOutcome, history: dict, scores: dict) -> None:
    assert set(outcome.history[0]) - {"epoch"} == set(history)
    for key, values in history.items():
        by_hand = [float(np.asarray(v).item()) for v in values]  # F1Score: one per class
        assert [epoch[key] for epoch in outcome.history] == by_hand, key
    assert outcome.test_loss == scores["loss"]
    assert outcome.test_metrics == {
        k: float(np.asarray(v).item()) for k, v in scores.items() if k != "loss"
    }


@pytest.mark.parametrize("name", list(CASES))
def test_trains_as_the_same_keras_code_by_hand(name: str, api: tuple[TestClient, Settings]) -> None:
    case = CASES[name]
    train_arrays, test = _arrays(case.kind, 64, 0), _arrays(case.kind, 24, 1)
    body = _body(case, train_arrays, test)
    client, _ = api
    checked = client.post("/v1/validate", json=body)
    assert checked.status_code == 200, checked.json()
    _assert_same(_fitq(body, test), *_by_hand(case, train_arrays, test))


@pytest.mark.parametrize(
    "name", ["ExponentialDecay schedule", "ReduceLROnPlateau and TerminateOnNaN"]
)
def test_a_reused_trace_starts_each_job_afresh(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule's step, the rate ReduceLROnPlateau lowered, the weights: a job on a kept
    traced model starts from none of the last job's (traced pacing: eager keeps nothing)."""
    traced = Pacing(run_eagerly=False, steps_per_execution=2, reason="test")
    monkeypatch.setattr(worker.training, "plan_pacing", lambda *args, **kwargs: traced)
    case = CASES[name]
    train_arrays, test = _arrays(case.kind, 64, 0), _arrays(case.kind, 24, 1)
    traced_models.clear()
    for seed, kept in ((SEED, "new"), (SEED + 1, "reused")):
        outcome = _fitq(_body(case, train_arrays, test, seed), test)
        assert outcome.execution["traced"] == kept
        _assert_same(outcome, *_by_hand(case, train_arrays, test, seed))


# ---- layers ---------------------------------------------------------------------------------

L = keras.layers
LAYER_CASES: dict[str, tuple[tuple[int, ...], list[dict[str, Any]], Callable[[], list[Any]]]] = {
    "image augmentation and convolutions": (
        (8, 8, 3),
        [
            {"type": "RandomFlip", "mode": "horizontal"},
            {"type": "RandomRotation", "factor": 0.1},
            {"type": "RandomZoom", "height_factor": [-0.2, 0.1]},
            {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1},
            {"type": "RandomContrast", "factor": 0.2, "value_range": [0, 1]},
            {"type": "RandomBrightness", "factor": 0.1, "value_range": [0, 1]},
            {"type": "RandomCrop", "height": 7, "width": 7},
            {"type": "Rescaling", "scale": 2.0, "offset": -1.0},
            {"type": "SeparableConv2D", "filters": 4, "kernel_size": 3, "depth_multiplier": 2,
             "activation": "relu"},
            {"type": "DepthwiseConv2D", "kernel_size": 2, "padding": "same"},
            {"type": "SpatialDropout2D", "rate": 0.2},
            {"type": "Conv2DTranspose", "filters": 3, "kernel_size": 2, "strides": 2},
            {"type": "UpSampling2D", "size": [1, 2], "interpolation": "bilinear"},
            {"type": "GlobalMaxPooling2D"},
            {"type": "GaussianNoise", "stddev": 0.1},
            {"type": "Dense", "units": 1},
        ],
        lambda: [
            L.RandomFlip(mode="horizontal"),
            L.RandomRotation(0.1),
            L.RandomZoom((-0.2, 0.1)),
            L.RandomTranslation(0.1, 0.1),
            L.RandomContrast(0.2, value_range=(0, 1)),
            L.RandomBrightness(0.1, value_range=(0, 1)),
            L.RandomCrop(7, 7),
            L.Rescaling(2.0, offset=-1.0),
            L.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu"),
            L.DepthwiseConv2D(2, padding="same"),
            L.SpatialDropout2D(0.2),
            L.Conv2DTranspose(3, 2, strides=2),
            L.UpSampling2D((1, 2), interpolation="bilinear"),
            L.GlobalMaxPooling2D(),
            L.GaussianNoise(0.1),
            L.Dense(1),
        ],
    ),
    "wrapped and simple recurrent layers": (
        (10, 3),
        [
            {"type": "Masking", "mask_value": 0.0},
            {"type": "Bidirectional",
             "layer": {"type": "LSTM", "units": 4, "return_sequences": True}},
            {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 3}},
            {"type": "Bidirectional", "merge_mode": "ave",
             "layer": {"type": "SimpleRNN", "units": 3, "return_sequences": True,
                       "dropout": 0.1}},
            {"type": "SpatialDropout1D", "rate": 0.2},
            {"type": "GRU", "units": 3},
            {"type": "RepeatVector", "n": 4},
            {"type": "SimpleRNN", "units": 2},
            {"type": "GaussianDropout", "rate": 0.1},
            {"type": "Normalization", "mean": [0.1, -0.1], "variance": [2.0, 0.5]},
            {"type": "Dense", "units": 1},
        ],
        lambda: [
            L.Masking(0.0),
            L.Bidirectional(L.LSTM(4, return_sequences=True)),
            L.TimeDistributed(L.Dense(3)),
            L.Bidirectional(L.SimpleRNN(3, return_sequences=True, dropout=0.1), merge_mode="ave"),
            L.SpatialDropout1D(0.2),
            L.GRU(3),
            L.RepeatVector(4),
            L.SimpleRNN(2),
            L.GaussianDropout(0.1),
            L.Normalization(mean=[0.1, -0.1], variance=[2.0, 0.5]),
            L.Dense(1),
        ],
    ),
    "transposed and separable convolutions over steps": (
        (12, 2),
        [
            {"type": "Conv1DTranspose", "filters": 3, "kernel_size": 3, "strides": 2,
             "trainable": False},
            {"type": "SeparableConv1D", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "UpSampling1D", "size": 2},
            {"type": "GlobalMaxPooling1D"},
            {"type": "Dense", "units": 1},
        ],
        lambda: [
            L.Conv1DTranspose(3, 3, strides=2, trainable=False),
            L.SeparableConv1D(4, 3, padding="same"),
            L.UpSampling1D(2),
            L.GlobalMaxPooling1D(),
            L.Dense(1),
        ],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_layers_train_as_the_same_keras_layers_by_hand(name: str) -> None:
    shape, layers, by_hand = LAYER_CASES[name]
    rng = np.random.default_rng(3)
    x = rng.random((48, *shape), dtype=np.float32)
    y = x.reshape(48, -1).mean(axis=1).astype(np.float32)
    test = {"x": x[:16] * 0.5, "y": y[:16]}
    body = {
        "model": {"input_shape": list(shape), "layers": layers},
        "compile": {"loss": "mse", "metrics": ["mae"]},
        "fit": {"batch_size": 16, "epochs": 3, "validation_split": 0.25},
        "data": {"train": {"x": x.tolist(), "y": y.tolist()}},
        "seed": SEED,
    }
    outcome = _fitq(body, test)

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input(shape), *by_hand()])
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0)
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    _assert_same(outcome, history.history, scores)


# ---- spec_from_keras reads how the model was compiled -----------------------------------------


def _classifier() -> keras.Model:
    return keras.Sequential(
        [keras.Input((4,)), L.Dense(8, activation="relu"), L.Dense(1, activation="sigmoid")]
    )


def test_spec_from_keras_reads_the_compiled_loss_optimizer_and_metrics() -> None:
    import json

    import fitq

    def compiled() -> keras.Model:
        model = _classifier()
        model.compile(
            loss=keras.losses.BinaryCrossentropy(label_smoothing=0.1),
            optimizer=keras.optimizers.Adam(0.01, beta_2=0.99),
            metrics=["accuracy", keras.metrics.Precision(thresholds=0.3, name="p30"), "auc"],
        )
        return model

    spec = fitq.spec_from_keras(compiled(), batch_size=16, epochs=EPOCHS, validation_split=0.25)
    json.dumps(spec)  # plain JSON: what jobs.create sends
    assert spec["compile"]["loss"] == {"type": "binary_crossentropy", "from_logits": False,
                                       "label_smoothing": 0.1}  # fmt: skip
    assert spec["compile"]["optimizer"]["type"] == "adam"
    assert spec["compile"]["metrics"][:2] == [
        "accuracy", {"type": "precision", "name": "p30", "thresholds": 0.3}
    ]  # fmt: skip

    train_arrays, test = _arrays("binary", 64, 0), _arrays("binary", 24, 1)
    spec["data"] = {"train": {"x": train_arrays["x"].tolist(), "y": train_arrays["y"].tolist()}}
    spec["seed"] = SEED
    outcome = _fitq(spec, test)
    keras.utils.set_random_seed(SEED)
    model = compiled()
    history = model.fit(
        train_arrays["x"], train_arrays["y"], batch_size=16, epochs=EPOCHS,
        validation_split=0.25, verbose=0,
    )  # fmt: skip
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    _assert_same(outcome, history.history, scores)


def test_spec_from_keras_takes_keras_objects_and_refuses_what_it_cannot_carry() -> None:
    import json

    import fitq
    from fitq.errors import SpecError

    spec = fitq.spec_from_keras(
        _classifier(), loss=keras.losses.Huber(delta=2.0), optimizer=keras.optimizers.SGD(0.1)
    )
    json.dumps(spec)
    assert spec["compile"]["loss"] == {"type": "huber", "delta": 2.0}
    assert spec["compile"]["optimizer"]["learning_rate"] == pytest.approx(0.1)
    with pytest.raises(SpecError, match="expected reduction at its Keras default") as refused:
        fitq.spec_from_keras(_classifier(), loss=keras.losses.MeanSquaredError(reduction="sum"))
    assert refused.value.details[0].loc == "compile.loss.reduction"
    model = _classifier()
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(use_ema=True))
    with pytest.raises(SpecError, match="expected use_ema at its Keras default"):
        fitq.spec_from_keras(model)


# ---- graph models (Keras's functional API) ------------------------------------------------------


def _residual_by_hand() -> keras.Model:
    x = keras.Input((4,), name="x")
    h1 = L.Dense(8, activation="relu", name="h1")(x)
    h2 = L.Dense(8, activation="relu", name="h2")(h1)
    res = L.Add(name="res")([h1, h2])
    wide = L.Dense(3, name="wide")(x)
    both = L.Concatenate(name="both")([res, wide])
    drop = L.Dropout(0.2, name="drop")(both)
    return keras.Model(x, L.Dense(1, name="out")(drop))


def _merges_by_hand() -> keras.Model:
    x = keras.Input((4,), name="x")
    a = L.Dense(4, activation="tanh", name="a")(x)
    b = L.Dense(4, activation="sigmoid", name="b")(x)
    products = [L.Multiply(name="m")([a, b]), L.Subtract(name="s")([a, b])]
    mixed = [L.Average(name="avg")(products), L.Maximum(name="max")([a, b])]
    low = L.Minimum(name="min")(mixed)
    dot = L.Dot(axes=1, normalize=True, name="dot")([low, a])
    return keras.Model(x, L.Dense(1, name="out")(L.Concatenate(name="c")([low, dot])))


def _attention_by_hand() -> keras.Model:
    x = keras.Input((6, 4), name="x")
    q = L.Dense(8, name="q")(x)
    attended = L.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1, name="mha")(q, q)
    summed = L.Add(name="skip")([q, attended])
    normed = L.LayerNormalization(name="norm")(summed)
    pooled = L.GlobalAveragePooling1D(name="pool")(normed)
    return keras.Model(x, L.Dense(1, name="out")(pooled))


GRAPH_CASES: dict[str, tuple[dict[str, Any], Callable[[], keras.Model]]] = {
    "residual Add, Concatenate of two branches": (
        {"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "h1", "units": 8, "activation": "relu"},
            {"type": "Dense", "name": "h2", "units": 8, "activation": "relu"},
            {"type": "Add", "name": "res", "inputs": ["h1", "h2"]},
            {"type": "Dense", "name": "wide", "units": 3, "inputs": ["x"]},
            {"type": "Concatenate", "name": "both", "inputs": ["res", "wide"]},
            {"type": "Dropout", "name": "drop", "rate": 0.2},
            {"type": "Dense", "name": "out", "units": 1},
        ]},
        _residual_by_hand,
    ),
    "Multiply, Subtract, Average, Maximum, Minimum, Dot": (
        {"inputs": [{"name": "x", "shape": [4]}], "layers": [
            {"type": "Dense", "name": "a", "units": 4, "activation": "tanh"},
            {"type": "Dense", "name": "b", "units": 4, "activation": "sigmoid", "inputs": ["x"]},
            {"type": "Multiply", "name": "m", "inputs": ["a", "b"]},
            {"type": "Subtract", "name": "s", "inputs": ["a", "b"]},
            {"type": "Average", "name": "avg", "inputs": ["m", "s"]},
            {"type": "Maximum", "name": "max", "inputs": ["a", "b"]},
            {"type": "Minimum", "name": "min", "inputs": ["avg", "max"]},
            {"type": "Dot", "name": "dot", "axes": 1, "normalize": True, "inputs": ["min", "a"]},
            {"type": "Concatenate", "name": "c", "inputs": ["min", "dot"]},
            {"type": "Dense", "name": "out", "units": 1},
        ], "outputs": ["out"]},
        _merges_by_hand,
    ),
    "self-attention with a skip connection": (
        {"inputs": [{"name": "x", "shape": [6, 4]}], "layers": [
            {"type": "Dense", "name": "q", "units": 8},
            {"type": "MultiHeadAttention", "name": "mha", "num_heads": 2, "key_dim": 4,
             "dropout": 0.1, "inputs": ["q", "q"]},
            {"type": "Add", "name": "skip", "inputs": ["q", "mha"]},
            {"type": "LayerNormalization", "name": "norm"},
            {"type": "GlobalAveragePooling1D", "name": "pool"},
            {"type": "Dense", "name": "out", "units": 1},
        ]},
        _attention_by_hand,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "source"),
    [*((name, "graph") for name in GRAPH_CASES), (list(GRAPH_CASES)[-1], "keras_config"),
     (next(iter(GRAPH_CASES)), "keras_config")],
)  # fmt: skip
def test_graph_models_train_as_the_same_functional_model_by_hand(
    name: str, source: str, api: tuple[TestClient, Settings]
) -> None:
    """Written as fitq's graph, or sent as the hand model's ``to_json()``."""
    from fitq.spec import ModelSpec, summarize

    model_spec, by_hand = GRAPH_CASES[name]
    shape = tuple(model_spec["inputs"][0]["shape"])
    if source == "keras_config":
        model_spec = {"keras_config": by_hand().to_json()}
    rng = np.random.default_rng(5)
    x = rng.random((48, *shape), dtype=np.float32)
    y = x.reshape(48, -1).sum(axis=1).astype(np.float32)
    test = {"x": x[:16] * 0.5, "y": y[:16]}
    body = {
        "model": model_spec,
        "compile": {"loss": "mse", "metrics": ["mae"]},
        "fit": {"batch_size": 16, "epochs": 3, "validation_split": 0.25},
        "data": {"train": {"x": x.tolist(), "y": y.tolist()}},
        "seed": SEED,
    }
    client, _ = api
    checked = client.post("/v1/validate", json=body)
    assert checked.status_code == 200, checked.json()
    outcome = _fitq(body, test)

    keras.utils.set_random_seed(SEED)
    model = by_hand()
    summary = summarize(ModelSpec.model_validate(model_spec))
    assert summary.total_params == model.count_params()
    assert summary.output_shape == list(model.output.shape)
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0)
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    _assert_same(outcome, history.history, scores)


@pytest.mark.parametrize("save_best_only", [True, False])
def test_the_job_model_is_the_file_model_checkpoint_writes_by_hand(
    save_best_only: bool, tmp_path
) -> None:
    """With save_best_only, the epoch of the best monitor (mode "max" of val_loss: the first
    epoch, not the last); without, the last epoch's. The test scores are the final model's,
    as a script's evaluate after fit."""
    case = CASES["mean_squared_error by its Keras name, nadam"]
    train_arrays, test = _arrays(case.kind, 64, 0), _arrays(case.kind, 24, 1)
    checkpoint = {"monitor": "val_loss", "mode": "max", "save_best_only": save_best_only}
    body = _body(case, train_arrays, test)
    body["fit"]["callbacks"] = [{"type": "ModelCheckpoint", **checkpoint}]
    job = JobCreate.model_validate(body)
    outcome = train(
        job.model, job.compile, job.fit,
        TrainingData(Arrays(train_arrays["x"], train_arrays["y"]),
                     test=Arrays(test["x"], test["y"])),
        seed=SEED,
        execution=worker.training.Execution(model_checkpoint_path=tmp_path / "job.keras"),
    )  # fmt: skip
    hand_file = tmp_path / "by_hand.keras"
    saver = keras.callbacks.ModelCheckpoint(str(hand_file), **checkpoint)
    history, scores = _by_hand(
        Case(case.kind, case.compile, case.by_hand, fit_by_hand=lambda: {"callbacks": [saver]}),
        train_arrays, test,
    )  # fmt: skip
    _assert_same(outcome, history, scores)
    assert outcome.saved_model is not None and outcome.model_checkpoint is not None
    assert outcome.model_checkpoint["saved_epoch"] == (1 if save_best_only else EPOCHS)
    ours, theirs = (keras.models.load_model(f) for f in (outcome.saved_model, hand_file))
    assert all(
        (a == b).all() for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True)
    )
    assert (ours.predict(test["x"], verbose=0) == theirs.predict(test["x"], verbose=0)).all()
    assert ours.get_compile_config()["steps_per_execution"] == 1
