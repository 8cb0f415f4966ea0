"""A hyperparameter sweep: a job, a search space over dotted paths into it, and what to
optimise. Pure logic: the space's parameters, each trial's job (the job with the trial's
values set, its seed recorded), and the checks a sweep passes before it is accepted: every
path names a field of the job, each parameter's extreme values make a valid job, and the
objective is something the job logs. The search itself is Optuna's (samplers, pruners)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from fitq.errors import SpecError
from fitq.spec.arguments import did_you_mean
from fitq.spec.base import SpecModel
from fitq.spec.error_words import error_detail
from fitq.spec.job import MAX_SEED, JobCreate, ModelSpec
from fitq.spec.validation import history_keys

# A dotted path into a job body: ``compile.optimizer.learning_rate``, ``model.layers.1.units``.
SpacePath = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
]
Choice = float | int | str | bool | None


class FloatParam(SpecModel):
    """``trial.suggest_float(path, low, high, log=…, step=…)``."""

    type: Literal["float"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False
    step: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        _check_range(self.low, self.high)
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("expected log only with low > 0 and no step, received both")
        return self

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(SpecModel):
    """``trial.suggest_int(path, low, high, step=…, log=…)``."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        _check_range(self.low, self.high)
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("expected log only with low ≥ 1 and step 1, received otherwise")
        return self

    def extremes(self) -> list[Any]:
        # The highest value the steps reach, as Optuna's suggest_int does.
        return [self.low, self.low + (self.high - self.low) // self.step * self.step]

    def grid(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParam(SpecModel):
    """``trial.suggest_categorical(path, choices)``."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=256)

    def extremes(self) -> list[Any]:
        return list(self.choices)

    def grid(self) -> list[Any]:
        return list(self.choices)


def _check_range(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"expected low ≤ high, received low {low:g} and high {high:g}")


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(SpecModel):
    """What a trial scores: a key of its history (its value at the trial's last epoch)."""

    metric: str = Field("val_loss", max_length=64)
    direction: Literal["minimize", "maximize"] = "minimize"


class SweepCreate(SpecModel):
    """``POST /v1/sweeps``: trials of ``job``, each with values of ``space`` drawn by the
    sampler, at most ``parallelism`` at once, ``max_trials`` in all."""

    job: dict[str, Any] = Field(description="A job body, as POST /v1/jobs takes it.")
    space: dict[SpacePath, Param] = Field(min_length=1, max_length=32)
    objective: Objective = Field(default_factory=Objective)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "none"
    max_trials: int = Field(30, ge=1, le=1000)
    parallelism: int = Field(2, ge=1, le=64)
    seed: int | None = Field(None, ge=0, le=MAX_SEED - 1000)

    @model_validator(mode="after")
    def _gridded(self) -> SweepCreate:
        if self.sampler == "grid":
            floats = [path for path, p in self.space.items() if isinstance(p, FloatParam)]
            if floats:
                raise ValueError(
                    f"expected int or categorical parameters for the grid sampler, received a "
                    f"float at {floats[0]!r} (give it as categorical choices)"
                )
        return self

    def grid_size(self) -> int:
        """How many trials the grid holds (the grid sampler's)."""
        return math.prod(
            len(p.grid()) for p in self.space.values() if not isinstance(p, FloatParam)
        )


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at the dotted ``path`` (list entries by index). A
    name on the way becomes its object form (``"optimizer": "adam"`` is ``{"type":
    "adam"}``), so ``compile.optimizer.learning_rate`` reaches an optimizer given by name.
    ``SpecError`` at ``space.<path>`` where the path names no field of the job."""
    updated = copy.deepcopy(body)
    parent: Any = None
    key: Any = None
    node: Any = updated
    parts = path.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, str) and parent is not None:  # a name: its object form
            node = parent[key] = {"type": node}
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(
                    f"space.{path}",
                    f"expected an index below {len(node)} at {where!r}, received {part!r}",
                )
            parent, key = node, int(part)
        elif isinstance(node, dict):
            last = depth == len(parts) - 1
            if part not in node and not last:
                raise SpecError(
                    f"space.{path}",
                    f"expected a field of the job at {where!r}, received {part!r}"
                    f"{did_you_mean(part, list(node))}",
                )
            parent, key = node, part
        else:
            raise SpecError(
                f"space.{path}", f"expected an object or list at {where!r}, received a value"
            )
        node = parent[key] if key in parent or isinstance(parent, list) else None
    parent[key] = value
    return updated


def trial_job(sweep: SweepCreate, params: dict[str, Any], number: int) -> dict[str, Any]:
    """Trial ``number``'s job body: the sweep's job with ``params`` set and its seed recorded
    (the job's own, else the sweep's seed plus the trial number), so the trial re-runs as a
    plain job to the same numbers."""
    body = sweep.job
    for path, value in params.items():
        body = with_value(body, path, value)
    if body.get("seed") is None:
        body = {**body, "seed": (sweep.seed or 0) + number}
    return body


def extreme_trials(sweep: SweepCreate) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Each parameter at each of its extreme values (every choice of a categorical), the
    others as the job has them: ``(path, value, job body)``."""
    for path, param in sweep.space.items():
        for value in param.extremes():
            yield path, value, with_value(sweep.job, path, value)


def check_sweep(sweep: SweepCreate, check_job: Callable[[JobCreate], ModelSpec]) -> None:
    """Every check a sweep passes before it is accepted: each parameter's extreme values
    make a job that passes ``check_job`` (what a job passes at submit; it answers the job's
    model, a fine-tuning's resolved), and the objective is a key of the job's history.
    ``SpecError`` names the path and the value."""
    model: ModelSpec | None = None
    for path, value, body in extreme_trials(sweep):
        try:
            job = JobCreate.model_validate(body)
            model = check_job(job)
        except (SpecError, ValueError) as exc:  # fitq's checks, or pydantic's
            reason = _reason(exc)
            last = path.rpartition(".")[2]
            if "unknown field" in reason:  # the path's last name is no field of its object
                reason += did_you_mean(last, _siblings(sweep.job, path))
            raise SpecError(
                f"space.{path}",
                f"expected values that make a valid job, received {value!r}: {reason}",
                value,
            ) from None
    assert model is not None  # the space has at least one parameter
    job = JobCreate.model_validate(sweep.job)
    names = job.compile.logged_names(model.output_names)
    validated = job.data.validation is not None or bool(job.fit.validation_split)
    keys = history_keys(names, validated=validated)
    if sweep.objective.metric not in keys:
        raise SpecError(
            "objective.metric",
            f"expected one of {', '.join(map(repr, keys))} (what the job logs), received "
            f"{sweep.objective.metric!r}{did_you_mean(sweep.objective.metric, keys)}",
            sweep.objective.metric,
        )


def _siblings(body: dict[str, Any], path: str) -> list[str]:
    """The names the job gives beside the path's last one (its object's other fields)."""
    node: Any = body
    for part in path.split(".")[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return []
    return [str(key) for key in node] if isinstance(node, dict) else []


def _reason(exc: Exception) -> str:
    """What made a trial's job invalid, as the API would say it."""
    if isinstance(exc, SpecError) and exc.details:
        detail = exc.details[0]
    elif isinstance(exc, ValidationError):
        detail = error_detail(dict(exc.errors()[0]))
    else:
        return str(exc)
    return f"{detail.loc}: {detail.message}"
