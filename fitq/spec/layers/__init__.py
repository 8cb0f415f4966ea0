"""Allowlisted Keras layers, one spec class each (``base.LayerBase``): core, convolution,
recurrent, augmentation. Adding a layer is adding its class to its module and to ``Layer``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fitq.spec.base import tag_of
from fitq.spec.layers.augmentation import (
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from fitq.spec.layers.base import LayerBase, LayerName, Shape, ShapeOf
from fitq.spec.layers.convolution import (
    AveragePooling1D,
    AveragePooling2D,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
    SeparableConv1D,
    SeparableConv2D,
    SpatialDropout1D,
    SpatialDropout2D,
    UpSampling1D,
    UpSampling2D,
)
from fitq.spec.layers.core import (
    ActivationLayer,
    BatchNormalization,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GaussianDropout,
    GaussianNoise,
    LayerNormalization,
    Masking,
    Normalization,
    RepeatVector,
    Rescaling,
    Reshape,
)
from fitq.spec.layers.merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    MultiHeadAttention,
    Multiply,
    Subtract,
)
from fitq.spec.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed

LAYER_CLASSES: tuple[type[LayerBase], ...] = (
    Dense, Dropout, ActivationLayer, BatchNormalization, LayerNormalization, Flatten, Reshape,
    Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D,
    GlobalAveragePooling1D, GlobalAveragePooling2D, Embedding, LSTM, GRU,
    # issue 20's additions
    SimpleRNN, Bidirectional, TimeDistributed, GlobalMaxPooling1D, GlobalMaxPooling2D,
    Conv1DTranspose, Conv2DTranspose, SeparableConv1D, SeparableConv2D, DepthwiseConv2D,
    UpSampling1D, UpSampling2D, SpatialDropout1D, SpatialDropout2D, GaussianNoise,
    GaussianDropout, Rescaling, Normalization, RepeatVector, Masking, RandomFlip,
    RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomBrightness, RandomCrop,
    # graph models only: called on several tensors
    Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, MultiHeadAttention,
)  # fmt: skip

Layer = Annotated[
    Dense | Dropout | ActivationLayer | BatchNormalization | LayerNormalization | Flatten
    | Reshape | Conv1D | Conv2D | MaxPooling1D | MaxPooling2D | AveragePooling1D
    | AveragePooling2D | GlobalAveragePooling1D | GlobalAveragePooling2D | Embedding | LSTM
    | GRU | SimpleRNN | Bidirectional | TimeDistributed | GlobalMaxPooling1D
    | GlobalMaxPooling2D | Conv1DTranspose | Conv2DTranspose | SeparableConv1D
    | SeparableConv2D | DepthwiseConv2D | UpSampling1D | UpSampling2D | SpatialDropout1D
    | SpatialDropout2D | GaussianNoise | GaussianDropout | Rescaling | Normalization
    | RepeatVector | Masking | RandomFlip | RandomRotation | RandomZoom | RandomTranslation
    | RandomContrast | RandomBrightness | RandomCrop | Add | Subtract | Multiply | Average
    | Maximum | Minimum | Concatenate | Dot | MultiHeadAttention,
    Field(discriminator="type"),
]  # fmt: skip


_BY_TYPE: dict[str, type[LayerBase]] = {tag_of(cls): cls for cls in LAYER_CLASSES}
LAYER_TYPES: tuple[str, ...] = tuple(_BY_TYPE)


def layer_fields(type_name: str) -> frozenset[str]:
    """The arguments fitq's spec takes for a layer type (besides ``type``)."""
    return frozenset(_BY_TYPE[type_name].model_fields) - {"type"}


__all__ = [
    "LAYER_TYPES", "Embedding", "Layer", "LayerBase", "LayerName", "Shape", "ShapeOf",
    "layer_fields",
]  # fmt: skip
