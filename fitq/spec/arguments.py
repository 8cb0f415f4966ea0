"""Argument types shared by layers, losses, optimizers and metrics, and how a Keras name or
alias becomes the spec's own name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field

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

LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Epsilon = Annotated[float, Field(gt=0.0, le=1.0)]
Penalty = Annotated[float, Field(ge=0.0, le=1e3)]
Steps = Annotated[int, Field(ge=1, le=10**9)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


class Regularizer(SpecModel):
    """``keras.regularizers.L1L2(l1, l2)``."""

    @classmethod
    def keras_reference(cls) -> str | None:
        return "keras.regularizers.L1L2"

    l1: Penalty = 0.0
    l2: Penalty = 0.0

    def keras_config(self) -> dict[str, Any]:
        return {"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}}


def did_you_mean(value: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``names`` (case aside), or nothing."""
    names = list(names)
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.75)
    if close:
        return f" (did you mean {close[0]!r}?)"
    by_lower: dict[str, str] = {}
    for name in names:  # the first of a spelling wins: the spec's own name comes first
        by_lower.setdefault(name.lower(), name)
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.75)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def named_object(value: Any, aliases: Mapping[str, str], kind: str) -> Any:
    """``"adam"`` is ``{"type": "adam"}``: a name, or an object with its arguments, as Keras
    takes either. Keras's own aliases and class names (``"mean_squared_error"``,
    ``"MeanSquaredError"``) become the spec's name (``"mse"``); ``aliases`` maps every name
    accepted (the spec's own included) to the spec's name. An unknown name is refused here,
    in the user's words, with the closest name when there is one."""
    name = value if isinstance(value, str) else None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        name = value["type"]
    if name is None:
        return value
    if name not in aliases:
        spec_names = sorted(set(aliases.values()))
        raise ValueError(
            f"expected {kind} Keras knows by one of the names {', '.join(spec_names)} (or its "
            f"Keras class name), received {name!r}{did_you_mean(name, aliases)}"
        )
    if isinstance(value, str):
        return {"type": aliases[name]}
    return {**value, "type": aliases[name]}


def by_name(aliases: Mapping[str, str], kind: str, objects: Any) -> BeforeValidator:
    """``named_object`` as a field's validator, with the field's JSON schema saying what it
    takes: one of the names, or one of ``objects`` (the discriminated union it validates)."""
    names = Literal.__getitem__(tuple(aliases))
    return BeforeValidator(
        lambda value: named_object(value, aliases, kind),
        json_schema_input_type=Union[names, objects],  # noqa: UP007 (a runtime type)
    )
