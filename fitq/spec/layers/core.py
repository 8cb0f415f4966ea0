"""Core layers: dense, dropout and noise, normalization, shape changes, embedding."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict, field_validator, model_validator

from fitq.errors import SpecError
from fitq.spec.arguments import Activation, Fraction, Initializer
from fitq.spec.layers.base import Dim, LayerBase, Seed, Shape, Weighted, show_shape


class Dense(LayerBase, Weighted):
    type: Literal["Dense"]
    units: Dim

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (*input_shape[:-1], self.units)

    def param_count(self, input_shape: Shape) -> int:
        return input_shape[-1] * self.units + (self.units if self.use_bias else 0)


class Dropout(LayerBase):
    type: Literal["Dropout"]
    rate: Fraction
    seed: Seed | None = None


class ActivationLayer(LayerBase):
    type: Literal["Activation"]
    activation: Activation


class BatchNormalization(LayerBase):
    type: Literal["BatchNormalization"]
    momentum: Fraction | None = None
    epsilon: float | None = Field(None, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def param_count(self, input_shape: Shape) -> int:
        # gamma and beta train; the moving mean and variance do not.
        return self.trainable_param_count(input_shape) + 2 * input_shape[-1]

    def trainable_param_count(self, input_shape: Shape) -> int:
        return input_shape[-1] * (int(self.center) + int(self.scale))


class LayerNormalization(LayerBase):
    type: Literal["LayerNormalization"]
    epsilon: float | None = Field(None, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def param_count(self, input_shape: Shape) -> int:
        return input_shape[-1] * (int(self.center) + int(self.scale))


class Flatten(LayerBase):
    type: Literal["Flatten"]

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (math.prod(input_shape),)


class Reshape(LayerBase):
    type: Literal["Reshape"]
    target_shape: Annotated[
        tuple[Annotated[int, Field(ge=-1, le=1_000_000)], ...], Strict(False)
    ] = Field(min_length=1, max_length=8)

    @field_validator("target_shape")
    @classmethod
    def _dims(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if 0 in shape:
            raise ValueError(f"expected dimensions ≥ 1 (or one -1), received {list(shape)}")
        if shape.count(-1) > 1:
            raise ValueError(f"expected at most one -1, received {list(shape)}")
        return shape

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise SpecError(
                    loc,
                    f"Reshape expected a target shape whose size divides {size} (the input "
                    f"{show_shape(input_shape)}), received {list(self.target_shape)}",
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise SpecError(
                loc,
                f"Reshape expected a target shape of {size} values (the input "
                f"{show_shape(input_shape)}), received {list(self.target_shape)} ({known} values)",
            )
        return self.target_shape


class Embedding(LayerBase):
    """Token ids in, vectors out. Only as the first layer: its inputs are the data's integers."""

    type: Literal["Embedding"]
    input_dim: Dim
    output_dim: Annotated[int, Field(ge=1, le=65_536)]
    embeddings_initializer: Initializer | None = None
    mask_zero: bool | None = None

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (*input_shape, self.output_dim)

    def param_count(self, input_shape: Shape) -> int:
        return self.input_dim * self.output_dim


class GaussianNoise(LayerBase):
    """Adds N(0, stddev) noise in training, drawn from the seeded generator."""

    type: Literal["GaussianNoise"]
    stddev: float = Field(ge=0.0, le=1e3)
    seed: Seed | None = None


class GaussianDropout(LayerBase):
    type: Literal["GaussianDropout"]
    rate: Fraction
    seed: Seed | None = None


class Rescaling(LayerBase):
    """``x * scale + offset`` (images in [0, 255] to [0, 1]: ``scale=1/255``)."""

    type: Literal["Rescaling"]
    scale: float = Field(ge=-1e6, le=1e6)
    offset: float = Field(0.0, ge=-1e6, le=1e6)


class Normalization(LayerBase):
    """``(x - mean) / sqrt(variance)`` over the last axis, with the mean and variance given
    (one per feature, or one for all: constants, no weights); or, given neither, adapted to
    the training rows of the model input it is called on, as a script's ``norm =
    Normalization(); norm.adapt(x_train)`` (then a mean, a variance and a count as weights)."""

    type: Literal["Normalization"]
    mean: float | list[float] | None = None
    variance: float | list[Annotated[float, Field(ge=0.0)]] | None = None
    invert: bool = False

    @model_validator(mode="after")
    def _both(self) -> Normalization:
        if (self.mean is None) != (self.variance is None):
            raise ValueError(
                "expected mean and variance, or neither (adapted to the training rows), "
                f"received only {'mean' if self.variance is None else 'variance'}"
            )
        sizes = [len(v) if isinstance(v, list) else None for v in (self.mean, self.variance)]
        if sizes[0] != sizes[1]:
            raise ValueError(
                "expected mean and variance of the same shape (two numbers, or two lists of "
                f"one length), received {sizes[0] or 'a number'} and {sizes[1] or 'a number'}"
            )
        return self

    @property
    def adapted(self) -> bool:
        """Fitted to the training data (no statistics given)."""
        return self.mean is None

    def check_input(self, input_shape: Shape, loc: str) -> None:
        for name in ("mean", "variance"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) not in (1, input_shape[-1]):
                raise SpecError(
                    loc,
                    f"Normalization expected {name} of one value or {input_shape[-1]} (the "
                    f"input's last axis), received {len(value)} values",
                )

    def param_count(self, input_shape: Shape) -> int:
        # Adapted: a mean and a variance per feature, and a count (none trainable); given
        # statistics are constants.
        return 2 * input_shape[-1] + 1 if self.adapted else 0

    def trainable_param_count(self, input_shape: Shape) -> int:
        return 0


class RepeatVector(LayerBase):
    type: Literal["RepeatVector"]
    n: Dim
    input_rank: ClassVar[int | None] = 1

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (self.n, input_shape[0])


class Masking(LayerBase):
    """Steps whose every feature equals ``mask_value`` are skipped by the layers after."""

    type: Literal["Masking"]
    mask_value: float = Field(0.0, ge=-1e9, le=1e9)
