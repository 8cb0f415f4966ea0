"""Optimizers by their Keras names, with Keras's arguments; a learning rate is a number or a
schedule in Keras's serialised form (``keras.optimizers.schedules.serialize``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from fitq.spec.arguments import (
    Epsilon,
    Fraction,
    LearningRate,
    Name,
    Steps,
    by_name,
    did_you_mean,
)
from fitq.spec.base import SpecModel

# ---- learning-rate schedules ----------------------------------------------------------------


class ScheduleConfig(SpecModel):
    @classmethod
    def keras_reference(cls) -> str | None:
        name = cls.__name__.removesuffix("Config")
        return f"keras.optimizers.schedules.{name}" if name != "Schedule" else None

    name: Name | None = None


class ExponentialDecayConfig(ScheduleConfig):
    initial_learning_rate: LearningRate
    decay_steps: Steps
    decay_rate: float = Field(gt=0.0, le=10.0)
    staircase: bool = False


class InverseTimeDecayConfig(ExponentialDecayConfig):
    pass


class PolynomialDecayConfig(ScheduleConfig):
    initial_learning_rate: LearningRate
    decay_steps: Steps
    end_learning_rate: float = Field(0.0001, ge=0.0, le=10.0)
    power: float = Field(1.0, gt=0.0, le=100.0)
    cycle: bool = False


class PiecewiseConstantDecayConfig(ScheduleConfig):
    boundaries: list[Annotated[int, Field(ge=0, le=10**9)]] = Field(min_length=1, max_length=64)
    values: list[LearningRate] = Field(min_length=2, max_length=65)

    @model_validator(mode="after")
    def _one_more_value(self) -> PiecewiseConstantDecayConfig:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"expected one value more than boundaries ({len(self.boundaries) + 1}), "
                f"received {len(self.values)} values"
            )
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"expected increasing boundaries, received {self.boundaries}")
        return self


class CosineDecayConfig(ScheduleConfig):
    initial_learning_rate: Annotated[float, Field(ge=0.0, le=10.0)]
    decay_steps: Steps
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    warmup_target: LearningRate | None = None
    warmup_steps: Annotated[int, Field(ge=0, le=10**9)] = 0


class CosineDecayRestartsConfig(ScheduleConfig):
    initial_learning_rate: LearningRate
    first_decay_steps: Steps
    t_mul: float = Field(2.0, gt=0.0, le=100.0)
    m_mul: float = Field(1.0, gt=0.0, le=100.0)
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class ScheduleBase(SpecModel):
    """``{"class_name": "ExponentialDecay", "config": {…}}``, as Keras serialises a schedule
    (its ``module`` and ``registered_name`` may come along)."""

    @classmethod
    def keras_reference(cls) -> str | None:
        kind = get_args(cls.model_fields["class_name"].annotation)  # Literal["CosineDecay"]
        return f"keras.optimizers.schedules.{kind[0]} (serialised)" if kind else None

    class_name: str
    config: ScheduleConfig
    module: Literal["keras.optimizers.schedules"] | None = None
    registered_name: None = None

    def keras_kwargs(self) -> dict[str, Any]:
        return self.config.model_dump(exclude_none=True)


class ExponentialDecay(ScheduleBase):
    class_name: Literal["ExponentialDecay"]
    config: ExponentialDecayConfig


class InverseTimeDecay(ScheduleBase):
    class_name: Literal["InverseTimeDecay"]
    config: InverseTimeDecayConfig


class PolynomialDecay(ScheduleBase):
    class_name: Literal["PolynomialDecay"]
    config: PolynomialDecayConfig


class PiecewiseConstantDecay(ScheduleBase):
    class_name: Literal["PiecewiseConstantDecay"]
    config: PiecewiseConstantDecayConfig


class CosineDecay(ScheduleBase):
    class_name: Literal["CosineDecay"]
    config: CosineDecayConfig


class CosineDecayRestarts(ScheduleBase):
    class_name: Literal["CosineDecayRestarts"]
    config: CosineDecayRestartsConfig


Schedule = Annotated[
    ExponentialDecay | InverseTimeDecay | PolynomialDecay | PiecewiseConstantDecay
    | CosineDecay | CosineDecayRestarts,
    Field(discriminator="class_name"),
]  # fmt: skip


SCHEDULES = (
    "ExponentialDecay", "InverseTimeDecay", "PolynomialDecay", "PiecewiseConstantDecay",
    "CosineDecay", "CosineDecayRestarts",
)  # fmt: skip


def _known_schedule(value: Any) -> Any:
    kind = value.get("class_name") if isinstance(value, dict) else None
    if isinstance(kind, str) and kind not in SCHEDULES:
        raise ValueError(
            f"expected a schedule of keras.optimizers.schedules: one of {', '.join(SCHEDULES)}, "
            f"received {kind!r}{did_you_mean(kind, SCHEDULES)}"
        )
    return value


def _rate_kind(value: Any) -> str:
    return "schedule" if isinstance(value, dict | ScheduleBase) else "number"


# A number, or a schedule: one of them is checked, so an error names what was meant.
Rate = Annotated[
    Annotated[LearningRate, Tag("number")] | Annotated[Schedule, Tag("schedule")],
    Discriminator(_rate_kind),
    BeforeValidator(_known_schedule),
]


# ---- optimizers -----------------------------------------------------------------------------


class OptimizerBase(SpecModel):
    @classmethod
    def keras_reference(cls) -> str | None:
        name = getattr(cls, "keras_class", None)
        return f"keras.optimizers.{name}" if name else None

    type: str
    keras_class: ClassVar[str]  # keras.optimizers.<keras_class>
    learning_rate: Rate | None = None
    clipnorm: float | None = Field(None, gt=0.0, le=1e6)
    clipvalue: float | None = Field(None, gt=0.0, le=1e6)
    global_clipnorm: float | None = Field(None, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _one_clip(self) -> OptimizerBase:
        clips = [n for n in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, n)]
        if len(clips) > 1:
            raise ValueError(
                "expected at most one of clipnorm, clipvalue and global_clipnorm, received "
                + " and ".join(clips)
            )
        return self

    @property
    def scheduled(self) -> bool:
        return isinstance(self.learning_rate, ScheduleBase)

    def keras_kwargs(self) -> dict[str, Any]:
        """Unset arguments stay Keras's defaults, so "adam" here is Keras's "adam". A schedule
        is given as its arguments; the worker builds it (``schedule``)."""
        excluded = {"type", "learning_rate"} if self.scheduled else {"type"}
        return self.model_dump(exclude=excluded, exclude_none=True)


class _Moments(OptimizerBase):
    """The Adam family's moment decays and epsilon."""

    beta_1: Fraction | None = None
    beta_2: Fraction | None = None
    epsilon: Epsilon | None = None


