"""A Keras 3 model config (what ``model.to_json()`` writes, ``Sequential`` or functional)
turned into fitq's layers (a stack or a graph), through the allowlist and never
deserialized: only the allowlisted layer classes, from ``keras.layers``, with arguments
fitq's spec knows. An argument the spec does not have is
accepted only at its Keras default (``NEUTRAL``); anything else is refused by name, so a
model never trains differently from the one the user described.

Pure Python: the API translates configs without importing Keras."""

from __future__ import annotations

import json
import re
from typing import Any

from fitq.errors import SpecError
from fitq.spec.arguments import did_you_mean
from fitq.spec.layers import LAYER_TYPES, layer_fields

# Keys every layer config carries that say nothing about the computation fitq runs.
IGNORED = frozenset({"dtype"})

# Arguments fitq's spec does not expose, accepted at these values only (Keras's defaults).
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "data_format": ("channels_last", None),
    "dilation_rate": (1, [1], [1, 1]),
    "groups": (1,),
    "kernel_constraint": (None,),
    "bias_constraint": (None,),
    "activity_regularizer": (None,),
    "noise_shape": (None,),
    "seed": (None,),
    "lora_rank": (None,),
    "ignore_class": (None,),  # SparseCategoricalCrossentropy: every class counts
    "lora_alpha": (None,),
    "keepdims": (False,),
    "axis": (-1, [-1]),
    "beta_initializer": ({"class_name": "Zeros", "config": {}},),
    "gamma_initializer": ({"class_name": "Ones", "config": {}},),
    "moving_mean_initializer": ({"class_name": "Zeros", "config": {}},),
    "moving_variance_initializer": ({"class_name": "Ones", "config": {}},),
    "beta_regularizer": (None,),
    "gamma_regularizer": (None,),
    "beta_constraint": (None,),
    "gamma_constraint": (None,),
    "synchronized": (False,),
    "rms_scaling": (False,),
    "embeddings_regularizer": (None,),
    "embeddings_constraint": (None,),
    "embeddings_initializer": (
        {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}},
    ),
    "mask_zero": (False,),
    "input_length": (None,),
    "recurrent_initializer": ({"class_name": "Orthogonal", "config": {"gain": 1.0}},),
    "recurrent_regularizer": (None,),
    "recurrent_constraint": (None,),
    "unit_forget_bias": (True,),
    "return_state": (False,),
    "go_backwards": (False,),
    "stateful": (False,),
    "unroll": (False,),
    "reset_after": (True,),
    "use_cudnn": ("auto",),
    "quantization_config": (None,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": (0.99,),
    "zero_output_for_mask": (False,),
    "bias_initializer": ({"class_name": "Zeros", "config": {}},),
    "bias_regularizer": (None,),
    "depthwise_constraint": (None,),
    "pointwise_constraint": (None,),
    "depthwise_initializer": ({"class_name": "GlorotUniform", "config": {"seed": None}},),
    "pointwise_initializer": ({"class_name": "GlorotUniform", "config": {"seed": None}},),
    "depthwise_regularizer": (None,),
    "pointwise_regularizer": (None,),
    "output_padding": (None,),
    "backward_layer": (None,),
    "kernel_regularizer": (None,),
    "use_gate": (False,),
    "output_shape": (None,),
    "attention_axes": (None, [1]),  # [1]: what Keras resolves for (batch, steps, features)
    "sliding_window": (None,),
    # Losses', optimizers' and metrics' arguments (``keras_compile``): no spec field carries
    # them, and at these values they change nothing.
    "reduction": ("sum_over_batch_size",),
    "dtype": (None, "float32"),
    "weight_decay": (None,),
    "use_ema": (False,),
    "ema_momentum": (0.99,),
    "ema_overwrite_frequency": (None,),
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None,),
    "summation_method": ("interpolation",),
    "num_labels": (None,),
    "label_weights": (None,),
    "thresholds": (None,),
}

_INITIALIZERS = {
    "GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform", "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal",
    "Orthogonal": "orthogonal", "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform", "TruncatedNormal": "truncated_normal",
    "Zeros": "zeros", "Ones": "ones",
}  # fmt: skip
# An initializer's arguments at Keras's defaults: anything else has no spec field to carry it.
_INITIALIZER_DEFAULTS: dict[str, Any] = {
    "seed": None, "input_axes": None, "output_axes": None, "gain": 1.0, "mean": 0.0,
    "stddev": 0.05, "minval": -0.05, "maxval": 0.05,
}  # fmt: skip
_ONE_D = frozenset(
    {"Conv1D", "MaxPooling1D", "AveragePooling1D", "Conv1DTranspose", "SeparableConv1D"}
)


