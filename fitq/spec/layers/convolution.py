"""Convolution, pooling, up-sampling and spatial dropout over steps (rank 2) and images
(rank 3)."""

from __future__ import annotations

from typing import ClassVar, Literal

from fitq.spec.arguments import Activation, Fraction, Initializer, Regularizer
from fitq.spec.layers.base import (
    LayerBase,
    Pair,
    Seed,
    Shape,
    Size,
    Weighted,
    pair_of,
    positive_dims,
    transposed_length,
    window_length,
)


def window_2d(input_shape: Shape, kernel: Pair, strides: Pair, padding: str) -> tuple[int, int]:
    """Height and width after a 2-D window (``window_length`` along each axis)."""
    (kh, kw), (sh, sw) = pair_of(kernel), pair_of(strides)
    return (
        window_length(input_shape[0], kh, sh, padding),
        window_length(input_shape[1], kw, sw, padding),
    )


class Conv1D(LayerBase, Weighted):
    type: Literal["Conv1D"]
    filters: Size
    kernel_size: Size
    strides: Size = 1
    padding: Literal["valid", "same", "causal"] = "valid"
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        steps = window_length(input_shape[0], self.kernel_size, self.strides, self.padding)
        return positive_dims((steps, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kernel = self.kernel_size * input_shape[-1] * self.filters
        return kernel + (self.filters if self.use_bias else 0)


class Conv2D(LayerBase, Weighted):
    type: Literal["Conv2D"]
    filters: Size
    kernel_size: Pair
    strides: Pair = 1
    padding: Literal["valid", "same"] = "valid"
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        h, w = window_2d(input_shape, self.kernel_size, self.strides, self.padding)
        return positive_dims((h, w, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kh, kw = pair_of(self.kernel_size)
        kernel = kh * kw * input_shape[-1] * self.filters
        return kernel + (self.filters if self.use_bias else 0)


class _Pooling1D(LayerBase):
    pool_size: Size = 2
    strides: Size | None = None
    padding: Literal["valid", "same"] = "valid"
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        stride = self.strides or self.pool_size
        steps = window_length(input_shape[0], self.pool_size, stride, self.padding)
        return positive_dims((steps, input_shape[1]), self, loc, input_shape)


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
        strides = self.strides if self.strides is not None else self.pool_size
        h, w = window_2d(input_shape, self.pool_size, strides, self.padding)
        return positive_dims((h, w, input_shape[2]), self, loc, input_shape)


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


class GlobalMaxPooling1D(GlobalAveragePooling1D):
    type: Literal["GlobalMaxPooling1D"]  # type: ignore[assignment]


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    type: Literal["GlobalMaxPooling2D"]  # type: ignore[assignment]


class Conv1DTranspose(Conv1D):
    """Conv1D's arguments and weights; the output grows by the stride."""

    type: Literal["Conv1DTranspose"]  # type: ignore[assignment]
    padding: Literal["valid", "same"] = "valid"

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        steps = transposed_length(input_shape[0], self.kernel_size, self.strides, self.padding)
        return (steps, self.filters)


class Conv2DTranspose(Conv2D):
    """Conv2D's arguments and weights; the output grows by the strides."""

    type: Literal["Conv2DTranspose"]  # type: ignore[assignment]

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        (kh, kw), (sh, sw) = pair_of(self.kernel_size), pair_of(self.strides)
        h = transposed_length(input_shape[0], kh, sh, self.padding)
        w = transposed_length(input_shape[1], kw, sw, self.padding)
        return (h, w, self.filters)


class _Separable(LayerBase):
    """A depthwise then a pointwise convolution (no ``kernel_*``: depthwise and pointwise)."""

    filters: Size
    padding: Literal["valid", "same"] = "valid"
    depth_multiplier: Size = 1
    activation: Activation | None = None
    use_bias: bool = True
    depthwise_initializer: Initializer | None = None
    pointwise_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None
    depthwise_regularizer: Regularizer | None = None
    pointwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    def _separable_params(self, window: int, channels: int) -> int:
        depthwise = window * channels * self.depth_multiplier
        pointwise = channels * self.depth_multiplier * self.filters
        return depthwise + pointwise + (self.filters if self.use_bias else 0)


class SeparableConv1D(_Separable):
    type: Literal["SeparableConv1D"]
    kernel_size: Size
    strides: Size = 1
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        steps = window_length(input_shape[0], self.kernel_size, self.strides, self.padding)
        return positive_dims((steps, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        return self._separable_params(self.kernel_size, input_shape[-1])


class SeparableConv2D(_Separable):
    type: Literal["SeparableConv2D"]
    kernel_size: Pair
    strides: Pair = 1
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        h, w = window_2d(input_shape, self.kernel_size, self.strides, self.padding)
        return positive_dims((h, w, self.filters), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kh, kw = pair_of(self.kernel_size)
        return self._separable_params(kh * kw, input_shape[-1])


class DepthwiseConv2D(LayerBase):
    type: Literal["DepthwiseConv2D"]
    kernel_size: Pair
    strides: Pair = 1
    padding: Literal["valid", "same"] = "valid"
    depth_multiplier: Size = 1
    activation: Activation | None = None
    use_bias: bool = True
    depthwise_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None
    depthwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        h, w = window_2d(input_shape, self.kernel_size, self.strides, self.padding)
        channels = input_shape[2] * self.depth_multiplier
        return positive_dims((h, w, channels), self, loc, input_shape)

    def param_count(self, input_shape: Shape) -> int:
        kh, kw = pair_of(self.kernel_size)
        channels = input_shape[-1] * self.depth_multiplier
        return kh * kw * channels + (channels if self.use_bias else 0)


class UpSampling1D(LayerBase):
    type: Literal["UpSampling1D"]
    size: Size = 2
    input_rank: ClassVar[int | None] = 2

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (input_shape[0] * self.size, input_shape[1])


class UpSampling2D(LayerBase):
    type: Literal["UpSampling2D"]
    size: Pair = 2
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos3", "lanczos5", "area"] = (
        "nearest"
    )
    input_rank: ClassVar[int | None] = 3

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        sh, sw = pair_of(self.size)
        return (input_shape[0] * sh, input_shape[1] * sw, input_shape[2])


class SpatialDropout1D(LayerBase):
    """Drops whole channels (feature maps), drawn from the seeded generator."""

    type: Literal["SpatialDropout1D"]
    rate: Fraction
    seed: Seed | None = None
    input_rank: ClassVar[int | None] = 2


class SpatialDropout2D(SpatialDropout1D):
    type: Literal["SpatialDropout2D"]  # type: ignore[assignment]
    input_rank: ClassVar[int | None] = 3
