"""Losses by their Keras names, with Keras's arguments. ``family`` says what targets a loss
takes, which the target checks and the label encoding read."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from fitq.spec.arguments import Fraction, Probability, by_name
from fitq.spec.base import SpecModel, tag_of

# regression: any numbers; binary: 0/1 per output; hinge: -1/1 (or 0/1) per output;
# categorical: a row per class (one-hot or a distribution); sparse: a class index.
LossFamily = Literal["regression", "binary", "hinge", "categorical", "sparse"]


class LossBase(SpecModel):
    @classmethod
    def keras_reference(cls) -> str | None:
        name = getattr(cls, "keras_class", None)
        return f"keras.losses.{name}" if name else None

    type: str
    keras_class: ClassVar[str]  # keras.losses.<keras_class>
    family: ClassVar[LossFamily] = "regression"
    aliases: ClassVar[tuple[str, ...]] = ()  # Keras's other names for it

    def keras_kwargs(self) -> dict[str, Any]:
        # Unset arguments stay Keras's defaults.
        return self.model_dump(exclude={"type"}, exclude_none=True)


class MSE(LossBase):
    type: Literal["mse"]
    keras_class = "MeanSquaredError"
    aliases = ("mean_squared_error",)


class MAE(LossBase):
    type: Literal["mae"]
    keras_class = "MeanAbsoluteError"
    aliases = ("mean_absolute_error",)


class MAPE(LossBase):
    type: Literal["mape"]
    keras_class = "MeanAbsolutePercentageError"
    aliases = ("mean_absolute_percentage_error",)


class MSLE(LossBase):
    type: Literal["msle"]
    keras_class = "MeanSquaredLogarithmicError"
    aliases = ("mean_squared_logarithmic_error",)


class Huber(LossBase):
    type: Literal["huber"]
    keras_class = "Huber"
    delta: float | None = Field(None, gt=0.0, le=1e6)


class LogCosh(LossBase):
    type: Literal["log_cosh"]
    keras_class = "LogCosh"


class Poisson(LossBase):
    type: Literal["poisson"]
    keras_class = "Poisson"


class _Crossentropy(LossBase):
    from_logits: bool | None = None
    label_smoothing: Fraction | None = None


class _Focal(_Crossentropy):
    alpha: Probability | None = None
    gamma: float | None = Field(None, ge=0.0, le=100.0)


class BinaryCrossentropy(_Crossentropy):
    type: Literal["binary_crossentropy"]
    keras_class = "BinaryCrossentropy"
    family = "binary"
    aliases = ("bce",)


class BinaryFocalCrossentropy(_Focal):
    type: Literal["binary_focal_crossentropy"]
    keras_class = "BinaryFocalCrossentropy"
    family = "binary"
    apply_class_balancing: bool | None = None


class Hinge(LossBase):
    type: Literal["hinge"]
    keras_class = "Hinge"
    family = "hinge"


class SquaredHinge(LossBase):
    type: Literal["squared_hinge"]
    keras_class = "SquaredHinge"
    family = "hinge"


class CategoricalCrossentropy(_Crossentropy):
    type: Literal["categorical_crossentropy"]
    keras_class = "CategoricalCrossentropy"
    family = "categorical"


class CategoricalFocalCrossentropy(_Focal):
    type: Literal["categorical_focal_crossentropy"]
    keras_class = "CategoricalFocalCrossentropy"
    family = "categorical"


class CategoricalHinge(LossBase):
    type: Literal["categorical_hinge"]
    keras_class = "CategoricalHinge"
    family = "categorical"


class KLDivergence(LossBase):
    type: Literal["kl_divergence"]
    keras_class = "KLDivergence"
    family = "categorical"
    aliases = ("kld",)


class SparseCategoricalCrossentropy(LossBase):
    type: Literal["sparse_categorical_crossentropy"]
    keras_class = "SparseCategoricalCrossentropy"
    family = "sparse"
    from_logits: bool | None = None


LOSSES: tuple[type[LossBase], ...] = (
    MSE, MAE, MAPE, MSLE, Huber, LogCosh, Poisson, BinaryCrossentropy, BinaryFocalCrossentropy,
    Hinge, SquaredHinge, CategoricalCrossentropy, CategoricalFocalCrossentropy,
    CategoricalHinge, KLDivergence, SparseCategoricalCrossentropy,
)  # fmt: skip


LOSS_BY_TYPE: dict[str, type[LossBase]] = {tag_of(loss): loss for loss in LOSSES}
# Every name a loss is asked by → the spec's name.
LOSS_NAMES: dict[str, str] = {
    name: tag_of(loss)
    for loss in LOSSES
    for name in (tag_of(loss), loss.keras_class, *loss.aliases)
}

LossObject = Annotated[
    MSE | MAE | MAPE | MSLE | Huber | LogCosh | Poisson | BinaryCrossentropy
    | BinaryFocalCrossentropy | Hinge | SquaredHinge | CategoricalCrossentropy
    | CategoricalFocalCrossentropy | CategoricalHinge | KLDivergence
    | SparseCategoricalCrossentropy,
    Field(discriminator="type"),
]  # fmt: skip
# A loss by one of its names, or as an object with its arguments.
Loss = Annotated[LossObject, by_name(LOSS_NAMES, "a loss", LossObject)]
