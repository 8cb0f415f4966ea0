"""A sweep's trials as their jobs tell them. The job rows are the one truth of a trial's
state, its objective value and what it reported after each epoch; Optuna's study and the
API's documents are both read from these."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from fitq.spec.sweep import SweepCreate
from fitq.statuses import CancelReason, JobStatus, SweepStatus
from fitq.store.repository.sweeps import TrialRow


class TrialState(StrEnum):
    """A trial's state: its job's status, with a pruned job told apart from a cancelled one."""

    queued = "queued"
    running = "running"
    complete = "complete"
    pruned = "pruned"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def active(self) -> bool:
        return self in (TrialState.queued, TrialState.running)


@dataclass(frozen=True)
class Trial:
    number: int
    job_id: str
    params: dict[str, Any]
    state: TrialState
    # The objective at the trial's last epoch, for a complete trial.
    value: float | None
    # The objective after each epoch, by epoch index from 0 (Optuna's step), finite ones.
    reported: dict[int, float] = field(default_factory=dict)
    epochs: int = 0  # epochs trained
    # What Optuna's sampler and pruner recorded on it (a grid point, Hyperband's rungs).
    system_attrs: dict[str, Any] = field(default_factory=dict)


def trial_state(status: str, cancel_reason: str | None) -> TrialState:
    match JobStatus(status):
        case JobStatus.queued:
            return TrialState.queued
        case JobStatus.running:
            return TrialState.running
        case JobStatus.succeeded:
            return TrialState.complete
        case JobStatus.failed:
            return TrialState.failed
        case _:
            return (
                TrialState.pruned if cancel_reason == CancelReason.pruned else TrialState.cancelled
            )


def reported_values(history: Iterable[Mapping[str, Any]], metric: str) -> dict[int, float]:
    """The objective after each epoch, keyed by epoch index from 0, as the trial reported it:
    a value the store keeps as null (NaN or infinite) is NaN, which pruners stop on."""
    values = {}
    for step, epoch in enumerate(history):
        if metric not in epoch:
            continue
        value = epoch[metric]
        values[step] = float(value) if isinstance(value, int | float) else math.nan
    return values


def trial_of(
    number: int,
    job_id: str,
    params: Mapping[str, Any] | None,
    status: str,
    cancel_reason: str | None,
    history: Sequence[Mapping[str, Any]],
    metric: str,
    system_attrs: Mapping[str, Any] | None = None,
) -> Trial:
    """A trial from its job's columns. A job that succeeded without a finite objective at
    its last epoch (a NaN loss that TerminateOnNaN did not stop) counts as failed."""
    state = trial_state(status, cancel_reason)
    reported = reported_values(history, metric)
    value = None
    if state == TrialState.complete:
        value = reported.get(len(history) - 1)
        if value is None or not math.isfinite(value):
            state, value = TrialState.failed, None
    attrs = dict(system_attrs or {})
    return Trial(number, job_id, dict(params or {}), state, value, reported, len(history), attrs)


def trials_of(spec: SweepCreate, rows: Iterable[TrialRow]) -> list[Trial]:
    """A sweep's trials from its jobs' rows."""
    metric = spec.objective.metric
    return [
        trial_of(
            r.number,
            r.job_id,
            r.params,
            r.status,
            r.cancel_reason,
            r.history,
            metric,
            r.system_attrs,
        )
        for r in rows
    ]


def trial_limit(spec: SweepCreate) -> int:
    """How many trials the sweep runs: ``max_trials``, or fewer when the grid holds fewer."""
    return min(spec.max_trials, spec.grid_size()) if spec.sampler == "grid" else spec.max_trials


def shown_status(stored: str, trials: Iterable[Trial]) -> SweepStatus:
    """A sweep's status: the stored one once it has ended; before, queued until one of its
    trials has started (a worker claims a trial without touching the sweep's row)."""
    status = SweepStatus(stored)
    if status.finished:
        return status
    started = any(t.state != TrialState.queued for t in trials)
    return SweepStatus.running if started else SweepStatus.queued


def best_trial(trials: Iterable[Trial], direction: Literal["minimize", "maximize"]) -> Trial | None:
    """The complete trial with the best value (the earliest of equal ones), as Optuna's
    ``study.best_trial``."""
    complete = [t for t in trials if t.value is not None]
    if not complete:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(complete, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]


def trial_counts(trials: Iterable[Trial]) -> dict[str, int]:
    counts = dict.fromkeys(TrialState, 0)
    for trial in trials:
        counts[trial.state] += 1
    return {state.value: n for state, n in counts.items()}
