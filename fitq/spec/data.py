"""Training, validation and test data: inline arrays (stored as a dataset at submit) or a
reference to a stored dataset. Inline arrays are checked with NumPy, not element by element:
a 1,000 x 784 array validates in milliseconds and a bad value is named by its index."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fitq.ids import DATASET_PREFIX, is_valid_id
from fitq.schema_docs import described_with_examples
from fitq.spec.base import SpecModel


def _to_float32_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        array = value
    else:
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty array of numbers, received {_kind(value)}")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(_array_problem(value, exc)) from None
        _only_json_numbers(value)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"expected numbers, received an array of dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"expected values in every row, received an empty shape {array.shape}")
    bad: Any = np.argwhere(~np.isfinite(array)) if array.dtype.kind == "f" else []
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"expected finite numbers, received {array[index]} at index {list(index)}")
    return np.ascontiguousarray(array, dtype=np.float32)


_NUMBER_TYPES = {int, float}
_JSON_NAMES = {str: "a string", bool: "a boolean", type(None): "null"}


def _only_json_numbers(value: list[Any]) -> None:
    """NumPy reads "1" and true as numbers (and null as NaN): the values must have been JSON
    numbers. Checked by type in one C-speed pass (about 20 ms a million values); the slow
    search for the index runs only when one is wrong."""
    level: Iterable[Any] = value
    rows, depth = value, 0
    while rows and type(rows[0]) is list:  # rectangular: NumPy took it
        rows, depth = rows[0], depth + 1
    for _ in range(depth):
        level = itertools.chain.from_iterable(level)
    if set(map(type, level)) <= _NUMBER_TYPES:
        return
    index, bad = _first_non_number(value)
    what = _JSON_NAMES.get(type(bad), type(bad).__name__)
    raise ValueError(f"expected JSON numbers, received {what} ({bad!r}) at index {index}")


def _first_non_number(value: Any, index: tuple[int, ...] = ()) -> tuple[list[int], Any]:
    if type(value) is list:
        for i, item in enumerate(value):
            found = _first_non_number(item, (*index, i))
            if found[0]:
                return found
        return [], None
    return ([*index], value) if type(value) not in _NUMBER_TYPES else ([], None)


def _kind(value: Any) -> str:
    return "an empty array" if value == [] else type(value).__name__


def _array_problem(value: list[Any], exc: Exception) -> str:
    if "inhomogeneous" in str(exc) or "sequence" in str(exc):
        return "expected a rectangular array (every row the same length), received ragged rows"
    return f"expected numbers, received a non-numeric value ({exc})"


NumericArray = Annotated[
    np.ndarray,
    PlainValidator(_to_float32_array),
    PlainSerializer(lambda a: a.tolist(), return_type=list),
    WithJsonSchema(
        {"type": "array", "items": {}, "minItems": 1, "description": "Nested arrays of numbers."}
    ),
]


# A named input's or output's key: a Keras layer name (``keras.Input(name=…)``).
GroupName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


def _array_kind(value: Any) -> str:
    return "named" if isinstance(value, dict) else "array"


# One array, or (a model of several inputs or outputs) an object of arrays keyed by the
# Keras input or output names, as ``model.fit`` takes a dict.
ArrayOrNamed = Annotated[
    Annotated[NumericArray, Tag("array")]
    | Annotated[dict[GroupName, NumericArray], Tag("named"), Field(min_length=1, max_length=16)],
    Discriminator(_array_kind),
]


class WeightColumn(SpecModel):
    """The column of the stored x or y that holds each row's sample weight."""

    array: Literal["x", "y"]
    column: int = Field(ge=0)


class ColumnGroup(SpecModel):
    """A named input or output kept in a 2-D array: the columns ``[start, stop)`` of each
    range, in order, reshaped to ``shape`` per row."""

    name: str
    shape: list[int]
    columns: list[Annotated[tuple[int, int], Strict(False)]]

    def take(self, array: np.ndarray) -> np.ndarray:
        """This group's rows of ``array`` (rows first), as the model's input or target."""
        parts = [array[:, start:stop] for start, stop in self.columns]
        taken = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return taken.reshape(len(array), *self.shape)


