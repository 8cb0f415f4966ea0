"""``compile(loss, optimizer, metrics, loss_weights)``: each by its Keras name or as an
object with Keras's arguments (``fitq/spec/losses.py``, ``optimizers.py``, ``metrics.py``).
A model of several outputs takes one loss for all of them or one per output, and its metrics
per output, keyed by the Keras output names, as ``model.compile`` takes dicts. The worker maps
each to the Keras class the spec names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator

from fitq.spec.arguments import did_you_mean
from fitq.spec.base import SpecModel
from fitq.spec.losses import Loss, LossBase
from fitq.spec.metrics import Metric, MetricBase, metric_name
from fitq.spec.optimizers import Adam, Optimizer

OutputName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
Metrics = Annotated[list[Metric], Field(max_length=16)]


def _per_output_kind(value: Any) -> str:
    """A loss object carries its ``type``; an object of losses is keyed by output names."""
    if isinstance(value, dict) and "type" not in value:
        return "per_output"
    return "one"


# An object with a "type" is one loss (its kind), never losses keyed by output: the schema
# says so, so that exactly one of the two forms matches.
_NOT_A_LOSS_OBJECT = {
    "propertyNames": {"pattern": "^[A-Za-z0-9_]+$", "maxLength": 64, "not": {"const": "type"}}
}


def _metrics_kind(value: Any) -> str:
    return "per_output" if isinstance(value, dict) else "one"


@dataclass(frozen=True)
class OutputCompile:
    """What one output is compiled with: its loss and metrics, and the names Keras logs
    them under (``<output>_<metric>`` in a model of several outputs)."""

    loss: LossBase
    metrics: Sequence[str | MetricBase]
    prefix: str = ""  # "<output>_" in a model of several outputs
    metrics_loc: str = "compile.metrics"  # where its metrics are in the spec

    @property
    def metric_names(self) -> list[str]:
        return [self.prefix + metric_name(m) for m in self.metrics]


class CompileSpec(SpecModel):
    """model.compile's loss, optimizer, metrics and loss weights, each by its Keras name or
    as an object with Keras's arguments; per output for a model of several."""

    loss: Annotated[
        Annotated[Loss, Tag("one")]
        | Annotated[
            dict[OutputName, Loss],
            Tag("per_output"),
            Field(min_length=1, max_length=16, json_schema_extra=_NOT_A_LOSS_OBJECT),
        ],
        Discriminator(_per_output_kind),
    ]
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="adam"))
    metrics: Annotated[
        Annotated[Metrics, Tag("one")]
        | Annotated[dict[OutputName, Metrics], Tag("per_output"), Field(max_length=16)],
        Discriminator(_metrics_kind),
    ] = Field(default_factory=list)
    loss_weights: dict[OutputName, Annotated[float, Field(ge=0.0, le=1e6)]] | None = Field(
        None,
        max_length=16,
        description="A model of several outputs: each output's weight in the total loss "
        "(Keras's loss_weights); absent: 1 each.",
    )

    @field_validator("metrics")
    @classmethod
    def _unique(
        cls, metrics: list[str | MetricBase] | dict[str, list[str | MetricBase]]
    ) -> list[str | MetricBase] | dict[str, list[str | MetricBase]]:
        for where, listed in metrics.items() if isinstance(metrics, dict) else [("", metrics)]:
            names = [metric_name(m) for m in listed]
            seen = [name for i, name in enumerate(names) if name in names[:i]]
            if seen:
                raise ValueError(
                    f"expected each metric name once{f' for {where}' if where else ''}, received "
                    f"{seen[0]!r} twice (an object's 'name' sets another)"
                )
        return metrics

    @property
    def losses(self) -> list[LossBase]:
        return list(self.loss.values()) if isinstance(self.loss, dict) else [self.loss]

    @property
    def all_metrics(self) -> list[str | MetricBase]:
        if isinstance(self.metrics, dict):
            return [m for listed in self.metrics.values() for m in listed]
        return list(self.metrics)

    def per_output(self, outputs: list[str]) -> dict[str, OutputCompile]:
        """Each output's loss and metrics, for a model with these outputs (in order).
        ``ValueError`` where the keys do not name them, or metrics are not keyed by output in
        a model of several (Keras refuses a list there)."""
        several = len(outputs) > 1
        for field in ("loss", "metrics", "loss_weights"):
            keyed = getattr(self, field)
            if isinstance(keyed, dict):
                _check_keys(f"compile.{field}", keyed, outputs)
        if several and isinstance(self.metrics, list) and self.metrics:
            raise ValueError(
                "compile.metrics: expected an object of metric lists keyed by the model's "
                f"outputs ({', '.join(map(repr, outputs))}), received a list (Keras takes a "
                "list only for a model of one output)"
            )
        if self.loss_weights is not None and not several:
            raise ValueError(
                "compile.loss_weights: expected loss_weights only for a model of several "
                "outputs, received them for one"
            )
        result = {}
        for name in outputs:
            loss = self.loss[name] if isinstance(self.loss, dict) else self.loss
            if isinstance(self.metrics, dict):
                metrics, loc = list(self.metrics.get(name, [])), f"compile.metrics.{name}"
            else:
                metrics, loc = list(self.metrics), "compile.metrics"
            result[name] = OutputCompile(loss, metrics, f"{name}_" if several else "", loc)
        return result

    def logged_names(self, outputs: list[str]) -> list[str]:
        """What ``fit`` logs besides ``loss`` (and ``evaluate`` returns), in order: each
        metric; in a model of several outputs each output's loss first, as Keras names them."""
        compiled = self.per_output(outputs)
        names = [f"{name}_loss" for name in outputs] if len(outputs) > 1 else []
        for output in compiled.values():
            names += output.metric_names
        return names


def _check_keys(field: str, keyed: dict[str, Any], outputs: list[str]) -> None:
    unknown = [key for key in keyed if key not in outputs]
    if unknown:
        raise ValueError(
            f"{field}: expected keys naming the model's outputs ({', '.join(map(repr, outputs))}"
            f"), received {unknown[0]!r}{did_you_mean(unknown[0], outputs)}"
        )
    if field == "compile.loss" and len(keyed) != len(outputs):
        missing = next(name for name in outputs if name not in keyed)
        raise ValueError(
            f"{field}: expected a loss for every output, received none for {missing!r}"
        )
