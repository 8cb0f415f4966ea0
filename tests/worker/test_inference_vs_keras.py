"""Property tests: fitq's pure-Python shape and parameter inference equals Keras's.

Random layer stacks are built both ways: fitq's ``summarize`` and a real ``keras.Sequential``.
Wherever Keras builds a model, fitq gives the same output shape and parameter count layer by
layer; wherever Keras refuses one, fitq refuses it too (fitq is stricter only where Keras
would build a layer whose output has a zero-size dimension)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from fitq.errors import SpecError
from fitq.spec import ModelSpec, summarize
from worker.training import build_model

PROPERTY = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # the same examples on every CI run
    suppress_health_check=[HealthCheck.too_slow],
)

small = st.integers(1, 5)
padding = st.sampled_from(["valid", "same"])
pair = st.one_of(small, st.tuples(small, small))
activation = st.sampled_from([None, "relu", "tanh", "sigmoid", "softmax"])


def layer_strategies(rank: int) -> list[st.SearchStrategy[dict[str, Any]]]:
    """Layers that accept an input of this rank (batch excluded); ``rank=0`` means any."""
    any_rank = [
        st.builds(lambda u, b, a: {"type": "Dense", "units": u, "use_bias": b, "activation": a},
                  st.integers(1, 8), st.booleans(), activation),
        st.builds(lambda r: {"type": "Dropout", "rate": r}, st.sampled_from([0.0, 0.25, 0.5])),
        st.builds(lambda a: {"type": "Activation", "activation": a},
                  st.sampled_from(["relu", "tanh"])),
        st.builds(lambda c, s: {"type": "BatchNormalization", "center": c, "scale": s},
                  st.booleans(), st.booleans()),
        st.builds(lambda c, s: {"type": "LayerNormalization", "center": c, "scale": s},
                  st.booleans(), st.booleans()),
        st.just({"type": "Flatten"}),
        st.builds(lambda t: {"type": "Reshape", "target_shape": t},
                  st.lists(st.integers(1, 8), min_size=1, max_size=3)
                  | st.lists(st.integers(1, 4), min_size=0, max_size=2).map(lambda t: [*t, -1])),
        st.builds(lambda s: {"type": "GaussianNoise", "stddev": s}, st.sampled_from([0.1, 1.0])),
        st.builds(lambda r: {"type": "GaussianDropout", "rate": r}, st.sampled_from([0.1, 0.5])),
        st.builds(lambda a, b: {"type": "Rescaling", "scale": a, "offset": b},
                  st.sampled_from([1 / 255, 2.0]), st.sampled_from([0.0, -1.0])),
        st.just({"type": "Normalization", "mean": 0.5, "variance": 2.0}),
        st.just({"type": "Masking"}),
    ]  # fmt: skip
    features = [
        st.builds(lambda n: {"type": "RepeatVector", "n": n}, small),
    ]
    sequence = [
        st.builds(lambda f, k, s, p, b: {"type": "Conv1D", "filters": f, "kernel_size": k,
                                         "strides": s, "padding": p, "use_bias": b},
                  small, small, st.integers(1, 3), st.sampled_from(["valid", "same", "causal"]),
                  st.booleans()),
        st.builds(lambda t, k, s, p: {"type": t, "pool_size": k, "strides": s, "padding": p},
                  st.sampled_from(["MaxPooling1D", "AveragePooling1D"]), small,
                  st.none() | st.integers(1, 3), padding),
        st.just({"type": "GlobalAveragePooling1D"}),
        st.builds(lambda t, u, r, b: {"type": t, "units": u, "return_sequences": r, "use_bias": b},
                  st.sampled_from(["LSTM", "GRU", "SimpleRNN"]), st.integers(1, 4), st.booleans(),
                  st.booleans()),
        st.builds(lambda t, u, r, m: {"type": "Bidirectional", "merge_mode": m,
                                      "layer": {"type": t, "units": u, "return_sequences": r}},
                  st.sampled_from(["LSTM", "GRU", "SimpleRNN"]), st.integers(1, 4), st.booleans(),
                  st.sampled_from(["concat", "sum", "mul", "ave"])),
        st.builds(lambda u, b: {"type": "TimeDistributed",
                                "layer": {"type": "Dense", "units": u, "use_bias": b}},
                  st.integers(1, 5), st.booleans()),
        st.just({"type": "GlobalMaxPooling1D"}),
        st.builds(lambda f, k, s, p, b: {"type": "Conv1DTranspose", "filters": f,
                                         "kernel_size": k, "strides": s, "padding": p,
                                         "use_bias": b},
                  small, small, st.integers(1, 3), padding, st.booleans()),
        st.builds(lambda f, k, s, p, d: {"type": "SeparableConv1D", "filters": f,
                                         "kernel_size": k, "strides": s, "padding": p,
                                         "depth_multiplier": d},
                  small, small, st.integers(1, 3), padding, st.integers(1, 3)),
        st.builds(lambda n: {"type": "UpSampling1D", "size": n}, st.integers(1, 3)),
        st.builds(lambda r: {"type": "SpatialDropout1D", "rate": r}, st.sampled_from([0.1, 0.5])),
    ]  # fmt: skip
    image = [
        st.builds(lambda f, k, s, p, b: {"type": "Conv2D", "filters": f, "kernel_size": k,
                                         "strides": s, "padding": p, "use_bias": b},
                  small, pair,
                  st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))),
                  padding, st.booleans()),
        st.builds(lambda t, k, s, p: {"type": t, "pool_size": k, "strides": s, "padding": p},
                  st.sampled_from(["MaxPooling2D", "AveragePooling2D"]), pair,
                  st.none() | st.integers(1, 3), padding),
        st.just({"type": "GlobalAveragePooling2D"}),
        st.just({"type": "GlobalMaxPooling2D"}),
        st.builds(lambda f, k, s, p: {"type": "Conv2DTranspose", "filters": f, "kernel_size": k,
                                      "strides": s, "padding": p},
                  small, pair, st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3),
                                                                       st.integers(1, 3))),
                  padding),
        st.builds(lambda f, k, s, p, d: {"type": "SeparableConv2D", "filters": f,
                                         "kernel_size": k, "strides": s, "padding": p,
                                         "depth_multiplier": d},
                  small, pair, st.integers(1, 3), padding, st.integers(1, 2)),
        st.builds(lambda k, s, p, d, b: {"type": "DepthwiseConv2D", "kernel_size": k,
                                         "strides": s, "padding": p, "depth_multiplier": d,
                                         "use_bias": b},
                  pair, st.integers(1, 3), padding, st.integers(1, 3), st.booleans()),
        st.builds(lambda n, i: {"type": "UpSampling2D", "size": n, "interpolation": i},
                  pair, st.sampled_from(["nearest", "bilinear"])),
        st.builds(lambda r: {"type": "SpatialDropout2D", "rate": r}, st.sampled_from([0.1, 0.5])),
        st.builds(lambda m: {"type": "RandomFlip", "mode": m},
                  st.sampled_from(["horizontal", "vertical", "horizontal_and_vertical"])),
        st.builds(lambda f: {"type": "RandomRotation", "factor": f},
                  st.sampled_from([0.1, [-0.2, 0.3]])),
        st.builds(lambda h, w: {"type": "RandomZoom", "height_factor": h, "width_factor": w},
                  st.sampled_from([0.1, [-0.2, 0.1]]), st.none() | st.just(0.2)),
        st.builds(lambda h, w: {"type": "RandomTranslation", "height_factor": h,
                                "width_factor": w},
                  st.sampled_from([0.1, 0.2]), st.sampled_from([0.1, [-0.1, 0.2]])),
        st.builds(lambda f: {"type": "RandomContrast", "factor": f}, st.sampled_from([0.1, 0.5])),
        st.builds(lambda f: {"type": "RandomBrightness", "factor": f}, st.sampled_from([0.1, 0.5])),
        st.builds(lambda h, w: {"type": "RandomCrop", "height": h, "width": w}, small, small),
    ]  # fmt: skip
    return {
        0: any_rank + features + sequence + image,
        1: any_rank + features,
        2: any_rank + sequence,
        3: any_rank + image,
    }.get(rank, any_rank)


def input_shapes() -> st.SearchStrategy[list[int]]:
    return st.one_of(
        st.lists(st.integers(1, 12), min_size=1, max_size=1),
        st.lists(st.integers(1, 10), min_size=2, max_size=2),
        st.lists(st.integers(1, 9), min_size=3, max_size=3),
    )


def rank_after(layer: dict[str, Any], rank: int) -> int:
    kind = layer["type"]
    if kind in {
        "Flatten",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
    }:
        return 1
    if kind == "Reshape":
        return len(layer["target_shape"])
    if kind in {"LSTM", "GRU", "SimpleRNN"}:
        return 2 if layer["return_sequences"] else 1
    if kind == "Bidirectional":
        return 2 if layer["layer"]["return_sequences"] else 1
    if kind == "RepeatVector":
        return 2
    if kind == "Embedding":
        return rank + 1
    return rank


@st.composite
def rank_aware_stacks(draw: st.DrawFn) -> dict[str, Any]:
    """Stacks whose every layer gets an input of a rank it accepts (sizes may still fail)."""
    shape = draw(input_shapes())
    layers: list[dict[str, Any]] = []
    rank = len(shape)
    if rank == 1 and draw(st.booleans()):
        layers.append({"type": "Embedding", "input_dim": draw(st.integers(1, 20)),
                       "output_dim": draw(st.integers(1, 5))})  # fmt: skip
        rank = 2
    for _ in range(draw(st.integers(1, 4))):
        layer = draw(st.one_of(layer_strategies(rank)))
        layers.append(layer)
        rank = rank_after(layer, rank)
    return {"input_shape": shape, "layers": layers}


@st.composite
def random_stacks(draw: st.DrawFn) -> dict[str, Any]:
    """Any allowlisted layers in any order: many of these Keras refuses."""
    layers = draw(st.lists(st.one_of(layer_strategies(0)), min_size=1, max_size=4))
    return {"input_shape": draw(input_shapes()), "layers": layers}


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


@st.composite
def random_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Graphs of one or two inputs: each layer called on earlier tensors (one, or several
    for a merge layer), every tensor led to an output (the unused ones are the outputs, or
    are concatenated at the end). Ranks are tracked so most single-input layers fit; merges
    meet whatever shapes they get."""
    inputs = [{"name": f"x{i}" if i else "x", "shape": draw(input_shapes())}
              for i in range(draw(st.integers(1, 2)))]  # fmt: skip
    ranks = {i["name"]: len(i["shape"]) for i in inputs}
    layers: list[dict[str, Any]] = []
    unused = list(ranks)
    for index in range(draw(st.integers(1, 5))):
        name = f"l{index}"
        names = list(ranks)
        if len(names) >= 2 and draw(st.integers(0, 2)) == 0:
            picked = draw(st.lists(st.sampled_from(names), min_size=2, max_size=3, unique=True))
            kind = draw(st.sampled_from([*MERGES, "Concatenate", "Dot", "MultiHeadAttention"]))
            layer: dict[str, Any] = {"type": kind}
            if kind == "Concatenate":
                layer["axis"] = draw(st.sampled_from([-1, 1]))
            elif kind == "Dot":
                layer["axes"] = draw(st.sampled_from([-1, 1, 2, [1, 2]]))
                picked = picked[:2]
            elif kind == "Subtract":
                picked = picked[:2]
            elif kind == "MultiHeadAttention":
                layer.update(num_heads=draw(st.integers(1, 2)), key_dim=draw(small))
            rank = ranks[picked[0]]
        else:
            picked = [draw(st.sampled_from(names))]
            rank = ranks[picked[0]]
            layer = dict(draw(st.one_of(layer_strategies(rank))))
        layer.update(name=name, inputs=picked)
        layers.append(layer)
        unused = [n for n in unused if n not in picked] + [name]
        ranks[name] = rank_after(layer, rank) if len(picked) == 1 else rank
    several = len(unused) > 1 and not set(unused) & {i["name"] for i in inputs}
    if several and draw(st.booleans()):  # the unused layers are the model's outputs
        return {"inputs": inputs, "layers": layers, "outputs": unused}
    if len(unused) > 1:
        layers.append({"type": "Concatenate", "name": "out", "inputs": unused})
    return {"inputs": inputs, "layers": layers}