def split_groups(array: np.ndarray, groups: list[ColumnGroup] | None) -> Any:
    """``array`` as the model takes it: as is, or a dict of its named groups."""
    if groups is None:
        return array
    return {group.name: group.take(array) for group in groups}


def columns_of(indexes: list[int]) -> list[tuple[int, int]]:
    """Column indexes as ``[start, stop)`` ranges of consecutive columns."""
    ranges: list[tuple[int, int]] = []
    for index in indexes:
        if ranges and ranges[-1][1] == index:
            ranges[-1] = (ranges[-1][0], index + 1)
        else:
            ranges.append((index, index + 1))
    return ranges


@dataclass(frozen=True)
class PackedArrays:
    """Inline arrays as they are stored: one array each for x and y, the named ones packed
    side by side (each flattened per row) with their groups."""

    x: np.ndarray
    y: np.ndarray
    x_groups: list[ColumnGroup] | None = None
    y_groups: list[ColumnGroup] | None = None
    sample_weight: WeightColumn | None = None


def _pack(
    value: np.ndarray | dict[str, np.ndarray], weight: np.ndarray | None = None
) -> tuple[np.ndarray, list[ColumnGroup] | None]:
    """One array of the named arrays side by side; with ``weight``, the weights as one more
    column after them (the arrays then one group, named "", even when not named)."""
    if weight is not None:
        named = value if isinstance(value, dict) else {"": value}
        packed, groups = _pack(named)
        return np.concatenate([packed, weight.reshape(-1, 1)], axis=1), groups
    if not isinstance(value, dict):
        return value, None
    groups, start = [], 0
    for name, array in value.items():
        width = int(np.prod(array.shape[1:], dtype=np.int64))
        groups.append(
            ColumnGroup(name=name, shape=list(array.shape[1:]), columns=[(start, start + width)])
        )
        start += width
    flat = [array.reshape(len(array), -1) for array in value.values()]
    return np.ascontiguousarray(np.concatenate(flat, axis=1)), groups


