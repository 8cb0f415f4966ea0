"""Metrics by their Keras names. A metric is a name (``"mae"``, ``"precision"``) or, for the
metrics that take arguments, an object (``{"type": "f1_score", "average": "macro"}``), as
``keras.metrics.F1Score(average="macro")``. Its name is the key in history and results: the
string as given, or the object's ``name``, else Keras's default name for it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, WithJsonSchema

from fitq.spec.arguments import Name, Probability, did_you_mean
from fitq.spec.base import SpecModel, tag_of

# Every metric name fitq accepts (Keras's names, aliases included) → keras.metrics.<class>.
# "accuracy" has none: Keras picks binary, categorical or sparse accuracy from the shapes of
# targets and outputs, as it does for a hand-written compile, and fitq passes the string on.
METRIC_CLASSES: dict[str, str | None] = {
    "accuracy": None,
    "mae": "MeanAbsoluteError",
    "mean_absolute_error": "MeanAbsoluteError",
    "mse": "MeanSquaredError",
    "mean_squared_error": "MeanSquaredError",
    "rmse": "RootMeanSquaredError",
    "root_mean_squared_error": "RootMeanSquaredError",
    "mape": "MeanAbsolutePercentageError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "msle": "MeanSquaredLogarithmicError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "log_cosh_error": "LogCoshError",
    "r2_score": "R2Score",
    "cosine_similarity": "CosineSimilarity",
    "poisson": "Poisson",
    "kl_divergence": "KLDivergence",
    "binary_accuracy": "BinaryAccuracy",
    "categorical_accuracy": "CategoricalAccuracy",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
    "bce": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "hinge": "Hinge",
    "squared_hinge": "SquaredHinge",
    "categorical_hinge": "CategoricalHinge",
    "auc": "AUC",
    "precision": "Precision",
    "recall": "Recall",
    "f1_score": "F1Score",
}
# Metrics whose targets are class indices, not one column per class.
SPARSE_METRICS = frozenset(
    {"sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
     "sparse_categorical_crossentropy"}
)  # fmt: skip


class MetricBase(SpecModel):
    @classmethod
    def keras_reference(cls) -> str | None:
        name = getattr(cls, "keras_class", None)
        return f"keras.metrics.{name}" if name else None

    type: str
    name: Name | None = None
    keras_class: ClassVar[str]

    @property
    def logged_name(self) -> str:
        return self.name or self.type

    def keras_kwargs(self) -> dict[str, Any]:
        return {**self.model_dump(exclude={"type"}, exclude_none=True), "name": self.logged_name}


class PrecisionMetric(MetricBase):
    type: Literal["precision"]
    keras_class = "Precision"
    thresholds: Probability | None = None
    top_k: int | None = Field(None, ge=1, le=10_000)
    class_id: int | None = Field(None, ge=0, le=1_000_000)


class RecallMetric(PrecisionMetric):
    type: Literal["recall"]  # type: ignore[assignment]
    keras_class = "Recall"


class F1ScoreMetric(MetricBase):
    type: Literal["f1_score"]
    keras_class = "F1Score"
    average: Literal["micro", "macro", "weighted"] | None = None
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = None


class R2ScoreMetric(MetricBase):
    type: Literal["r2_score"]
    keras_class = "R2Score"
    class_aggregation: Literal["uniform_average", "variance_weighted_average"] | None = None
    num_regressors: int | None = Field(None, ge=0, le=1_000_000)


class TopKMetric(MetricBase):
    type: Literal["top_k_categorical_accuracy"]
    keras_class = "TopKCategoricalAccuracy"
    k: int | None = Field(None, ge=1, le=10_000)


class SparseTopKMetric(MetricBase):
    type: Literal["sparse_top_k_categorical_accuracy"]
    keras_class = "SparseTopKCategoricalAccuracy"
    k: int | None = Field(None, ge=1, le=10_000)


class AUCMetric(MetricBase):
    type: Literal["auc"]
    keras_class = "AUC"
    num_thresholds: int | None = Field(None, ge=2, le=100_000)
    curve: Literal["ROC", "PR"] | None = None
    from_logits: bool | None = None
    multi_label: bool | None = None


def _known_name(value: Any) -> Any:
    """An unknown name, or an object of a metric that takes no arguments, refused in the
    user's words."""
    if isinstance(value, str) and value not in METRIC_CLASSES:
        raise ValueError(
            f"expected a metric Keras knows by one of the names {', '.join(METRIC_CLASSES)}, "
            f"received {value!r}{did_you_mean(value, METRIC_CLASSES)}"
        )
    kind = value.get("type") if isinstance(value, dict) else None
    if isinstance(kind, str) and kind not in METRIC_OBJECTS:
        raise ValueError(
            f"expected a metric object of one of the types {', '.join(METRIC_OBJECTS)} (the "
            f"metrics with arguments; others are given by name), received {kind!r}"
            f"{did_you_mean(kind, METRIC_OBJECTS)}"
        )
    return value


MetricObject = Annotated[
    PrecisionMetric | RecallMetric | F1ScoreMetric | R2ScoreMetric | TopKMetric
    | SparseTopKMetric | AUCMetric,
    Field(discriminator="type"),
]  # fmt: skip
# The metrics that take arguments: their spec type → the spec class.
METRIC_OBJECTS: dict[str, type[MetricBase]] = {
    tag_of(c): c
    for c in (PrecisionMetric, RecallMetric, F1ScoreMetric, R2ScoreMetric, TopKMetric,
              SparseTopKMetric, AUCMetric)
}  # fmt: skip
# A name or an object: one of them is checked, so an error names what was meant.
MetricName = Annotated[
    str,
    Tag("name"),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(METRIC_CLASSES),
            "description": "A metric Keras knows by name.",
        }
    ),
]
Metric = Annotated[
    MetricName | Annotated[MetricObject, Tag("object")],
    Discriminator(lambda value: "name" if isinstance(value, str) else "object"),
    BeforeValidator(_known_name),
]


def metric_name(metric: str | MetricBase) -> str:
    """The metric's key in history and results."""
    return metric if isinstance(metric, str) else metric.logged_name


def metric_type(metric: str | MetricBase) -> str:
    return metric if isinstance(metric, str) else metric.type
