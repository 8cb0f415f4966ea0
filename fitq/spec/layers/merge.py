"""Layers that merge several tensors (graph models): element-wise (``Add``, ``Subtract``,
``Multiply``, ``Average``, ``Maximum``, ``Minimum``), ``Concatenate`` and ``Dot``; and
``MultiHeadAttention``, called on a query and a value (and a key). Shapes follow Keras's
rules, held equal by the property tests on random graphs."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict

from fitq.errors import SpecError
from fitq.spec.arguments import Fraction, Initializer
from fitq.spec.layers.base import LayerBase, Seed, Shape, show_shape


def _shapes(shapes: list[Shape]) -> str:
    return ", ".join(show_shape(shape) for shape in shapes)


class _ElementWise(LayerBase):
    """Keras's broadcasting of the inputs (batch excluded): from the last axis, sizes equal
    or 1; the longer shape's leading axes kept."""

    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def merged_shape(self, shapes: list[Shape], loc: str) -> Shape:
        merged = shapes[0]
        for shape in shapes[1:]:
            longer, shorter = (merged, shape) if len(merged) >= len(shape) else (shape, merged)
            tail = longer[len(longer) - len(shorter) :]
            out = list(longer[: len(longer) - len(shorter)])
            for a, b in zip(tail, shorter, strict=True):
                if a != b and 1 not in (a, b):
                    raise SpecError(
                        f"{loc}.inputs",
                        f"{self.type} expected inputs of one shape (or sizes of 1 to "
                        f"broadcast), received {_shapes(shapes)}",
                    )
                out.append(b if a == 1 else a)
            merged = tuple(out)
        return merged


class Add(_ElementWise):
    type: Literal["Add"]


class Subtract(_ElementWise):
    type: Literal["Subtract"]
    arity: ClassVar[tuple[int, int | None]] = (2, 2)


class Multiply(_ElementWise):
    type: Literal["Multiply"]


class Average(_ElementWise):
    type: Literal["Average"]


class Maximum(_ElementWise):
    type: Literal["Maximum"]


class Minimum(_ElementWise):
    type: Literal["Minimum"]


Axis = Annotated[int, Field(ge=-8, le=8)]


class Concatenate(LayerBase):
    """Side by side along ``axis`` (Keras's axis: 1 is the first after the batch)."""

    type: Literal["Concatenate"]
    axis: Axis = -1
    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def merged_shape(self, shapes: list[Shape], loc: str) -> Shape:
        rank = len(shapes[0])
        index = self.axis - 1 if self.axis > 0 else rank + self.axis
        if self.axis == 0 or not 0 <= index < rank:
            raise SpecError(
                loc,
                f"Concatenate expected an axis in 1..{rank} or -{rank}..-1, received {self.axis}",
            )
        others = {tuple(d for i, d in enumerate(s) if i != index) for s in shapes}
        if any(len(s) != rank for s in shapes) or len(others) > 1:
            raise SpecError(
                f"{loc}.inputs",
                f"Concatenate expected inputs whose sizes match but on axis {self.axis}, "
                f"received {_shapes(shapes)}",
            )
        return tuple(
            sum(s[index] for s in shapes) if i == index else d for i, d in enumerate(shapes[0])
        )


class Dot(LayerBase):
    """The dot product of two inputs along ``axes`` (one axis for both, or one each; Keras's
    axes: 1 is the first after the batch)."""

    type: Literal["Dot"]
    axes: Axis | Annotated[tuple[Axis, Axis], Strict(False)]
    normalize: bool = False
    arity: ClassVar[tuple[int, int | None]] = (2, 2)

    def merged_shape(self, shapes: list[Shape], loc: str) -> Shape:
        full = [[None, *shape] for shape in shapes]  # Keras's arithmetic counts the batch
        if isinstance(self.axes, int):
            axes = [self.axes % len(s) for s in full] if self.axes < 0 else [self.axes] * 2
        else:
            axes = [a % len(s) if a < 0 else a for a, s in zip(self.axes, full, strict=True)]
        if any(a == 0 or a >= len(s) for a, s in zip(axes, full, strict=True)):
            raise SpecError(loc, f"Dot expected axes after the batch, received {self.axes}")
        first, second = full
        if first[axes[0]] != second[axes[1]]:
            raise SpecError(
                f"{loc}.inputs",
                f"Dot expected inputs of one size on axes {self.axes}, received {_shapes(shapes)}",
            )
        first.pop(axes[0])
        second.pop(axes[1])
        out = [*first[1:], *second[1:]]
        return tuple(out) if out else (1,)  # type: ignore[arg-type]


class MultiHeadAttention(LayerBase):
    """Called on ``[query, value]`` or ``[query, value, key]`` (self-attention: the same
    tensor twice); inputs are sequences (steps, features). The output has the query's
    shape."""

    type: Literal["MultiHeadAttention"]
    num_heads: Annotated[int, Field(ge=1, le=256)]
    key_dim: Annotated[int, Field(ge=1, le=4096)]
    value_dim: Annotated[int, Field(ge=1, le=4096)] | None = None
    dropout: Fraction = 0.0
    use_bias: bool = True
    kernel_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None
    seed: Seed | None = None
    arity: ClassVar[tuple[int, int | None]] = (2, 3)
    called_on_arguments: ClassVar[bool] = True

    def merged_shape(self, shapes: list[Shape], loc: str) -> Shape:
        if any(len(shape) != 2 for shape in shapes):
            raise SpecError(
                f"{loc}.inputs",
                "MultiHeadAttention expected sequences of rank 3 (batch, steps, features), "
                f"received {_shapes(shapes)}",
            )
        value, key = shapes[1], shapes[2] if len(shapes) == 3 else shapes[1]
        if value[0] != key[0]:
            raise SpecError(
                f"{loc}.inputs",
                f"MultiHeadAttention expected a value and key of as many steps, received "
                f"{_shapes(shapes)}",
            )
        return shapes[0]

    def graph_param_count(self, shapes: list[Shape]) -> int:
        query, value = shapes[0][-1], shapes[1][-1]
        key = shapes[2][-1] if len(shapes) == 3 else value
        heads, key_dim = self.num_heads, self.key_dim
        value_dim = self.value_dim or key_dim
        bias = int(self.use_bias)
        projections = (query + key) * heads * key_dim + value * heads * value_dim
        biases = bias * (2 * heads * key_dim + heads * value_dim + query)
        return projections + heads * value_dim * query + biases

    def graph_trainable_param_count(self, shapes: list[Shape]) -> int:
        return self.graph_param_count(shapes)
