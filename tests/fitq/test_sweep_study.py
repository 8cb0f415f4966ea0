"""Optuna's study replayed from a sweep's trials decides as the hand-run study does: the
pruner's answer at each step, the sampler's draws inside the space, the grid covered once."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pytest

from fitq.spec.sweep import SweepCreate
from fitq.sweeps.study import distributions, should_prune, suggest
from fitq.sweeps.trials import Trial, TrialState, best_trial, trial_limit, trial_of

SPACE = {
    "compile.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "model.layers.0.units": {"type": "int", "low": 8, "high": 64, "step": 8},
}


def sweep(**overrides: Any) -> SweepCreate:
    body: dict[str, Any] = {"job": {"fit": {"epochs": 9}}, "space": SPACE, "seed": 3}
    return SweepCreate.model_validate(body | overrides)


def curve(params: dict[str, Any], step: int) -> float:
    """A loss that falls with the epochs, faster near a learning rate of 0.01."""
    lr = params["compile.optimizer.learning_rate"]
    return (1 + abs(math.log10(lr) + 2)) / (step + 1) + params["model.layers.0.units"] / 1000


@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_the_replayed_pruner_answers_as_the_hand_run_study_at_every_step(pruner: str) -> None:
    spec = sweep(pruner=pruner)
    hand_pruner = (
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
        if pruner == "hyperband"
        else optuna.pruners.MedianPruner()
    )
    study = optuna.create_study(
        study_name="swp_same", pruner=hand_pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    trials: list[Trial] = []
    pruned = 0
    for number in range(24):
        trial = study.ask(distributions(spec))
        reported: dict[int, float] = {}
        attrs: dict[str, Any] = {}  # what the worker stores on the trial's job
        state, value = TrialState.complete, None
        for step in range(9):
            reported[step] = curve(trial.params, step)
            trial.report(reported[step], step)
            running = Trial(
                number, f"job_{number}", trial.params, TrialState.running, None, dict(reported),
                system_attrs=attrs,
            )  # fmt: skip
            replayed, attrs = should_prune("swp_same", spec, [*trials, running], number + 1, number)
            assert replayed == trial.should_prune(), (number, step)
            if replayed:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                state = TrialState.pruned
                pruned += 1
                break
        else:
            value = reported[8]
            study.tell(trial, value)
        assert attrs == study.trials[number].system_attrs  # the same rungs recorded
        trials.append(
            Trial(number, f"job_{number}", trial.params, state, value, reported, system_attrs=attrs)
        )
    assert pruned > 0  # the comparison covered both answers


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_one_at_a_time_the_draws_are_those_of_the_hand_run_study(kind: str) -> None:
    """Parallelism 1: each draw, replayed from the stored trials and the stored state of the
    sampler's generators (through JSON, as the store keeps it), is the hand-run study's."""
    spec = sweep(sampler=kind, parallelism=1)
    seeded = optuna.samplers.TPESampler if kind == "tpe" else optuna.samplers.RandomSampler
    hand = optuna.create_study(sampler=seeded(seed=3))
    trials: list[Trial] = []
    state = None
    for number in range(14):  # past TPE's ten random startup trials
        by_hand = hand.ask(distributions(spec))
        drawn = suggest("swp_x", spec, trials, number, state)
        assert drawn.params == by_hand.params, number
        assert suggest("swp_x", spec, trials, number, state).params == drawn.params
        state = json.loads(json.dumps(drawn.state))
        value = curve(drawn.params, 8)
        hand.tell(by_hand, value)
        trials.append(
            Trial(number, f"job_{number}", drawn.params, TrialState.complete, value, {8: value})
        )
    assert len({t.params["compile.optimizer.learning_rate"] for t in trials}) == 14


def test_the_grid_is_covered_once() -> None:
    spec = sweep(
        sampler="grid",
        max_trials=100,
        space={
            "fit.batch_size": {"type": "categorical", "choices": [16, 32]},
            "model.layers.0.units": {"type": "int", "low": 8, "high": 24, "step": 8},
        },
    )
    assert trial_limit(spec) == 6
    trials: list[Trial] = []
    state = None
    for number in range(6):
        params, attrs, state = suggest("swp_g", spec, trials, number, state)
        trials.append(
            Trial(number, f"job_{number}", params, TrialState.queued, None, system_attrs=attrs)
        )
    drawn = {(t.params["fit.batch_size"], t.params["model.layers.0.units"]) for t in trials}
    assert drawn == {(b, u) for b in (16, 32) for u in (8, 16, 24)}


def test_a_trial_reads_its_job() -> None:
    history = [{"loss": 2.0, "val_loss": 1.5}, {"loss": 1.0, "val_loss": float("nan")}]
    failed = trial_of(0, "job_a", {}, "succeeded", None, history, "val_loss")
    assert failed.state == TrialState.failed and failed.value is None  # no finite last value
    assert failed.reported[0] == 1.5 and math.isnan(failed.reported[1])  # as reported
    pruned = trial_of(1, "job_b", {}, "cancelled", "pruned", history[:1], "val_loss")
    assert pruned.state == TrialState.pruned
    assert trial_of(2, "job_c", {}, "cancelled", "requested", [], "val_loss").state == "cancelled"
    complete = trial_of(3, "job_d", {}, "succeeded", None, history[:1], "val_loss")
    assert complete.value == 1.5
    trials = [complete, Trial(4, "job_e", {}, TrialState.complete, 3.0), pruned]
    assert best_trial(trials, "minimize") is complete
    assert best_trial(trials, "maximize").number == 4  # type: ignore[union-attr]
