"""Recurrent layers and the wrappers that apply a layer over time or in both directions."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from fitq.errors import SpecError
from fitq.spec.arguments import Activation, Fraction, Initializer, Regularizer
from fitq.spec.layers.base import LayerBase, Seed, Shape, show_shape
from fitq.spec.layers.convolution import (
    AveragePooling1D,
    AveragePooling2D,
    Conv1D,
    Conv2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from fitq.spec.layers.core import ActivationLayer, Dense, Dropout, Flatten, Reshape


class _Recurrent(LayerBase):
    units: Annotated[int, Field(ge=1, le=65_536)]
    activation: Activation | None = None
    recurrent_activation: Activation | None = None
    use_bias: bool = True
    return_sequences: bool = False
    dropout: Fraction | None = None
    recurrent_dropout: Fraction | None = None
    kernel_initializer: Initializer | None = None
    recurrent_initializer: Initializer | None = None
    kernel_regularizer: Regularizer | None = None
    input_rank: ClassVar[int | None] = 2
    gates: ClassVar[int] = 1

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def param_count(self, input_shape: Shape) -> int:
        weights = self.units * (input_shape[-1] + self.units)
        return self.gates * (weights + self._bias())

    def _bias(self) -> int:
        return self.units if self.use_bias else 0


class LSTM(_Recurrent):
    type: Literal["LSTM"]
    gates: ClassVar[int] = 4


class GRU(_Recurrent):
    """Keras's default ``reset_after=True``: two bias vectors per gate."""

    type: Literal["GRU"]
    gates: ClassVar[int] = 3

    def _bias(self) -> int:
        return 2 * self.units if self.use_bias else 0


class SimpleRNN(_Recurrent):
    type: Literal["SimpleRNN"]
    seed: Seed | None = None


RecurrentLayer = Annotated[LSTM | GRU | SimpleRNN, Field(discriminator="type")]


class Bidirectional(LayerBase):
    """The recurrent layer forward and a copy backward, outputs merged (``concat``: side by
    side)."""

    type: Literal["Bidirectional"]
    layer: RecurrentLayer
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"
    input_rank: ClassVar[int | None] = 2

    def wrapped(self) -> dict[str, LayerBase]:
        return {"layer": self.layer}

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        inner = self.layer.output_shape(input_shape, loc)
        if self.merge_mode == "concat":
            return (*inner[:-1], 2 * inner[-1])
        return inner

    def param_count(self, input_shape: Shape) -> int:
        return 2 * self.layer.param_count(input_shape)


# What TimeDistributed may apply at each step.
StepLayer = Annotated[
    Dense | Dropout | ActivationLayer | Flatten | Reshape | Conv1D | Conv2D | MaxPooling1D
    | MaxPooling2D | AveragePooling1D | AveragePooling2D | GlobalAveragePooling1D
    | GlobalAveragePooling2D | GlobalMaxPooling1D | GlobalMaxPooling2D,
    Field(discriminator="type"),
]  # fmt: skip


class TimeDistributed(LayerBase):
    """``layer`` applied to each step: an input (steps, …) gives (steps, layer's output)."""

    type: Literal["TimeDistributed"]
    layer: StepLayer

    def wrapped(self) -> dict[str, LayerBase]:
        return {"layer": self.layer}

    def check_input(self, input_shape: Shape, loc: str) -> None:
        if len(input_shape) < 2:
            raise SpecError(
                loc,
                f"TimeDistributed expected an input of rank ≥ 3 (batch, steps, …), received "
                f"shape {show_shape(input_shape)}",
            )
        self.layer.check_input(input_shape[1:], f"{loc}.layer")

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (input_shape[0], *self.layer.output_shape(input_shape[1:], f"{loc}.layer"))

    def param_count(self, input_shape: Shape) -> int:
        return self.layer.param_count(input_shape[1:])

    def trainable_param_count(self, input_shape: Shape) -> int:
        return self.layer.trainable_param_count(input_shape[1:])
