"""The training function against the same Keras calls run by hand."""

from __future__ import annotations

import keras
import numpy as np

from fitq.spec import JobCreate
from tests import hand_run
from tests.factories import cnn_job, diverging_job, lstm_job, tiny_arrays, tiny_job
from worker.training import (
    Arrays,
    Execution,
    TrainingData,
    TrainingOutcome,
    prepare_data,
    train,
)


def hand_run_tiny(
    arrays: dict, test: dict, seed: int, policy: str = "float32", jit_compile: bool | str = "auto"
) -> tuple[dict, dict]:
    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy(policy)
    model = keras.Sequential()
    model.add(keras.layers.Dense(8, input_shape=(4,), activation="relu"))
    model.add(keras.layers.Dense(1))
    model.compile(loss="mse", optimizer="adam", metrics=["mae", "mse"], jit_compile=jit_compile)
    keras.config.set_dtype_policy("float32")
    history = model.fit(arrays["x"], arrays["y"], batch_size=16, epochs=3, verbose=0)
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    return history.history, scores


def test_numbers_equal_hand_run_keras() -> None:
    arrays, test = tiny_arrays(), tiny_arrays(rows=20, seed=1)
    job = JobCreate.model_validate(tiny_job(epochs=3, seed=11, train=arrays, test=test))
    reported: list[int] = []
    outcome = train(
        job.model,
        job.compile,
        job.fit,
        TrainingData(Arrays(job.data.train.x, job.data.train.y), test=Arrays(test["x"], test["y"])),
        seed=11,
        on_epoch=lambda history: reported.append(len(history)),
    )
    history, scores = hand_run_tiny(arrays, test, seed=11)

    assert reported == [1, 2, 3]
    assert [e["loss"] for e in outcome.history] == history["loss"]
    assert [e["mae"] for e in outcome.history] == history["mae"]
    assert outcome.test_loss == scores["loss"]
    assert outcome.test_metrics == {"mae": scores["mae"], "mse": scores["mse"]}
    assert not outcome.non_finite


def test_mixed_precision_and_xla_equal_hand_run_keras_with_the_same_settings() -> None:
    arrays, test = tiny_arrays(), tiny_arrays(rows=20, seed=1)
    body = tiny_job(epochs=3, seed=11, train=arrays, test=test)
    body["fit"].update(mixed_precision=True, jit_compile=True)
    outcome = run_job(body)
    history, scores = hand_run_tiny(arrays, test, 11, policy="mixed_bfloat16", jit_compile=True)

    assert outcome.execution["mixed_precision"] == "mixed_bfloat16"  # a CPU: bfloat16
    assert outcome.execution["jit_compile"] is True
    assert outcome.model.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the next job starts clean
    assert [e["loss"] for e in outcome.history] == history["loss"]
    assert outcome.test_loss == scores["loss"]
    assert outcome.test_metrics == {"mae": scores["mae"], "mse": scores["mse"]}


def test_a_mirrored_job_trains_under_the_strategy_and_matches_one_device() -> None:
    """The k-GPU path (tf.distribute.MirroredStrategy), run on this host's one CPU device."""
    arrays, test = tiny_arrays(), tiny_arrays(rows=20, seed=1)
    job = JobCreate.model_validate(tiny_job(epochs=3, seed=11, train=arrays, test=test))
    data = TrainingData(Arrays(arrays["x"], arrays["y"]), test=Arrays(test["x"], test["y"]))
    mirrored = train(
        job.model, job.compile, job.fit, data, 11, execution=Execution(devices=("/cpu:0",))
    )
    plain = train(job.model, job.compile, job.fit, data, 11)

    assert mirrored.execution["mirrored_over"] == ["/cpu:0"]
    assert plain.execution["mirrored_over"] is None  # one device: no strategy
    assert type(mirrored.model.distribute_strategy).__name__ == "MirroredStrategy"
    assert mirrored.test_loss == plain.test_loss  # one replica: the same numbers


def test_a_different_seed_gives_different_numbers() -> None:
    arrays = tiny_arrays()
    job = JobCreate.model_validate(tiny_job(epochs=1, train=arrays))
    data = TrainingData(Arrays(job.data.train.x, job.data.train.y))
    a = train(job.model, job.compile, job.fit, data, seed=1)
    b = train(job.model, job.compile, job.fit, data, seed=2)
    assert a.history[0]["loss"] != b.history[0]["loss"]


