"""Allowlisted Keras layers. Each spec layer validates its arguments, infers its output shape
and parameter count in pure Python (the same arithmetic as Keras; a property test holds them
equal), and names the keyword arguments the worker hands to ``keras.layers.<type>``.
Adding a layer is adding one class here and to ``Layer``.

Shapes here exclude the batch dimension."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, Strict, field_validator

from fitq.errors import SpecError
from fitq.spec.arguments import Activation, Fraction, Initializer, Regularizer
from fitq.spec.base import SpecModel

Shape = tuple[int, ...]
Dim = Annotated[int, Field(ge=1, le=1_000_000)]
Size = Annotated[int, Field(ge=1, le=4096)]
# The spec is strict (no "3" or true for a number); JSON has no tuples, so arrays may fill them.
ShapeOf = Annotated[tuple[Dim, ...], Strict(False)]
Pair = Size | Annotated[tuple[Size, Size], Strict(False)]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


class LayerBase(SpecModel):
    type: str
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    input_shape: ShapeOf | None = Field(
        None, min_length=1, max_length=8, description="Only on the first layer, as in Keras."
    )
    #: The input rank (batch excluded) the layer needs, or None for any rank ≥ 1.
    input_rank: ClassVar[int | None] = None

    def check_input(self, input_shape: Shape, loc: str) -> None:
        if self.input_rank is not None and len(input_shape) != self.input_rank:
            raise SpecError(
                loc,
                f"{self.type} expected an input of rank {self.input_rank + 1} "
                f"(batch, {_rank_names(self.input_rank)}), received shape "
                f"{_show(input_shape)}",
            )

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return input_shape

    def param_count(self, input_shape: Shape) -> int:
        return 0

    def trainable_param_count(self, input_shape: Shape) -> int:
        return self.param_count(input_shape)

    def keras_kwargs(self) -> dict[str, Any]:
        """Arguments for ``keras.layers.<type>``; ``input_shape`` becomes a ``keras.Input``."""
        kwargs = self.model_dump(exclude={"type", "input_shape"}, exclude_none=True)
        for key in ("kernel_regularizer", "bias_regularizer"):
            regularizer = getattr(self, key, None)
            if regularizer is not None:
                kwargs[key] = regularizer.keras_config()
        return kwargs


def _rank_names(rank: int) -> str:
    return {1: "features", 2: "steps, channels", 3: "height, width, channels"}[rank]


def _show(shape: Shape) -> str:
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def _positive(dims: Shape, layer: LayerBase, loc: str, input_shape: Shape) -> Shape:
    if any(d < 1 for d in dims):
        raise SpecError(
            loc,
            f"{layer.type} expected an input large enough for its window, received shape "
            f"{_show(input_shape)}, which gives an output of size {_show(dims)}",
        )
    return dims


class _Weighted(SpecModel):
    """Arguments of layers with a kernel and a bias."""

    activation: Activation | None = None
    use_bias: bool = True
    kernel_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None


class Dense(LayerBase, _Weighted):
    type: Literal["Dense"]
    units: Dim

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (*input_shape[:-1], self.units)

    def param_count(self, input_shape: Shape) -> int:
        return input_shape[-1] * self.units + (self.units if self.use_bias else 0)


class Dropout(LayerBase):
    type: Literal["Dropout"]
    rate: Fraction
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


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
                    f"{_show(input_shape)}), received {list(self.target_shape)}",
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise SpecError(
                loc,
                f"Reshape expected a target shape of {size} values (the input "
                f"{_show(input_shape)}), received {list(self.target_shape)} ({known} values)",
            )
        return self.target_shape


def _window(size: int, window: int, stride: int, padding: str) -> int:
    """Keras's output length of a convolution or pooling window along one axis."""
    if padding == "valid":
        return (size - window) // stride + 1
    return (size - 1) // stride + 1  # "same" and "causal"


class Conv1D(LayerBase, _Weighted):
    type: Literal["Conv1D"]
    filters: Size
    kernel_size: Size
    strides: Size = 1
    padding: Literal["valid", "same", "causal"] = "valid"
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        steps = _window(input_shape[0], self.kernel_size, self.strides, self.padding)
        return _positive((steps, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kernel = self.kernel_size * input_shape[-1] * self.filters
        return kernel + (self.filters if self.use_bias else 0)


class Conv2D(LayerBase, _Weighted):
    type: Literal["Conv2D"]
    filters: Size
    kernel_size: Pair
    strides: Pair = 1
    padding: Literal["valid", "same"] = "valid"
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        (kh, kw), (sh, sw) = _pair(self.kernel_size), _pair(self.strides)
        h = _window(input_shape[0], kh, sh, self.padding)
        w = _window(input_shape[1], kw, sw, self.padding)
        return _positive((h, w, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kh, kw = _pair(self.kernel_size)
        kernel = kh * kw * input_shape[-1] * self.filters
        return kernel + (self.filters if self.use_bias else 0)


class _Pooling1D(LayerBase):
    pool_size: Size = 2
    strides: Size | None = None
    padding: Literal["valid", "same"] = "valid"
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        stride = self.strides or self.pool_size
        steps = _window(input_shape[0], self.pool_size, stride, self.padding)
        return _positive((steps, input_shape[1]), self, loc, input_shape)


class MaxPooling1D(_Pooling1D):
    type: Literal["MaxPooling1D"]


class AveragePooling1D(_Pooling1D):
    type: Literal["AveragePooling1D"]


class _Pooling2D(LayerBase):
    pool_size: Pair = 2
    strides: Pair | None = None
    padding: Literal["valid", "same"] = "valid"
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        (ph, pw) = _pair(self.pool_size)
        (sh, sw) = _pair(self.strides) if self.strides is not None else (ph, pw)
        h = _window(input_shape[0], ph, sh, self.padding)
        w = _window(input_shape[1], pw, sw, self.padding)
        return _positive((h, w, input_shape[2]), self, loc, input_shape)


class MaxPooling2D(_Pooling2D):
    type: Literal["MaxPooling2D"]


class AveragePooling2D(_Pooling2D):
    type: Literal["AveragePooling2D"]


class GlobalAveragePooling1D(LayerBase):
    type: Literal["GlobalAveragePooling1D"]
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (input_shape[-1],)


class GlobalAveragePooling2D(LayerBase):
    type: Literal["GlobalAveragePooling2D"]
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (input_shape[-1],)


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


Layer = Annotated[
    Dense | Dropout | ActivationLayer | BatchNormalization | LayerNormalization | Flatten
    | Reshape | Conv1D | Conv2D | MaxPooling1D | MaxPooling2D | AveragePooling1D
    | AveragePooling2D | GlobalAveragePooling1D | GlobalAveragePooling2D | Embedding | LSTM
    | GRU,
    Field(discriminator="type"),
]  # fmt: skip

LAYER_TYPES: tuple[str, ...] = (
    "Dense", "Dropout", "Activation", "BatchNormalization", "LayerNormalization", "Flatten",
    "Reshape", "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "Embedding",
    "LSTM", "GRU",
)  # fmt: skip

_LAYER_CLASSES: dict[str, type[LayerBase]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        Dense, Dropout, ActivationLayer, BatchNormalization, LayerNormalization, Flatten,
        Reshape, Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D,
        AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D, Embedding, LSTM, GRU,
    )
}  # fmt: skip


def layer_fields(type_name: str) -> frozenset[str]:
    """The arguments fitq's spec takes for a layer type (besides ``type``)."""
    return frozenset(_LAYER_CLASSES[type_name].model_fields) - {"type"}
