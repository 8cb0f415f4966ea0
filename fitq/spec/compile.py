"""Allowlists for ``compile`` and layer arguments: losses, optimizers (with their arguments),
metrics, activations, initializers, regularizers. Names are the user's strings; the worker maps
each to a Keras object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from fitq.spec.base import SpecModel

Activation = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
    "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus", "softsign", "exponential",
]  # fmt: skip

Initializer = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "random_normal", "random_uniform", "truncated_normal",
    "zeros", "ones",
]  # fmt: skip

Metric = Literal[
    "mae", "mse", "rmse", "mape", "accuracy", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "auc",
]  # fmt: skip

LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Epsilon = Annotated[float, Field(gt=0.0, le=1.0)]
Penalty = Annotated[float, Field(ge=0.0, le=1e3)]


def _name_to_object(value: Any) -> Any:
    """``"adam"`` is ``{"type": "adam"}``: a name or an object with arguments, as in Keras."""
    return {"type": value} if isinstance(value, str) else value


class Regularizer(SpecModel):
    """``keras.regularizers.L1L2(l1, l2)``."""

    l1: Penalty = 0.0
    l2: Penalty = 0.0

    def keras_config(self) -> dict[str, Any]:
        return {"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}}


# ---- losses -------------------------------------------------------------------------------


class LossBase(SpecModel):
    type: str

    def keras_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"type"}, exclude_none=True)

    @property
    def family(self) -> Literal["regression", "binary", "categorical", "sparse"]:
        return "regression"


class MSE(LossBase):
    type: Literal["mse"]


class MAE(LossBase):
    type: Literal["mae"]


class Huber(LossBase):
    type: Literal["huber"]
    delta: float | None = Field(None, gt=0.0, le=1e6)


class LogCosh(LossBase):
    type: Literal["log_cosh"]


class BinaryCrossentropy(LossBase):
    type: Literal["binary_crossentropy"]
    from_logits: bool | None = None
    label_smoothing: Fraction | None = None

    @property
    def family(self) -> Literal["binary"]:
        return "binary"


class CategoricalCrossentropy(LossBase):
    type: Literal["categorical_crossentropy"]
    from_logits: bool | None = None
    label_smoothing: Fraction | None = None

    @property
    def family(self) -> Literal["categorical"]:
        return "categorical"


class SparseCategoricalCrossentropy(LossBase):
    type: Literal["sparse_categorical_crossentropy"]
    from_logits: bool | None = None

    @property
    def family(self) -> Literal["sparse"]:
        return "sparse"


Loss = Annotated[
    MSE | MAE | Huber | LogCosh | BinaryCrossentropy | CategoricalCrossentropy
    | SparseCategoricalCrossentropy,
    Field(discriminator="type"),
    BeforeValidator(_name_to_object),
]  # fmt: skip


# ---- optimizers ---------------------------------------------------------------------------


class OptimizerBase(SpecModel):
    type: str
    learning_rate: LearningRate | None = None
    clipnorm: float | None = Field(None, gt=0.0, le=1e6)
    clipvalue: float | None = Field(None, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _one_clip(self) -> OptimizerBase:
        if self.clipnorm is not None and self.clipvalue is not None:
            raise ValueError("expected at most one of clipnorm and clipvalue, received both")
        return self

    def keras_kwargs(self) -> dict[str, Any]:
        # Unset arguments stay Keras's defaults, so "adam" here is Keras's "adam".
        return self.model_dump(exclude={"type"}, exclude_none=True)


class Adam(OptimizerBase):
    type: Literal["adam"]
    beta_1: Fraction | None = None
    beta_2: Fraction | None = None
    epsilon: Epsilon | None = None
    amsgrad: bool | None = None


class AdamW(OptimizerBase):
    type: Literal["adamw"]
    weight_decay: float | None = Field(None, ge=0.0, le=1.0)
    beta_1: Fraction | None = None
    beta_2: Fraction | None = None
    epsilon: Epsilon | None = None
    amsgrad: bool | None = None


class SGD(OptimizerBase):
    type: Literal["sgd"]
    momentum: Fraction | None = None
    nesterov: bool | None = None


class RMSprop(OptimizerBase):
    type: Literal["rmsprop"]
    rho: Fraction | None = None
    momentum: Fraction | None = None
    epsilon: Epsilon | None = None
    centered: bool | None = None


class Adagrad(OptimizerBase):
    type: Literal["adagrad"]
    initial_accumulator_value: float | None = Field(None, ge=0.0, le=1e3)
    epsilon: Epsilon | None = None


Optimizer = Annotated[
    Adam | AdamW | SGD | RMSprop | Adagrad,
    Field(discriminator="type"),
    BeforeValidator(_name_to_object),
]


class CompileSpec(SpecModel):
    loss: Loss
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="adam"))
    metrics: list[Metric] = Field(default_factory=list, max_length=16)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[str]) -> list[str]:
        seen = [m for i, m in enumerate(metrics) if m in metrics[:i]]
        if seen:
            raise ValueError(f"expected each metric once, received {seen[0]!r} twice")
        return metrics