# A Sequential of the most layers a spec may hold, written by model.to_json(), is well under
# this; a string past it is refused before it is parsed (the body's JSON limits measured it
# as one string).
MAX_KERAS_CONFIG_CHARS = 1_000_000


def model_from_keras_config(config: Any) -> dict[str, Any]:
    """``{"input_shape": …, "layers": […]}`` from a Keras config (a JSON string or the parsed
    object); 422 ``SpecError`` naming the first thing fitq cannot run as written."""
    loc = "model.keras_config"
    if isinstance(config, str):
        config = _parsed(config, loc)
    kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
    if kind in ("Functional", "Model"):
        return _graph_from_config(config, loc)
    if kind != "Sequential":
        raise SpecError(
            loc, f"expected a Sequential or Functional model's config, received {kind!r}", kind
        )
    entries = _object(config.get("config"), f"{loc}.config").get("layers")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{loc}.config.layers", "expected a list of layers, received none")
    input_shape: list[int] | None = None
    layers: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{loc}.config.layers.{index}"
        class_name = _checked_entry(entry, where)
        layer_config = _object(entry.get("config"), f"{where}.config")
        if class_name == "InputLayer":
            input_shape = _input_shape(layer_config, where)
            continue
        layers.append(_layer(class_name, layer_config, where))
    return {"input_shape": input_shape, "layers": layers}


def _graph_from_config(config: dict[str, Any], loc: str) -> dict[str, Any]:
    """A functional model: its InputLayer, each layer with the tensors it was called on
    (``inbound_nodes``: one call each; shared layers are not supported), its output."""
    body = _object(config.get("config"), f"{loc}.config")
    entries = body.get("layers")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{loc}.config.layers", "expected a list of layers, received none")
    inputs: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{loc}.config.layers.{index}"
        class_name = _checked_entry(entry, where)
        layer_config = _object(entry.get("config"), f"{where}.config")
        name = _graph_name(entry.get("name", layer_config.get("name")), f"{where}.name")
        if class_name == "InputLayer":
            inputs.append({"name": name, "shape": _input_shape(layer_config, where)})
            continue
        layer = _layer(class_name, layer_config, where)
        layer["name"] = name
        layer["inputs"] = _called_on(entry.get("inbound_nodes"), f"{where}.inbound_nodes")
        layers.append(layer)
    outputs = [_tensor_name(t, f"{loc}.config.output_layers") for t in _ends(body, "output")]
    # The model's inputs in its own order (``Model([a, b], …)``), not the layers' order.
    order = [_tensor_name(t, f"{loc}.config.input_layers") for t in _ends(body, "input")]
    inputs.sort(key=lambda i: order.index(i["name"]) if i["name"] in order else len(order))
    return {"inputs": inputs, "layers": layers, "outputs": outputs}


def _graph_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
        raise SpecError(
            where, f"expected a layer name of letters, digits and _, received {value!r}", value
        )
    return value


def _ends(body: dict[str, Any], kind: str) -> list[Any]:
    """``input_layers`` / ``output_layers``: one ``[name, 0, 0]`` or a list of them."""
    ends = body.get(f"{kind}_layers")
    if isinstance(ends, list) and ends and isinstance(ends[0], str):
        ends = [ends]
    if not isinstance(ends, list) or not ends:
        raise SpecError(f"model.keras_config.config.{kind}_layers", f"expected {kind} layers")
    return ends


def _tensor_name(history: Any, where: str) -> str:
    """The layer a tensor came from: ``[name, node 0, tensor 0]`` (one call, one output)."""
    if not (isinstance(history, list) and len(history) == 3 and history[1:] == [0, 0]):
        raise SpecError(
            where,
            f"expected a tensor of a layer's only call and output ([name, 0, 0]), received "
            f"{history!r}",
            history,
        )
    return _graph_name(history[0], where)


