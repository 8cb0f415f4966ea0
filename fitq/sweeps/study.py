"""Optuna's study of a sweep, replayed from its trials (``fitq.sweeps.trials``) each time a
decision is due: the next trial's values, or whether a running trial is pruned.

Replaying keeps one truth. The trials' jobs hold every state, value and per-epoch report,
and what Optuna records on a trial (a grid point, the Hyperband rungs it passed: its
"system attributes", which Optuna's own storage would keep);
nothing lives in a process or in a second schema, so a sweep survives restarts of the API
and the workers, and any process (the API's sweeper, a worker that just ended a trial) may
take the next decision. The sampler is seeded with the sweep's seed, and the state of its
random generators after each draw is kept on the sweep and restored for the next: the
draws come in the order one sampler object makes them, so a sweep of ``parallelism`` 1
draws what ``study.optimize`` with the same seeded sampler draws by hand."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from fitq.spec.sweep import CategoricalParam, FloatParam, Param, SweepCreate
from fitq.sweeps.trials import Trial
from fitq.sweeps.trials import TrialState as FitqState

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Hyperband's rungs: from one epoch up to the job's epochs, a third kept at each.
REDUCTION_FACTOR = 3

_STATES = {
    FitqState.queued: TrialState.RUNNING,  # asked: its values are taken
    FitqState.running: TrialState.RUNNING,
    FitqState.complete: TrialState.COMPLETE,
    FitqState.pruned: TrialState.PRUNED,
    FitqState.failed: TrialState.FAIL,
    FitqState.cancelled: TrialState.FAIL,
}


def distribution(param: Param) -> BaseDistribution:
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(param.choices)
    return IntDistribution(param.low, param.high, log=param.log, step=param.step)


def distributions(sweep: SweepCreate) -> dict[str, BaseDistribution]:
    return {path: distribution(param) for path, param in sweep.space.items()}


def max_epochs(sweep: SweepCreate) -> int:
    """The most epochs a trial trains: Hyperband's largest resource."""
    param = sweep.space.get("fit.epochs")
    if param is not None:
        return int(max(param.extremes()))
    return int(sweep.job["fit"]["epochs"])


# A sampler's random generators as JSON: each NumPy RandomState's get_state(), in order.
SamplerState = list[list[Any]]


def sampler(sweep: SweepCreate, state: SamplerState | None = None) -> BaseSampler:
    """The sweep's sampler, its random generators where the last draw left them."""
    seed = sweep.seed or 0
    drawing: BaseSampler
    if sweep.sampler == "random":
        drawing = RandomSampler(seed=seed)
    elif sweep.sampler == "grid":
        space = {path: param.grid() for path, param in sweep.space.items()}  # type: ignore[union-attr]
        drawing = GridSampler(space, seed=seed)
    else:
        with warnings.catch_warnings():  # constant_liar is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Trials running in parallel count as if they scored their worst: the next draw
            # avoids their neighbourhood (Optuna's advice for distributed TPE).
            drawing = TPESampler(seed=seed, constant_liar=sweep.parallelism > 1)
    if state is not None:
        for generator, saved in zip(_generators(drawing), state, strict=True):
            generator.set_state((saved[0], np.asarray(saved[1], dtype=np.uint32), *saved[2:]))
    return drawing


def sampler_state(drawing: BaseSampler) -> SamplerState:
    states: SamplerState = []
    for generator in _generators(drawing):
        name, keys, pos, gauss, cached = generator.get_state(legacy=True)
        states.append([name, np.asarray(keys).tolist(), int(pos), int(gauss), float(cached)])
    return states


def _generators(drawing: BaseSampler) -> list[np.random.RandomState]:
    """The random generators a sampler draws with: its own and, for TPE, those of the random
    sampler it starts with. Optuna keeps them in ``_rng`` (a LazyRandomState);
    tests/fitq/test_sweep_study.py holds the draws equal to one sampler's, hand-run."""
    owners: list[Any] = [drawing, getattr(drawing, "_random_sampler", None)]
    return [owner._rng.rng for owner in owners if owner is not None]


def pruner(sweep: SweepCreate) -> BasePruner:
    if sweep.pruner == "median":
        return MedianPruner()
    if sweep.pruner == "hyperband":
        return HyperbandPruner(
            min_resource=1, max_resource=max_epochs(sweep), reduction_factor=REDUCTION_FACTOR
        )
    return NopPruner()


def replay(
    sweep_id: str,
    sweep: SweepCreate,
    trials: Sequence[Trial],
    count: int,
    state: SamplerState | None = None,
) -> optuna.Study:
    """An in-memory study holding trials 0 … ``count - 1`` as their jobs tell them (a number
    without a job, whose job was deleted, as a failed trial), its sampler in ``state``."""
    study = optuna.create_study(
        storage=InMemoryStorage(),
        study_name=sweep_id,  # Hyperband assigns brackets from the study's name
        direction=sweep.objective.direction,
        sampler=sampler(sweep, state),
        pruner=pruner(sweep),
    )
    spaces = distributions(sweep)
    by_number = {trial.number: trial for trial in trials}
    for number in range(count):
        trial = by_number.get(number)
        study.add_trial(_frozen(trial, spaces) if trial else create_trial(state=TrialState.FAIL))
    return study


def _frozen(trial: Trial, spaces: dict[str, BaseDistribution]) -> FrozenTrial:
    state = _STATES[trial.state]
    value = trial.value
    if state == TrialState.PRUNED and trial.reported:  # as study.tell records a pruned trial
        last = trial.reported[max(trial.reported)]
        value = last if math.isfinite(last) else None
    return create_trial(
        state=state,
        value=value,
        params=trial.params,
        distributions={path: spaces[path] for path in trial.params},
        intermediate_values=trial.reported,
        system_attrs=trial.system_attrs,
    )


class Drawn(NamedTuple):
    params: dict[str, Any]
    system_attrs: dict[str, Any]  # what the sampler recorded on the trial (a grid point)
    state: SamplerState  # the sampler's generators after the draw: the next draw's start


def suggest(
    sweep_id: str,
    sweep: SweepCreate,
    trials: Sequence[Trial],
    count: int,
    state: SamplerState | None = None,
) -> Drawn:
    """Trial ``count``'s values, drawn by the sweep's sampler (its generators in ``state``,
    None for the first draw) from the trials so far; what the sampler recorded on the
    trial, and its state after (the caller stores them)."""
    study = replay(sweep_id, sweep, trials, count, state)
    trial = study.ask(distributions(sweep))
    attrs = study.trials[trial.number].system_attrs
    return Drawn(trial.params, attrs, sampler_state(study.sampler))


class Pruned(NamedTuple):
    pruned: bool
    system_attrs: dict[str, Any]  # the trial's, as the pruner left them (Hyperband's rungs)


def should_prune(
    sweep_id: str, sweep: SweepCreate, trials: Sequence[Trial], count: int, number: int
) -> Pruned:
    """Whether the pruner stops running trial ``number`` after its last report, as
    ``trial.should_prune()`` answers in a hand-run study, and what it recorded on the trial
    (Hyperband's rungs: the caller stores them, the next decisions' replays need them)."""
    study = replay(sweep_id, sweep, trials, count)
    pruned = study.pruner.prune(study, study.trials[number])
    return Pruned(pruned, study.trials[number].system_attrs)
