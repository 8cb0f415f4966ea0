"""Shape and parameter inference in pure Python: every layer's output shape and parameter
count, and the data's shapes against the model's input and output, checked before a job is
queued (tests prove the numbers equal Keras's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from fitq.errors import SpecError
from fitq.spec.job import ModelSpec


class LayerSummary(BaseModel):
    type: str
    name: str | None = None
    output_shape: list[int | None]  # batch dimension first, as None
    params: int


class ModelSummary(BaseModel):
    layers: list[LayerSummary]
    input_shape: list[int | None]
    output_shape: list[int | None]
    total_params: int
    trainable_params: int


def summarize(model: ModelSpec) -> ModelSummary:
    shape = model.resolved_input_shape
    assert shape is not None  # guaranteed by ModelSpec's validator
    input_shape = shape
    layers: list[LayerSummary] = []
    for i, layer in enumerate(model.layers):
        loc = f"model.layers.{i}"
        params = layer.param_count(shape)
        shape = layer.output_shape(shape, loc)
        layers.append(
            LayerSummary(
                type=layer.type, name=layer.name, output_shape=[None, *shape], params=params
            )
        )
    total = sum(layer.params for layer in layers)
    return ModelSummary(
        layers=layers,
        input_shape=[None, *input_shape],
        output_shape=[None, *shape],
        total_params=total,
        trainable_params=total,
    )


def check_data_shapes(
    summary: ModelSummary, shapes: Mapping[str, tuple[Sequence[int], Sequence[int]]]
) -> None:
    """``shapes`` maps a split to its (x shape, y shape), rows first."""
    model_in = tuple(summary.input_shape[1:])
    model_out = tuple(summary.output_shape[1:])
    for split, (x_shape, y_shape) in shapes.items():
        if tuple(x_shape[1:]) != model_in:
            raise SpecError(
                f"data.{split}.x",
                f"expected rows of shape {list(model_in)} (the model's input), "
                f"received rows of shape {list(x_shape[1:])}",
            )
        y_rows = tuple(y_shape[1:])
        if y_rows != model_out and not (y_rows == () and model_out == (1,)):
            raise SpecError(
                f"data.{split}.y",
                f"expected targets of shape {list(model_out)} (the model's output)"
                f"{' or scalars' if model_out == (1,) else ''}, "
                f"received targets of shape {list(y_rows)}",
            )