def keras_view(spec: ModelSpec) -> list[tuple[tuple[int | None, ...], int, int]] | None:
    """Per layer: output shape, parameters, trainable parameters; None when Keras refuses."""
    try:
        model = build_model(spec)
        # A functional model orders its layers by depth: read them in the spec's order.
        layers = (
            [model.get_layer(str(layer.name)) for layer in spec.layers]
            if spec.is_graph
            else model.layers
        )
        return [
            (
                tuple(layer.output.shape),
                layer.count_params(),
                sum(math.prod(w.shape) for w in layer.trainable_weights),
            )
            for layer in layers
        ]
    except Exception:
        return None


def fitq_view(spec: ModelSpec) -> list[tuple[tuple[int | None, ...], int, int]] | None:
    try:
        summary = summarize(spec)
    except SpecError:
        return None
    trainable = [layer.graph_trainable_param_count(shapes) for layer, shapes in _inputs(spec)]
    return [
        (tuple(layer.output_shape), layer.params, t)
        for layer, t in zip(summary.layers, trainable, strict=True)
    ]


def _inputs(spec: ModelSpec) -> list[tuple[Any, list[tuple[int, ...]]]]:
    """Each layer with the shapes it is called on."""
    shape = spec.resolved_input_shape
    assert shape is not None
    tensors = {i.name: i.shape for i in spec.inputs or []}
    pairs = []
    for i, layer in enumerate(spec.layers):
        shapes = [tensors[n] for n in spec.layer_inputs(i)] if spec.is_graph else [shape]
        pairs.append((layer, shapes))
        shape = layer.graph_output_shape(shapes, f"model.layers.{i}")
        if layer.name is not None:
            tensors[layer.name] = shape
    return pairs


