"""The spec subset: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from fitq.errors import SpecError
from fitq.spec import JobCreate, SplitData, check_data, summarize
from tests.factories import tiny_job


def errors_of(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        JobCreate.model_validate(body)
    return info.value.errors()


def test_seed_example_spec_is_accepted_with_keras_defaults() -> None:
    job = JobCreate.model_validate(tiny_job())
    assert job.compile.optimizer.type == "adam"
    assert job.compile.optimizer.keras_kwargs() == {}  # Keras's own "adam" defaults
    assert job.data.train.x.shape == (64, 4)
    assert job.data.train.x.dtype.name == "float32"


def test_optimizer_object_keeps_only_given_arguments() -> None:
    body = tiny_job(optimizer={"type": "sgd", "learning_rate": 0.1, "momentum": 0.9})
    job = JobCreate.model_validate(body)
    assert job.compile.optimizer.keras_kwargs() == {"learning_rate": 0.1, "momentum": 0.9}


@pytest.mark.parametrize(
    ("patch", "loc", "fragment"),
    [
        (
            {"compile": {"loss": "mean_sqared_error"}},
            ("compile", "loss"),
            "received 'mean_sqared_error' (did you mean 'mean_squared_error'?)",
        ),
        ({"compile": {"loss": "hnge"}}, ("compile", "loss"), "hinge, huber, kl_divergence"),
        ({"compile": {"loss": "mse", "optimizer": "adamx"}}, ("compile", "optimizer"), "adamx"),
        ({"compile": {"loss": "mse", "metrics": ["mae", "mae"]}}, ("compile", "metrics"), "twice"),
        ({"fit": {"batch_size": 0}}, ("fit", "batch_size"), "greater than or equal to 1"),
        ({"fit": {"epochs": 10, "verbose": 1}}, ("fit", "verbose"), "Extra inputs"),
        ({"seed": -1}, ("seed",), "greater than or equal to 0"),
    ],
)
def test_bad_fields_are_named(patch: dict, loc: tuple, fragment: str) -> None:
    body = tiny_job()
    body.update(patch)
    errors = errors_of(body)
    assert errors[0]["loc"][: len(loc)] == loc
    assert fragment in errors[0]["msg"]


def test_unknown_layer_type_lists_the_allowed_ones() -> None:
    body = tiny_job()
    body["model"]["layers"][1] = {"type": "Lambda", "function": "os.system"}
    (error,) = errors_of(body)
    assert error["loc"] == ("model", "spec", "layers", 1)  # the API drops the union's tag
    assert "'Dense', 'Dropout', 'Activation', 'BatchNormalization'" in error["msg"]


def test_nan_in_a_number_field_is_refused() -> None:
    body = tiny_job(optimizer={"type": "adam", "learning_rate": math.nan})
    (error,) = errors_of(body)
    assert error["loc"][:2] == ("compile", "optimizer")


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        ([[1.0, 2.0], [3.0]], "ragged rows"),
        ([[1.0, math.nan]], "finite numbers, received nan at index [0, 1]"),
        ([[1.0, "a"]], "non-numeric"),
        ([1.0, 2.0], "rank ≥ 2"),
        ([], "non-empty array"),
    ],
)
def test_bad_inline_arrays_say_what_and_where(x: list, fragment: str) -> None:
    body = tiny_job()
    body["data"]["train"] = {"x": x, "y": [1.0] * max(len(x), 1)}
    errors = errors_of(body)
    assert errors[0]["loc"][:3] == ("data", "train", "inline")
    assert fragment in errors[0]["msg"]


def test_rows_of_x_and_y_must_agree() -> None:
    body = tiny_job()
    body["data"]["train"]["y"] = body["data"]["train"]["y"][:-1]
    (error,) = errors_of(body)
    assert "as many rows in y as in x (64), received 63" in error["msg"]


def test_dataset_ids_are_checked_for_form() -> None:
    body = tiny_job()
    body["data"]["test"] = {"dataset_id": "../../etc/passwd"}
    (error,) = errors_of(body)
    assert error["loc"][:3] == ("data", "test", "ref")


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ({"layers": [{"type": "Dense", "units": 1}]}, "received neither"),
        (
            {"input_shape": [4], "layers": [{"type": "Dense", "units": 1, "input_shape": [4]}]},
            "received both",
        ),
        (
            {"layers": [{"type": "Dense", "units": 2, "input_shape": [4]},
                        {"type": "Dense", "units": 1, "input_shape": [2]}]},
            "received it on layers.1",
        ),
    ],
)  # fmt: skip
def test_input_shape_rules(model: dict, fragment: str) -> None:
    body = tiny_job()
    body["model"] = model
    (error,) = errors_of(body)
    assert fragment in error["msg"]


def test_summary_counts_parameters_like_keras() -> None:
    import keras

    body = tiny_job()
    body["model"] = {
        "input_shape": [784],
        "layers": [
            {"type": "Dense", "units": 10},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 20, "use_bias": False},
            {"type": "Activation", "activation": "tanh"},
            {"type": "Dense", "units": 1},
        ],
    }
    job = JobCreate.model_validate(body)
    summary = summarize(job.model)

    from worker.training import build_model

    model = build_model(job.model)
    assert summary.total_params == model.count_params()
    for ours, theirs in zip(summary.layers, model.layers, strict=True):
        assert ours.params == theirs.count_params()
        assert tuple(ours.output_shape) == tuple(theirs.output.shape)
    assert isinstance(model, keras.Sequential)


def test_data_shapes_against_the_model() -> None:
    job = JobCreate.model_validate(tiny_job())
    summary = summarize(job.model)

    def check(**splits: tuple) -> None:
        data = {name: SplitData(x, y) for name, (x, y) in splits.items()}
        check_data(job.model, summary, job.compile, data)

    check(train=((64, 4), (64,)), test=((8, 4), (8, 1)))
    with pytest.raises(SpecError) as info:
        check(validation=((64, 5), (64,)))
    assert info.value.details[0].loc == "data.validation.x"
    assert "expected rows of shape [4]" in info.value.message
    assert "received rows of shape [5]" in info.value.message
    with pytest.raises(SpecError) as info:
        check(train=((64, 4), (64, 3)))
    assert "expected targets of shape [1] (the model's output) or scalars" in info.value.message
