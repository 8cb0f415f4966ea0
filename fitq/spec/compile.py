"""Allowlists for ``compile``: losses, optimizers (with their arguments), metrics, activations.
Names are the user's strings; the worker maps each to a Keras object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from fitq.spec.base import SpecModel

Activation = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
    "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus", "softsign", "exponential",
]  # fmt: skip

Loss = Literal["mse", "mae"]
Metric = Literal["mae", "mse"]

LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]


class OptimizerBase(SpecModel):
    type: str
    learning_rate: LearningRate | None = None

    def keras_kwargs(self) -> dict[str, Any]:
        # Unset arguments stay Keras's defaults, so "adam" here is Keras's "adam".
        return self.model_dump(exclude={"type"}, exclude_none=True)


class Adam(OptimizerBase):
    type: Literal["adam"]
    beta_1: float | None = Field(None, ge=0.0, lt=1.0)
    beta_2: float | None = Field(None, ge=0.0, lt=1.0)
    epsilon: float | None = Field(None, gt=0.0, le=1.0)
    amsgrad: bool | None = None


class SGD(OptimizerBase):
    type: Literal["sgd"]
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    nesterov: bool | None = None


class RMSprop(OptimizerBase):
    type: Literal["rmsprop"]
    rho: float | None = Field(None, ge=0.0, lt=1.0)
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    epsilon: float | None = Field(None, gt=0.0, le=1.0)
    centered: bool | None = None


def _name_to_object(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


Optimizer = Annotated[
    Adam | SGD | RMSprop, Field(discriminator="type"), BeforeValidator(_name_to_object)
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