class Adam(_Moments):
    type: Literal["adam"]
    keras_class = "Adam"
    amsgrad: bool | None = None


class AdamW(_Moments):
    type: Literal["adamw"]
    keras_class = "AdamW"
    weight_decay: float | None = Field(None, ge=0.0, le=1.0)
    amsgrad: bool | None = None


class Nadam(_Moments):
    type: Literal["nadam"]
    keras_class = "Nadam"


class Adamax(_Moments):
    type: Literal["adamax"]
    keras_class = "Adamax"


class Lion(OptimizerBase):
    type: Literal["lion"]
    keras_class = "Lion"
    beta_1: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    beta_2: Annotated[float, Field(gt=0.0, le=1.0)] | None = None


class Adafactor(OptimizerBase):
    type: Literal["adafactor"]
    keras_class = "Adafactor"
    beta_2_decay: float | None = Field(None, ge=-10.0, le=0.0)
    epsilon_1: float | None = Field(None, gt=0.0, le=1.0)
    epsilon_2: float | None = Field(None, gt=0.0, le=1.0)
    clip_threshold: float | None = Field(None, gt=0.0, le=1e6)
    relative_step: bool | None = None


class SGD(OptimizerBase):
    type: Literal["sgd"]
    keras_class = "SGD"
    momentum: Fraction | None = None
    nesterov: bool | None = None


class RMSprop(OptimizerBase):
    type: Literal["rmsprop"]
    keras_class = "RMSprop"
    rho: Fraction | None = None
    momentum: Fraction | None = None
    epsilon: Epsilon | None = None
    centered: bool | None = None


class Adagrad(OptimizerBase):
    type: Literal["adagrad"]
    keras_class = "Adagrad"
    initial_accumulator_value: float | None = Field(None, ge=0.0, le=1e3)
    epsilon: Epsilon | None = None


OPTIMIZERS: tuple[type[OptimizerBase], ...] = (
    Adam, AdamW, Nadam, Adamax, Lion, Adafactor, SGD, RMSprop, Adagrad,
)  # fmt: skip

OPTIMIZER_NAMES: dict[str, str] = {
    name: o.keras_class.lower()
    for o in OPTIMIZERS
    for name in (o.keras_class.lower(), o.keras_class)
}

OptimizerObject = Annotated[
    Adam | AdamW | Nadam | Adamax | Lion | Adafactor | SGD | RMSprop | Adagrad,
    Field(discriminator="type"),
]
# An optimizer by its name, or as an object with its arguments.
Optimizer = Annotated[OptimizerObject, by_name(OPTIMIZER_NAMES, "an optimizer", OptimizerObject)]
