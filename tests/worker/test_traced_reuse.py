"""Jobs that reuse a kept traced model (worker/traced.py) give the numbers of hand-run Keras
with their own seed, exactly as the job that traced it first does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import pytest

from fitq.spec import JobCreate
from tests import hand_run
from tests.factories import cnn_job, lstm_job, tiny_arrays, tiny_job
from tests.worker.test_training import hand_run_tiny, run_job
from worker.traced import traced_models
from worker.training import Arrays, Execution, TrainingData, TrainingOutcome, train

DROPOUT_LAYERS = [
    {"type": "Dense", "units": 8, "input_shape": [4], "activation": "relu"},
    {"type": "Dropout", "rate": 0.25},
    {"type": "Dense", "units": 1},
]


def splits() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return tiny_arrays(rows=160), tiny_arrays(24, seed=2), tiny_arrays(24, seed=3)


def dropout_job(
    seed: int, layers: list[dict[str, Any]] = DROPOUT_LAYERS
) -> tuple[JobCreate, TrainingData]:
    train_arrays, val, test = splits()
    body = tiny_job(epochs=3, seed=seed, train=train_arrays, test=test)
    body["model"]["layers"] = layers
    body["fit"]["batch_size"] = 8
    data = TrainingData(
        Arrays(train_arrays["x"], train_arrays["y"]),
        validation=Arrays(val["x"], val["y"]),
        test=Arrays(test["x"], test["y"]),
    )
    return JobCreate.model_validate(body), data


def fitq_dropout(seed: int) -> TrainingOutcome:
    job, data = dropout_job(seed)
    return train(job.model, job.compile, job.fit, data, seed=seed)


def hand_dropout(seed: int) -> dict[str, Any]:
    train_arrays, val, test = splits()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential()
    model.add(keras.layers.Dense(8, input_shape=(4,), activation="relu"))
    model.add(keras.layers.Dropout(0.25))
    model.add(keras.layers.Dense(1))
    model.compile(loss="mse", optimizer="adam", metrics=["mae", "mse"])
    history = model.fit(
        train_arrays["x"],
        train_arrays["y"],
        batch_size=8,
        epochs=3,
        validation_data=(val["x"], val["y"]),
        verbose=0,
    )
    scores = model.evaluate(test["x"], test["y"], batch_size=8, verbose=0, return_dict=True)
    return {"history": history.history, "scores": scores}


def fitq_mixed_xla(seed: int) -> TrainingOutcome:
    arrays, test = tiny_arrays(), tiny_arrays(rows=20, seed=1)
    body = tiny_job(epochs=3, seed=seed, train=arrays, test=test)
    body["fit"].update(mixed_precision=True, jit_compile=True)
    return run_job(body)


def hand_mixed_xla(seed: int) -> dict[str, Any]:
    arrays, test = tiny_arrays(), tiny_arrays(rows=20, seed=1)
    history, scores = hand_run_tiny(arrays, test, seed, policy="mixed_bfloat16", jit_compile=True)
    return {"history": history, "scores": scores}


KINDS: dict[str, tuple[Callable[[int], TrainingOutcome], Callable[[int], dict[str, Any]]]] = {
    "dense+dropout, validation data": (fitq_dropout, hand_dropout),
    "cnn": (lambda seed: run_job(cnn_job(seed=seed)), lambda seed: hand_run.cnn(seed=seed)),
    "mixed precision + XLA": (fitq_mixed_xla, hand_mixed_xla),
    "lstm, validation split": (
        lambda seed: run_job(lstm_job(seed=seed)),
        lambda seed: hand_run.lstm(seed=seed),
    ),
}


def assert_hand_run(outcome: TrainingOutcome, by_hand: dict[str, Any]) -> None:
    for name, values in by_hand["history"].items():
        assert [epoch[name] for epoch in outcome.history] == values, name
    assert outcome.test_loss == by_hand["scores"]["loss"]
    for name, value in outcome.test_metrics.items():
        assert value == by_hand["scores"][name], name


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_reused_trace_gives_each_seed_its_hand_run_numbers(kind: str) -> None:
    fitq_run, hand = KINDS[kind]
    traced_models.clear()
    runs = [(seed, fitq_run(seed)) for seed in (5, 6, 5)]
    assert [outcome.execution["traced"] for _, outcome in runs] == ["new", "reused", "reused"]
    for seed, outcome in runs:
        assert_hand_run(outcome, hand(seed))
    # The third run (seed 5 again, on the kept model) repeats the first exactly.
    assert runs[2][1].history == runs[0][1].history


def test_another_architecture_or_a_fitted_normalizer_traces_anew() -> None:
    traced_models.clear()
    assert fitq_dropout(1).execution["traced"] == "new"
    wider, data = dropout_job(2, [{**DROPOUT_LAYERS[0], "units": 16}, *DROPOUT_LAYERS[1:]])
    assert train(wider.model, wider.compile, wider.fit, data, 2).execution["traced"] == "new"
    job, data = dropout_job(3)
    standardized = [
        train(job.model, job.compile, job.fit, data, 3, execution=Execution(standardize=True))
        for _ in range(2)
    ]
    assert [o.execution["traced"] for o in standardized] == ["new", "new"]
    assert fitq_dropout(4).execution["traced"] == "reused"


def test_a_model_over_the_size_limit_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.traced

    monkeypatch.setattr(worker.traced, "KEEP_MAX_PARAMS", 10)
    traced_models.clear()
    assert [fitq_dropout(seed).execution["traced"] for seed in (1, 2)] == ["new", "new"]