class InlineArrays(SpecModel):
    """Arrays sent in the body: x and y (each one array, or arrays keyed by input or output
    name) and optional sample weights. Stored as a dataset at submit."""

    x: ArrayOrNamed = Field(
        description="Features, shape (rows, *input_shape); for a model of several inputs, an "
        "object of such arrays keyed by the Keras input names."
    )
    y: ArrayOrNamed = Field(
        description="Targets, shape (rows,) or (rows, *output_shape); for a model of several "
        "outputs, an object of such arrays keyed by the Keras output names."
    )
    sample_weight: NumericArray | None = Field(
        None,
        description="fit(sample_weight=…) for train (evaluate's for test, validation_data's "
        "third array for validation): one weight ≥ 0 per row.",
    )

    @field_validator("x")
    @classmethod
    def _x_rank(cls, x: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        for name, array in _arrays("x", x):
            if array.ndim < 2:
                raise ValueError(
                    f"expected rows of features (rank ≥ 2) in {name}, received shape {array.shape}"
                )
        return x

    @model_validator(mode="after")
    def _same_rows(self) -> InlineArrays:
        arrays = [*_arrays("x", self.x), *_arrays("y", self.y)]
        if self.sample_weight is not None:
            arrays.append(("sample_weight", self.sample_weight))
        first_name, first = arrays[0]
        for name, array in arrays[1:]:
            if len(array) != len(first):
                raise ValueError(
                    f"expected as many rows in {name} as in {first_name} ({len(first)}), "
                    f"received {len(array)}"
                )
        return self

    @field_validator("sample_weight")
    @classmethod
    def _weights(cls, weights: np.ndarray | None) -> np.ndarray | None:
        if weights is None:
            return None
        if weights.ndim != 1:
            raise ValueError(
                f"expected one weight per row (rank 1), received shape {weights.shape}"
            )
        if weights.min() < 0:
            raise ValueError(f"expected weights ≥ 0, received {weights.min():g}")
        return weights

    @cached_property
    def packed(self) -> PackedArrays:
        x, x_groups = _pack(self.x)
        y, y_groups = _pack(self.y, self.sample_weight)
        weight = None
        if self.sample_weight is not None:
            weight = WeightColumn(array="y", column=y.shape[1] - 1)
        return PackedArrays(x, y, x_groups, y_groups, weight)

    @property
    def rows(self) -> int:
        """Rows sent (every array has as many, the validator made sure): no packing."""
        return len(_arrays("x", self.x)[0][1])


def _arrays(field: str, value: np.ndarray | dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    if isinstance(value, dict):
        return [(f"{field}.{name}", array) for name, array in value.items()]
    return [(field, value)]


def value_range(array: np.ndarray) -> tuple[float, float, bool]:
    """Low, high and whether every value is an integer: what label and token checks need."""
    return float(array.min()), float(array.max()), bool(np.all(np.mod(array, 1) == 0))


class PredictRequest(SpecModel):
    """Rows to predict."""

    model_config = ConfigDict(json_schema_extra=described_with_examples({"x": [[0.5, -1.0]]}))

    x: ArrayOrNamed = Field(
        description="Rows of the model's input shape; for a model of several inputs, an "
        "object of such arrays keyed by the Keras input names."
    )


ColumnNames = Annotated[list[Annotated[str, Field(max_length=255)]], Field(min_length=1)]


class DatasetRef(SpecModel):
    """A stored dataset, by id; for a model of several inputs or outputs, which of its
    columns each takes."""

    dataset_id: str = Field(max_length=64)
    inputs: dict[GroupName, ColumnNames] | None = Field(
        None,
        max_length=16,
        description="A model of several inputs: each Keras input name → the dataset's feature "
        "columns it takes, in order.",
    )
    outputs: dict[GroupName, ColumnNames] | None = Field(
        None,
        max_length=16,
        description="A model of several outputs: each Keras output name → the dataset's "
        "target columns it learns, in order.",
    )
    sample_weight: str | None = Field(
        None,
        max_length=255,
        description="The dataset column (a feature or target column) holding each row's "
        "sample weight; it is then no feature or target of the model.",
    )

    @field_validator("dataset_id")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        if not is_valid_id(value, DATASET_PREFIX):
            raise ValueError(f"expected a dataset id like 'ds_…', received {value!r}")
        return value


def _data_kind(value: Any) -> str:
    if isinstance(value, DatasetRef) or (isinstance(value, dict) and "dataset_id" in value):
        return "ref"
    return "inline"


DataSource = Annotated[
    Annotated[InlineArrays, Tag("inline")] | Annotated[DatasetRef, Tag("ref")],
    Discriminator(_data_kind),
]

SPLITS = ("train", "validation", "test")


class DataSpec(SpecModel):
    """The job's data: train (required), validation and test, each inline arrays or a stored
    dataset's id, and how to split and scale them."""

    train: DataSource
    validation: DataSource | None = None
    test: DataSource | None = None
    test_split: float | None = Field(
        None, gt=0.0, lt=1.0, description="Hold out the last fraction of train for evaluate."
    )
    shuffle_before_split: bool = Field(
        False, description="Shuffle train with the job's seed before taking any split."
    )
    standardize: bool = Field(
        False,
        description="Prepend a keras.layers.Normalization adapted on the training rows.",
    )

    @model_validator(mode="after")
    def _one_test_source(self) -> DataSpec:
        if self.test_split and self.test is not None:
            raise ValueError("expected data.test_split or data.test, received both")
        return self

    def sources(self) -> dict[str, InlineArrays | DatasetRef]:
        return {s: getattr(self, s) for s in SPLITS if getattr(self, s) is not None}


class LabelEncoding(SpecModel):
    """How a classification target is turned into what the loss expects: class ``classes[i]``
    (a value as stored) becomes ``i``, one-hot when ``one_hot``. ``names`` are the original
    labels of a dataset whose target was text; ``result.labels`` maps predictions back."""

    classes: list[float]
    names: list[str] | None = None
    one_hot: bool = False

    @property
    def labels(self) -> list[Any]:
        if self.names is not None:
            return [self.names[int(c)] for c in self.classes]
        return [int(c) if float(c).is_integer() else c for c in self.classes]


class StoredData(SpecModel):
    """A split as a job keeps it: the dataset's id and shapes, never the arrays."""

    dataset_id: str
    rows: int
    x_shape: list[int]
    y_shape: list[int]
    # A model of several inputs or outputs: its named groups of the dataset's columns.
    x_groups: list[ColumnGroup] | None = None
    y_groups: list[ColumnGroup] | None = None
    sample_weight: WeightColumn | None = None
