"""What every spec layer shares: its base class, the shape arithmetic and the argument types.

Each spec layer validates its arguments, infers its output shape and parameter count in pure
Python (the same arithmetic as Keras; a property test holds them equal), and names the keyword
arguments the worker hands to ``keras.layers.<type>``. Shapes here exclude the batch
dimension."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, get_args

from pydantic import Field, Strict

from fitq.errors import SpecError
from fitq.spec.arguments import Activation, Initializer, Regularizer
from fitq.spec.base import SpecModel

Shape = tuple[int, ...]
Dim = Annotated[int, Field(ge=1, le=1_000_000)]
Size = Annotated[int, Field(ge=1, le=4096)]
# The spec is strict (no "3" or true for a number); JSON has no tuples, so arrays may fill them.
ShapeOf = Annotated[tuple[Dim, ...], Strict(False)]
Pair = Size | Annotated[tuple[Size, Size], Strict(False)]


def pair_of(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


LayerName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class LayerBase(SpecModel):
    @classmethod
    def keras_reference(cls) -> str | None:
        kind = get_args(cls.model_fields["type"].annotation)  # Literal["Dense"]
        return f"keras.layers.{kind[0]}" if kind else None

    type: str
    name: LayerName | None = None
    input_shape: ShapeOf | None = Field(
        None, min_length=1, max_length=8, description="Only on the first layer, as in Keras."
    )
    trainable: bool | None = Field(
        None, description="false: the layer's weights do not train (Keras's trainable)."
    )
    inputs: list[LayerName] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Graph models only: the model inputs or earlier layers (by name) this "
        "layer is called on, in order; absent: the layer before it.",
    )
    #: The input rank (batch excluded) the layer needs, or None for any rank ≥ 1.
    input_rank: ClassVar[int | None] = None
    #: How many tensors the layer is called on: (fewest, most); most None: no limit.
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    #: Several tensors go in as separate arguments (``mha(query, value)``), not as one list
    #: (``Add()([a, b])``).
    called_on_arguments: ClassVar[bool] = False

    def graph_output_shape(self, shapes: list[Shape], loc: str) -> Shape:
        """The output for the tensors it is called on (one, unless a merge or attention
        layer): checked, then inferred."""
        fewest, most = self.arity
        if len(shapes) < fewest or (most is not None and len(shapes) > most):
            expected = str(fewest) if fewest == most else f"{fewest} or more"
            raise SpecError(
                f"{loc}.inputs",
                f"{self.type} expected {expected} input{'s' if expected != '1' else ''}, "
                f"received {len(shapes)}",
            )
        if most == 1:
            self.check_input(shapes[0], loc)
            return self.output_shape(shapes[0], loc)
        return self.merged_shape(shapes, loc)

    def merged_shape(self, shapes: list[Shape], loc: str) -> Shape:
        raise NotImplementedError  # layers of several inputs override it

    def graph_param_count(self, shapes: list[Shape]) -> int:
        return self.param_count(shapes[0])

    def graph_trainable_param_count(self, shapes: list[Shape]) -> int:
        return self.trainable_param_count(shapes[0])

    def check_input(self, input_shape: Shape, loc: str) -> None:
        if self.input_rank is not None and len(input_shape) != self.input_rank:
            raise SpecError(
                loc,
                f"{self.type} expected an input of rank {self.input_rank + 1} "
                f"(batch, {rank_names(self.input_rank)}), received shape "
                f"{show_shape(input_shape)}",
            )

    def output_shape(self, input_shape: Shape, loc: str) -> Shape:
        return input_shape

    def param_count(self, input_shape: Shape) -> int:
        return 0

    def trainable_param_count(self, input_shape: Shape) -> int:
        return self.param_count(input_shape)

    def wrapped(self) -> dict[str, LayerBase]:
        """Layers this one wraps, by argument (``Bidirectional(layer=LSTM(…))``): the worker
        builds them first and passes them in."""
        return {}

    def keras_kwargs(self) -> dict[str, Any]:
        """Arguments for ``keras.layers.<type>``; ``input_shape`` becomes a ``keras.Input``;
        wrapped layers are left to the worker (``wrapped``)."""
        excluded = {"type", "input_shape", "inputs", *self.wrapped()}
        kwargs = self.model_dump(exclude=excluded, exclude_none=True)
        for key in ("kernel_regularizer", "bias_regularizer"):
            regularizer = getattr(self, key, None)
            if regularizer is not None:
                kwargs[key] = regularizer.keras_config()
        return kwargs


def rank_names(rank: int) -> str:
    return {1: "features", 2: "steps, channels", 3: "height, width, channels"}.get(
        rank, ", ".join(["…"] * rank)
    )


def show_shape(shape: Shape) -> str:
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def positive_dims(dims: Shape, layer: LayerBase, loc: str, input_shape: Shape) -> Shape:
    if any(d < 1 for d in dims):
        raise SpecError(
            loc,
            f"{layer.type} expected an input large enough for its window, received shape "
            f"{show_shape(input_shape)}, which gives an output of size {show_shape(dims)}",
        )
    return dims


class Weighted(SpecModel):
    """Arguments of layers with a kernel and a bias."""

    activation: Activation | None = None
    use_bias: bool = True
    kernel_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None


def window_length(size: int, window: int, stride: int, padding: str) -> int:
    """Keras's output length of a convolution or pooling window along one axis."""
    if padding == "valid":
        return (size - window) // stride + 1
    return (size - 1) // stride + 1  # "same" and "causal"


def transposed_length(size: int, kernel: int, stride: int, padding: str) -> int:
    """Keras's output length of a transposed convolution along one axis (no output_padding)."""
    if padding == "valid":
        return size * stride + max(kernel - stride, 0)
    return size * stride


Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