def assert_agrees(raw: dict[str, Any]) -> None:
    spec = ModelSpec.model_validate(raw)
    ours, theirs = fitq_view(spec), keras_view(spec)
    if theirs is None:
        assert ours is None, f"Keras refuses {raw}, fitq accepted it: {ours}"
    elif ours is None:
        # Stricter than Keras only for outputs with a zero-size dimension, and for image
        # augmentation on inputs that are not images (Keras builds it on any rank, then takes
        # a batch of other rank for one unbatched image, or fails in training).
        zero_size = any(0 in shape for shape, _, _ in theirs)
        assert zero_size or _augments_a_non_image(raw, theirs), f"fitq refuses {raw}; {theirs}"
    else:
        assert ours == theirs, raw


AUGMENTATION = {
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness", "RandomCrop",
}  # fmt: skip


def _augments_a_non_image(raw: dict[str, Any], keras_layers: list[Any]) -> bool:
    """Where fitq is stricter than Keras's build: an augmentation layer whose input is not
    (h, w, c), or attention over tensors that are not (steps, features)."""
    graph = "inputs" in raw
    starts = raw["inputs"] if graph else [{"name": "x", "shape": raw["input_shape"]}]
    shapes = {i["name"]: tuple(i["shape"]) for i in starts}
    previous = "x"
    for layer, (shape, _, _) in zip(raw["layers"], keras_layers, strict=True):
        called = [shapes[n] for n in layer.get("inputs", [previous])]
        if layer["type"] in AUGMENTATION and len(called[0]) != 3:
            return True
        if layer["type"] == "MultiHeadAttention" and any(len(c) != 2 for c in called):
            return True
        previous = layer.get("name") or f"layer{len(shapes)}"
        shapes[previous] = shape[1:]
    return False


