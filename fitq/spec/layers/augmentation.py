"""Image augmentation layers: random in training, the identity at inference (RandomCrop
center-crops). Each draws from its seeded generator, so a job's augmentations are the hand
run's too."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict, model_validator

from fitq.spec.layers.base import Dim, LayerBase, Seed, Shape

Factor = Annotated[float, Field(ge=-1.0, le=1.0)]
# One number (±factor) or a (lower, upper) pair, as Keras takes either.
FactorRange = Factor | Annotated[tuple[Factor, Factor], Strict(False)]
FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["nearest", "bilinear"]


class _Augmentation(LayerBase):
    seed: Seed | None = None
    input_rank: ClassVar[int | None] = 3


class _Filled(_Augmentation):
    """Layers that move pixels and fill what comes into view."""

    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    fill_value: float = Field(0.0, ge=-1e6, le=1e6)


class RandomFlip(_Augmentation):
    type: Literal["RandomFlip"]
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal_and_vertical"


class RandomRotation(_Filled):
    """``factor``: a fraction of a full turn (0.1: up to ±36°)."""

    type: Literal["RandomRotation"]
    factor: FactorRange


class RandomZoom(_Filled):
    type: Literal["RandomZoom"]
    height_factor: FactorRange
    width_factor: FactorRange | None = None


class RandomTranslation(_Filled):
    type: Literal["RandomTranslation"]
    height_factor: FactorRange
    width_factor: FactorRange


class _ValueRange(_Augmentation):
    value_range: Annotated[tuple[float, float], Strict(False)] = (0.0, 255.0)

    @model_validator(mode="after")
    def _ordered(self) -> _ValueRange:
        low, high = self.value_range
        if not low < high:
            raise ValueError(
                f"expected value_range (low, high) with low < high, received {[low, high]}"
            )
        return self


class RandomContrast(_ValueRange):
    type: Literal["RandomContrast"]
    factor: (
        Annotated[float, Field(ge=0.0, le=1.0)]
        | Annotated[
            tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]],
            Strict(False),
        ]
    )


class RandomBrightness(_ValueRange):
    type: Literal["RandomBrightness"]
    factor: FactorRange


class RandomCrop(_Augmentation):
    type: Literal["RandomCrop"]
    height: Dim
    width: Dim

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return (self.height, self.width, input_shape[2])