def _called_on(nodes: Any, where: str) -> list[str]:
    """The names of the tensors a layer was called on, in order: one tensor, a list of them
    (a merge layer), or several arguments (attention's query and value)."""
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        count = len(nodes) if isinstance(nodes, list) else 0
        raise SpecError(
            where,
            f"expected a layer called once (shared layers are not supported), received {count} "
            "calls",
        )
    node = nodes[0]
    # Keras records the call's keyword arguments; unset (and training=False, which Keras
    # writes for a layer called while the graph was built) change nothing.
    unexpected = {
        k: v
        for k, v in _object(node.get("kwargs"), where).items()
        if v is not None and not (k == "training" and v is False)
    }
    if unexpected:
        raise SpecError(
            f"{where}.0.kwargs",
            f"expected a call on tensors only, received arguments {sorted(unexpected)}",
        )
    args = node.get("args")
    if isinstance(args, list) and len(args) == 1 and isinstance(args[0], list):
        args = args[0]  # a merge layer's list of tensors
    if not isinstance(args, list) or not args:
        raise SpecError(f"{where}.0.args", "expected the tensors the layer was called on")
    names = []
    for tensor in args:
        history = (
            _object(tensor.get("config"), where).get("keras_history")
            if isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__"
            else None
        )
        names.append(_tensor_name(history, f"{where}.0.args"))
    return names


def _parsed(text: str, loc: str) -> Any:
    if len(text) > MAX_KERAS_CONFIG_CHARS:
        raise SpecError(
            loc,
            f"expected Keras model JSON of at most {MAX_KERAS_CONFIG_CHARS:,} characters, "
            f"received {len(text):,}",
        )
    try:
        return json.loads(text)
    except RecursionError:
        raise SpecError(
            loc, "expected Keras model JSON, received arrays or objects nested too deep to read"
        ) from None
    except ValueError as exc:
        raise SpecError(
            loc, f"expected Keras model JSON, received text that is not JSON ({exc})"
        ) from None


