"""``compile(loss, optimizer, metrics)``: each by its Keras name or as an object with Keras's
arguments (``fitq/spec/losses.py``, ``optimizers.py``, ``metrics.py``). The worker maps each
to the Keras class the spec names."""

from __future__ import annotations

from pydantic import Field, field_validator

from fitq.spec.base import SpecModel
from fitq.spec.losses import Loss
from fitq.spec.metrics import Metric, MetricBase, metric_name
from fitq.spec.optimizers import Adam, Optimizer


class CompileSpec(SpecModel):
    loss: Loss
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="adam"))
    metrics: list[Metric] = Field(default_factory=list, max_length=16)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[str | MetricBase]) -> list[str | MetricBase]:
        names = [metric_name(m) for m in metrics]
        seen = [name for i, name in enumerate(names) if name in names[:i]]
        if seen:
            raise ValueError(
                f"expected each metric name once, received {seen[0]!r} twice (an object's "
                "'name' sets another)"
            )
        return metrics

    @property
    def metric_names(self) -> list[str]:
        """The metrics' keys in history and results, in order."""
        return [metric_name(m) for m in self.metrics]