@PROPERTY
@given(rank_aware_stacks())
def test_rank_aware_stacks_match_keras_layer_by_layer(raw: dict[str, Any]) -> None:
    assert_agrees(raw)


@PROPERTY
@given(random_stacks())
def test_random_stacks_are_refused_exactly_when_keras_refuses(raw: dict[str, Any]) -> None:
    assert_agrees(raw)


@PROPERTY
@given(random_graphs())
def test_random_graphs_match_keras_or_are_refused_as_keras_refuses(raw: dict[str, Any]) -> None:
    assert_agrees(raw)


@pytest.mark.parametrize(
    "strategy",
    [rank_aware_stacks(), random_stacks(), random_graphs()],
    ids=["aware", "random", "graphs"],
)
def test_each_generator_yields_specs_keras_builds_and_specs_it_refuses(strategy) -> None:
    """Guard against a generator that only ever yields valid (or only invalid) stacks."""
    options = settings(
        database=None, derandomize=True, max_examples=150, phases=[Phase.generate]
    )  # an example is enough: no shrinking
    assert find(
        strategy, lambda raw: keras_view(ModelSpec.model_validate(raw)) is None, settings=options
    )
    found = find(
        strategy,
        lambda raw: (
            len(raw["layers"]) >= 3 and fitq_view(ModelSpec.model_validate(raw)) is not None
        ),
        settings=options,
    )
    assert keras_view(ModelSpec.model_validate(found)) is not None
