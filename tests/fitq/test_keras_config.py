"""A Keras 3 ``model.to_json()`` in place of the layer list: every allowlisted layer type
round-trips (fitq spec → Keras model → JSON → fitq spec builds the same model, weights
included), and anything fitq would not run as written is refused by name."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np
import pytest

from fitq.errors import SpecError
from fitq.spec import ModelSpec, summarize
from fitq.spec.keras_config import model_from_keras_config
from worker.training import build_model

D = "Dense"
MODELS: dict[str, dict[str, Any]] = {
    "dense stack": {"input_shape": [4], "layers": [
        {"type": D, "units": 8, "activation": "relu", "kernel_initializer": "he_normal",
         "kernel_regularizer": {"l1": 0.0, "l2": 0.01}, "use_bias": False},
        {"type": "Dropout", "rate": 0.2},
        {"type": "BatchNormalization", "momentum": 0.9},
        {"type": "LayerNormalization", "epsilon": 0.001},
        {"type": "Activation", "activation": "tanh"},
        {"type": D, "units": 1, "bias_initializer": "ones"},
    ]},
    "images": {"input_shape": [8, 8, 1], "layers": [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "MaxPooling2D", "pool_size": 2},
        {"type": "Conv2D", "filters": 2, "kernel_size": [2, 2], "strides": [2, 2]},
        {"type": "AveragePooling2D", "pool_size": 1},
        {"type": "GlobalAveragePooling2D"},
        {"type": D, "units": 3, "activation": "softmax"},
    ]},
    "reshape": {"input_shape": [64], "layers": [
        {"type": "Reshape", "target_shape": [8, 8]},
        {"type": "Flatten"},
        {"type": D, "units": 2},
    ]},
    "sequences": {"input_shape": [16, 2], "layers": [
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "causal"},
        {"type": "MaxPooling1D", "pool_size": 2},
        {"type": "AveragePooling1D", "pool_size": 2},
        {"type": "GlobalAveragePooling1D"},
        {"type": D, "units": 1},
    ]},
    "tokens": {"input_shape": [6], "layers": [
        {"type": "Embedding", "input_dim": 10, "output_dim": 4},
        {"type": "LSTM", "units": 8, "return_sequences": True, "dropout": 0.1},
        {"type": "GRU", "units": 4},
        {"type": D, "units": 1},
    ]},
    "augmented images": {"input_shape": [12, 12, 3], "layers": [
        {"type": "RandomFlip", "mode": "horizontal"},
        {"type": "RandomRotation", "factor": 0.1, "fill_mode": "nearest"},
        {"type": "RandomZoom", "height_factor": [-0.2, 0.1], "width_factor": 0.1},
        {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.2},
        {"type": "RandomContrast", "factor": 0.2, "value_range": [0, 1]},
        {"type": "RandomBrightness", "factor": 0.1, "seed": 3},
        # Keras writes the seed RandomCrop drew when given none; with one, the config says it.
        {"type": "RandomCrop", "height": 10, "width": 10, "seed": 4},
        {"type": "Rescaling", "scale": 0.5, "offset": -1.0},
        {"type": "SeparableConv2D", "filters": 4, "kernel_size": 3, "depth_multiplier": 2},
        {"type": "DepthwiseConv2D", "kernel_size": [2, 2], "padding": "same"},
        {"type": "SpatialDropout2D", "rate": 0.1},
        {"type": "Conv2DTranspose", "filters": 2, "kernel_size": 3, "strides": 2},
        {"type": "UpSampling2D", "size": [1, 2], "interpolation": "bilinear"},
        {"type": "GlobalMaxPooling2D"},
        {"type": "GaussianNoise", "stddev": 0.1},
        {"type": D, "units": 3, "activation": "softmax"},
    ]},
    "wrapped sequences": {"input_shape": [10, 3], "layers": [
        {"type": "Masking", "mask_value": 0.0},
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 4, "return_sequences": True}},
        {"type": "TimeDistributed", "layer": {"type": D, "units": 2}},
        {"type": "Bidirectional", "merge_mode": "sum",
         "layer": {"type": "SimpleRNN", "units": 3, "return_sequences": True}},
        {"type": "Conv1DTranspose", "filters": 2, "kernel_size": 3, "strides": 2,
         "trainable": False},
        {"type": "SeparableConv1D", "filters": 2, "kernel_size": 2},
        {"type": "UpSampling1D", "size": 2},
        {"type": "SpatialDropout1D", "rate": 0.2},
        {"type": "GlobalMaxPooling1D"},
        {"type": "RepeatVector", "n": 3},
        {"type": "GRU", "units": 2},
        {"type": "GaussianDropout", "rate": 0.1},
        {"type": "Normalization", "mean": [0.5, 0.0], "variance": [2.0, 1.0]},
        {"type": D, "units": 1},
    ]},
}  # fmt: skip


def unnamed(value: Any) -> Any:
    """A config without the auto-generated names (they count up across models)."""
    if isinstance(value, dict):
        return {k: unnamed(v) for k, v in value.items() if k != "name"}
    if isinstance(value, list):
        return [unnamed(v) for v in value]
    return value


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("as_text", [True, False], ids=["json-string", "parsed"])
def test_keras_json_round_trips_to_the_same_model(kind: str, as_text: bool) -> None:
    original = ModelSpec.model_validate(MODELS[kind])
    keras.utils.set_random_seed(1)
    model = build_model(original)
    config = model.to_json() if as_text else json.loads(model.to_json())

    translated = ModelSpec.model_validate({"keras_config": config})
    keras.utils.set_random_seed(1)
    rebuilt = build_model(translated)
    assert unnamed(json.loads(rebuilt.to_json())) == unnamed(json.loads(model.to_json()))
    for a, b in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def keras_json(*layers: keras.layers.Layer, shape: tuple[int, ...] = (4,)) -> dict[str, Any]:
    return json.loads(keras.Sequential([keras.Input(shape), *layers]).to_json())


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        (keras_json(keras.layers.Lambda(lambda x: x)), "config.layers.1.class_name", "received 'Lambda'"),
        (keras_json(keras.layers.Dense(2, kernel_constraint="non_neg")), "config.layers.1.config.kernel_constraint",
         "expected kernel_constraint at its Keras default"),
        (keras_json(keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))),
         "config.layers.1.config.kernel_initializer", "with its default arguments"),
        (keras_json(keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=5))),
         "config.layers.1.config.kernel_initializer", "'seed': 5"),
        ({"class_name": "Subclassed", "config": {}}, "model.keras_config", "received 'Subclassed'"),
        ("{not json", "model.keras_config", "not JSON"),
    ],
    ids=["lambda", "constraint", "initializer-args", "initializer-seed", "functional", "not-json"],
)  # fmt: skip
def test_what_fitq_would_not_run_as_written_is_refused(config: Any, loc: str, message: str) -> None:
    with pytest.raises(SpecError) as refused:
        model_from_keras_config(config)
    assert refused.value.details[0].loc.endswith(loc)
    assert message in refused.value.message


def test_a_shared_layer_is_refused_by_name() -> None:
    x = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="shared")
    twice = keras.Model(x, keras.layers.Add()([shared(x), shared(x)]))
    with pytest.raises(SpecError, match="shared layers are not supported") as refused:
        ModelSpec.model_validate({"keras_config": twice.to_json()})
    assert refused.value.details[0].loc.endswith("inbound_nodes")


def test_several_inputs_and_outputs_translate_in_keras_order() -> None:
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    joined = keras.layers.Concatenate(name="joined")([a, b])
    price = keras.layers.Dense(1, name="price")(joined)
    kind = keras.layers.Dense(3, activation="softmax", name="kind")(joined)
    model = keras.Model([a, b], [price, kind])
    spec = ModelSpec.model_validate({"keras_config": model.to_json()})
    assert [(i.name, i.shape) for i in spec.inputs or []] == [("a", (2,)), ("b", (3,))]
    assert spec.graph_outputs == ["price", "kind"]
    assert spec.layer_inputs(0) == ["a", "b"]
    summary = summarize(spec)
    assert summary.inputs == {"a": [None, 2], "b": [None, 3]}
    assert summary.outputs == {"price": [None, 1], "kind": [None, 3]}
    assert summary.total_params == model.count_params()


def test_a_custom_object_module_is_refused() -> None:
    config = keras_json(keras.layers.Dense(2))
    config["config"]["layers"][1].update(module="evil.layers", registered_name="Evil>Dense")
    with pytest.raises(SpecError, match="custom objects never load"):
        model_from_keras_config(config)


def test_the_api_takes_a_keras_config_and_stores_the_translated_layers(api) -> None:
    client, _ = api
    from tests.factories import tiny_job

    body = tiny_job()
    body["model"] = {
        "keras_config": keras_json(keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1))
    }
    job = client.post("/v1/jobs", json=body).json()
    layers = job["spec"]["model"]["layers"]
    assert [layer["type"] for layer in layers] == ["Dense", "Dense"]
    assert job["spec"]["model"]["input_shape"] == [4]
    body["model"]["keras_config"] = keras_json(keras.layers.Lambda(lambda x: x))
    refused = client.post("/v1/jobs", json=body)
    assert refused.status_code == 422
    assert "received 'Lambda'" in refused.json()["error"]["message"]


def test_spec_from_a_live_keras_model_trains_as_a_job(api) -> None:
    import fitq
    from tests.factories import tiny_arrays

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(1)]
    )
    spec = fitq.spec_from_keras(model, loss="mae", metrics=["mse"], batch_size=8, epochs=2)
    assert spec["compile"] == {"loss": "mae", "optimizer": "adam", "metrics": ["mse"]}
    arrays = tiny_arrays()
    spec["data"] = {"train": {"x": arrays["x"].tolist(), "y": arrays["y"].tolist()}}
    client, _ = api
    assert client.post("/v1/validate", json=spec).status_code == 200
    with pytest.raises(SpecError, match="received 'Lambda'"):
        fitq.spec_from_keras(
            keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x)])
        )


def test_a_refusal_says_what_was_received_as_sent() -> None:
    with pytest.raises(SpecError) as refused:
        model_from_keras_config(keras_json(keras.layers.Lambda(lambda x: x)))
    assert refused.value.details[0].received == "Lambda"
    with pytest.raises(SpecError) as refused:
        model_from_keras_config(keras_json(keras.layers.Dense(2, kernel_constraint="non_neg")))
    assert refused.value.details[0].received == {
        "module": "keras.constraints", "class_name": "NonNeg", "config": {}, "registered_name": None
    }  # fmt: skip