def test_non_finite_loss_stops_training_and_keeps_nulls() -> None:
    job = JobCreate.model_validate(diverging_job(epochs=20))
    outcome = train(
        job.model, job.compile, job.fit, TrainingData(Arrays(job.data.train.x, job.data.train.y)), 3
    )
    assert outcome.non_finite
    assert len(outcome.history) < 20  # stopped early
    assert outcome.history[-1]["loss"] is None
    assert outcome.test_loss is None


def test_validation_metrics_are_in_the_history() -> None:
    arrays, val = tiny_arrays(), tiny_arrays(rows=16, seed=2)
    job = JobCreate.model_validate(tiny_job(epochs=2, train=arrays))
    data = TrainingData(
        Arrays(job.data.train.x, job.data.train.y), validation=Arrays(val["x"], val["y"])
    )
    outcome = train(job.model, job.compile, job.fit, data, seed=5)
    assert set(outcome.history[0]) == {
        "epoch",
        "loss",
        "mae",
        "mse",
        "val_loss",
        "val_mae",
        "val_mse",
    }
    assert all(np.isfinite(v) for v in outcome.history[1].values())


def run_job(body: dict) -> TrainingOutcome:
    job = JobCreate.model_validate(body)
    test = job.data.test
    data = prepare_data(
        Arrays(job.data.train.x, job.data.train.y),
        None,
        Arrays(test.x, test.y) if test is not None else None,
        test_split=job.data.test_split,
        shuffle_before_split=job.data.shuffle_before_split,
        seed=job.seed,
    )
    return train(job.model, job.compile, job.fit, data, seed=job.seed)


def test_small_cnn_equals_hand_run_keras() -> None:
    outcome, by_hand = run_job(cnn_job()), hand_run.cnn()
    assert [e["accuracy"] for e in outcome.history] == by_hand["history"]["accuracy"]
    assert outcome.test_loss == by_hand["scores"]["loss"]
    assert outcome.test_metrics == {"accuracy": by_hand["scores"]["accuracy"]}


def test_small_lstm_with_splits_equals_hand_run_keras() -> None:
    outcome, by_hand = run_job(lstm_job()), hand_run.lstm()
    assert [e["val_rmse"] for e in outcome.history] == by_hand["history"]["val_rmse"]
    assert outcome.test_loss == by_hand["scores"]["loss"]
    assert outcome.test_metrics == {
        "mae": by_hand["scores"]["mae"],
        "rmse": by_hand["scores"]["rmse"],
    }


def test_early_stopping_stops_and_reports_the_best_epoch() -> None:
    body = tiny_job(epochs=50, optimizer={"type": "sgd", "learning_rate": 0.5})
    body["fit"]["early_stopping"] = {"monitor": "loss", "patience": 1, "min_delta": 100.0,
                                     "restore_best_weights": True}  # fmt: skip
    outcome = run_job(body)
    assert len(outcome.history) == 2  # epoch 2 does not improve on 1 by 100: stop
    assert outcome.early_stopping == {
        "stopped_epoch": 2,
        "best_epoch": 1,
        "restored_best_weights": True,
    }


def test_embedding_takes_integer_ids_stored_as_floats() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 20, size=(48, 6)).astype(np.float32)  # JSON carries ids as numbers
    y = (x.mean(axis=1) > 9.5).astype(np.float32)
    body = tiny_job(epochs=2, train={"x": x, "y": y})
    body["model"] = {
        "layers": [
            {"type": "Embedding", "input_dim": 20, "output_dim": 4, "input_shape": [6]},
            {"type": "GlobalAveragePooling1D"},
            {"type": "Dense", "units": 1, "activation": "sigmoid"},
        ]
    }
    body["compile"] = {"loss": "binary_crossentropy", "metrics": ["binary_accuracy", "auc"]}
    outcome = run_job(body)
    assert not outcome.non_finite
    assert set(outcome.history[-1]) == {"epoch", "loss", "binary_accuracy", "auc"}