def _object(value: Any, where: str) -> dict[str, Any]:
    """A config's mapping (absent or null: empty); anything else is named, never indexed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(where, f"expected an object, received {type(value).__name__}")
    return value


def _checked_entry(entry: Any, where: str) -> str:
    if not isinstance(entry, dict):
        raise SpecError(where, f"expected a layer config, received {type(entry).__name__}")
    class_name = entry.get("class_name")
    if entry.get("module", "keras.layers") != "keras.layers" or entry.get("registered_name"):
        raise SpecError(
            f"{where}.module",
            f"expected a built-in keras.layers class, received module {entry.get('module')!r} "
            f"/ registered_name {entry.get('registered_name')!r} (custom objects never load)",
            entry.get("module"),
        )
    if class_name != "InputLayer" and class_name not in LAYER_TYPES:
        raise SpecError(
            f"{where}.class_name",
            f"expected one of {', '.join(LAYER_TYPES)}, received {class_name!r}"
            f"{did_you_mean(str(class_name), LAYER_TYPES)}",
            class_name,
        )
    return str(class_name)


def _input_shape(config: dict[str, Any], where: str) -> list[int]:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2 or any(d is None for d in shape[1:]):
        raise SpecError(
            f"{where}.batch_shape", f"expected (None, …known sizes), received {shape!r}", shape
        )
    return list(shape[1:])


def _layer(class_name: str, config: dict[str, Any], where: str) -> dict[str, Any]:
    if class_name == "Bidirectional":
        config = _without_mirror(config, where)
    fields = layer_fields(class_name)
    layer: dict[str, Any] = {"type": class_name}
    for key, value in config.items():
        if key in IGNORED:
            continue
        if key == "name":
            if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
                layer["name"] = value
            continue
        if key in ("batch_shape", "batch_input_shape"):
            layer["input_shape"] = _input_shape(config, where)
            continue
        if key in fields:
            layer[key] = _value(class_name, key, value, f"{where}.config.{key}")
        elif not at_keras_default(key, value):
            raise SpecError(
                f"{where}.config.{key}",
                f"expected {key} at its Keras default (fitq's {class_name} has no {key}), "
                f"received {value!r}",
                value,
            )
    return layer


# Layers that wrap another (its config under "layer"), and one-axis layers whose sizes Keras
# writes as one-element lists.
_WRAPPERS = frozenset({"Bidirectional", "TimeDistributed"})


def _value(class_name: str, key: str, value: Any, where: str) -> Any:
    if class_name in _WRAPPERS and key == "layer":
        inner = _checked_entry(value, where)
        config = dict(_object(value.get("config"), f"{where}.config"))
        if class_name == "Bidirectional":
            # Bidirectional sets it on the layer it wraps, whatever the user wrote.
            config.pop("zero_output_for_mask", None)
        return _layer(inner, config, where)
    if key.endswith("_initializer") and isinstance(value, dict):
        return _initializer(value, where)
    if key.endswith("_regularizer"):
        return _regularizer(value, where)
    if class_name in _ONE_D and isinstance(value, list) and len(value) == 1:
        return value[0]  # (3,) in Keras's config, 3 in fitq's spec
    return value


def _without_mirror(config: dict[str, Any], where: str) -> dict[str, Any]:
    """A Bidirectional's config without ``backward_layer`` where that is the copy Keras made
    of ``layer`` (Keras writes it either way); a backward layer of the user's is refused."""
    config = dict(config)
    backward = config.pop("backward_layer", None)
    if backward is None:
        return config

    def essence(entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        inner = dict(_object(entry.get("config"), where))
        for key in ("name", "go_backwards", "zero_output_for_mask"):
            inner.pop(key, None)
        return entry.get("class_name"), inner

    if essence(backward) != essence(config.get("layer")):
        raise SpecError(
            f"{where}.config.backward_layer",
            "expected the backward layer Keras makes from layer (fitq's Bidirectional has "
            "no backward_layer of its own), received a different layer",
        )
    return config


def _initializer(value: dict[str, Any], where: str) -> str:
    name = _INITIALIZERS.get(str(value.get("class_name")))
    arguments = _object(value.get("config"), f"{where}.config")
    if name is None or any(
        _INITIALIZER_DEFAULTS.get(k, object()) != v for k, v in arguments.items()
    ):
        raise SpecError(
            where,
            f"expected one of {', '.join(_INITIALIZERS)} with its default arguments, received "
            f"{value.get('class_name')!r} {arguments!r}",
            value,
        )
    return name


def _regularizer(value: Any, where: str) -> dict[str, float] | None:
    if value is None:
        return None
    class_name = value.get("class_name") if isinstance(value, dict) else None
    arguments = _object(value.get("config"), f"{where}.config") if isinstance(value, dict) else {}
    if class_name not in ("L1L2", "L1", "L2") or set(arguments) - {"l1", "l2"}:
        raise SpecError(where, f"expected an L1, L2 or L1L2 regularizer, received {value!r}", value)
    return {"l1": float(arguments.get("l1", 0.0)), "l2": float(arguments.get("l2", 0.0))}


def at_keras_default(key: str, value: Any) -> bool:
    """An argument fitq's spec has no field for, at a value that changes nothing."""
    allowed = NEUTRAL.get(key)
    if allowed is None:
        return False
    if isinstance(value, dict) and "class_name" in value:
        value = {"class_name": value["class_name"], "config": value.get("config") or {}}
    return value in allowed


def spec_from_keras(
    model: Any,
    *,
    loss: Any = None,
    optimizer: Any = None,
    metrics: list[Any] | None = None,
    batch_size: int = 32,
    epochs: int = 1,
    **fit: Any,
) -> dict[str, Any]:
    """A job spec, all but its ``data``, from a live Keras model (``Sequential`` or
    functional, of one or several inputs and outputs): the layers go
    through the allowlist, and so does how the model was compiled (its loss, optimizer with
    its arguments, and metrics), unless ``loss``, ``optimizer`` or ``metrics`` say otherwise
    (names, spec objects or Keras objects). Not compiled and not given: ``mse`` and
    ``adam``. ``SpecError`` names whatever fitq would not run as written."""
    from fitq.spec.keras_compile import compile_from_keras

    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    spec = {
        "model": model_from_keras_config(model.to_json()),
        "compile": compile_from_keras(compiled, loss=loss, optimizer=optimizer, metrics=metrics),
        "fit": {"batch_size": batch_size, "epochs": epochs, **fit},
    }
    from fitq.spec.job import CompileSpec, ModelSpec  # the checks, before data is attached

    ModelSpec.model_validate(spec["model"])
    CompileSpec.model_validate(spec["compile"])
    return spec
