"""Training, validation and test data: inline arrays (stored as a dataset at submit) or a
reference to a stored dataset. Inline arrays are checked with NumPy, not element by element:
a 1,000 x 784 array validates in milliseconds and a bad value is named by its index."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Annotated, Any

import numpy as np
from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fitq.ids import DATASET_PREFIX, is_valid_id
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


class InlineArrays(SpecModel):
    x: NumericArray = Field(description="Features, shape (rows, *input_shape).")
    y: NumericArray = Field(description="Targets, shape (rows,) or (rows, *output_shape).")

    @field_validator("x")
    @classmethod
    def _x_rank(cls, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"expected rows of features (rank ≥ 2), received shape {x.shape}")
        return x

    @model_validator(mode="after")
    def _same_rows(self) -> InlineArrays:
        if len(self.x) != len(self.y):
            raise ValueError(
                f"expected as many y rows as x rows ({len(self.x)}), received {len(self.y)}"
            )
        return self


def value_range(array: np.ndarray) -> tuple[float, float, bool]:
    """Low, high and whether every value is an integer: what label and token checks need."""
    return float(array.min()), float(array.max()), bool(np.all(np.mod(array, 1) == 0))


class PredictRequest(SpecModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"x": [[0.5, -1.0]]}]})

    x: NumericArray = Field(description="Rows of the model's input shape.")


class DatasetRef(SpecModel):
    dataset_id: str = Field(max_length=64)

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
