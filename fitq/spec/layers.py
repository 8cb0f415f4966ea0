"""Allowlisted Keras layers: each spec layer validates its arguments, infers its output shape
and parameter count in pure Python, and names the keyword arguments the worker hands to
``keras.layers.<type>``. Adding a layer is adding one class here and to ``Layer``."""

from __future__ import annotations

from abc import abstractmethod
from typing import Annotated, Any, Literal

from pydantic import Field

from fitq.spec.base import SpecModel
from fitq.spec.compile import Activation

Shape = tuple[int, ...]  # without the batch dimension


class LayerBase(SpecModel):
    type: str
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    input_shape: tuple[Annotated[int, Field(ge=1, le=1_000_000)], ...] | None = Field(
        None, min_length=1, max_length=8, description="Only on the first layer, as in Keras."
    )

    @abstractmethod
    def output_shape(self, input_shape: Shape, loc: str) -> Shape: ...

    def param_count(self, input_shape: Shape) -> int:
        return 0

    def keras_kwargs(self) -> dict[str, Any]:
        """Arguments for ``keras.layers.<type>``; ``input_shape`` becomes a ``keras.Input``."""
        return self.model_dump(exclude={"type", "input_shape"}, exclude_none=True)


class Dense(LayerBase):
    type: Literal["Dense"]
    units: int = Field(ge=1, le=1_000_000)
    activation: Activation | None = None
    use_bias: bool = True

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (*input_shape[:-1], self.units)

    def param_count(self, input_shape: Shape) -> int:
        return input_shape[-1] * self.units + (self.units if self.use_bias else 0)


class Dropout(LayerBase):
    type: Literal["Dropout"]
    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return input_shape


class ActivationLayer(LayerBase):
    type: Literal["Activation"]
    activation: Activation

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return input_shape


Layer = Annotated[Dense | Dropout | ActivationLayer, Field(discriminator="type")]
