"""A sweep's spec, before any search runs: its paths set values in the job (a name becoming
its object form on the way), each trial's seed is recorded, and a space that can make an
invalid job, or an objective the job does not log, is refused naming the path."""

from __future__ import annotations

from typing import Any

import pytest

from fitq.errors import SpecError
from fitq.settings import Settings
from fitq.spec import JobCreate, ModelSpec
from fitq.spec.sweep import SweepCreate, check_sweep, trial_job, with_value
from service.jobs.checks import check_job
from service.jobs.fine_tuning import source_model
from tests.factories import tiny_job


def _check(job: JobCreate) -> ModelSpec:
    """What a job passes at submit (no stored datasets: inline data)."""
    check_job(Settings(), {}, job)
    return source_model(job)


def _sweep(**changes: Any) -> SweepCreate:
    job = tiny_job(epochs=2)
    job["fit"]["validation_split"] = 0.25
    job.pop("seed")
    body = {
        "job": job,
        "space": {
            "compile.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 0.1,
                                                "log": True},
            "model.layers.0.units": {"type": "int", "low": 4, "high": 32, "step": 4},
            "fit.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "seed": 100,
        **changes,
    }  # fmt: skip
    return SweepCreate.model_validate(body)


def test_a_trials_job_has_its_values_and_a_recorded_seed() -> None:
    sweep = _sweep()
    params = {"compile.optimizer.learning_rate": 0.01, "model.layers.0.units": 12,
              "fit.batch_size": 8}  # fmt: skip
    body = trial_job(sweep, params, number=3)
    assert body["compile"]["optimizer"] == {"type": "adam", "learning_rate": 0.01}
    assert body["model"]["layers"][0]["units"] == 12
    assert body["fit"]["batch_size"] == 8
    assert body["seed"] == 103  # the sweep's seed + the trial's number
    assert sweep.job["compile"]["optimizer"] == "adam"  # the sweep's own job is untouched
    job = JobCreate.model_validate(body)
    assert job.compile.optimizer.learning_rate == 0.01
    seeded = _sweep(job={**sweep.job, "seed": 7})
    assert trial_job(seeded, params, number=3)["seed"] == 7  # the job's own seed stays


def test_a_valid_sweep_passes_its_checks() -> None:
    check_sweep(_sweep(), _check)


@pytest.mark.parametrize(
    ("path", "param", "fragment"),
    [
        ("model.layer.0.units", {"type": "int", "low": 1, "high": 4},
         "expected a field of the job at 'model.layer', received 'layer' (did you mean 'layers'?)"),
        ("model.layers.7.units", {"type": "int", "low": 1, "high": 4},
         "expected an index below 2 at 'model.layers.7'"),
        ("model.layers.0.units", {"type": "int", "low": 0, "high": 8},
         "received 0: model.layers.0.units: Input should be greater than or equal to 1"),
        ("fit.batch_size", {"type": "categorical", "choices": [16, "big"]},
         "received 'big'"),
        ("model.layers.0.activation", {"type": "categorical", "choices": ["relu", "mish"]},
         "received 'mish'"),
    ],
    ids=["no such field", "no such layer", "units of 0", "a string batch size", "activation"],
)  # fmt: skip
def test_a_space_that_can_make_an_invalid_job_is_refused_naming_its_path(
    path: str, param: dict[str, Any], fragment: str
) -> None:
    sweep = _sweep(space={path: param})
    with pytest.raises(SpecError) as refused:
        check_sweep(sweep, _check)
    detail = refused.value.details[0]
    assert detail.loc == f"space.{path}"
    assert fragment in detail.message


def test_the_objective_must_be_something_the_job_logs() -> None:
    with pytest.raises(SpecError) as refused:
        check_sweep(_sweep(objective={"metric": "val_mea"}), _check)
    assert refused.value.details[0].loc == "objective.metric"
    assert "received 'val_mea' (did you mean" in refused.value.details[0].message


def test_the_grid_sampler_takes_finite_parameters_only() -> None:
    with pytest.raises(ValueError, match=r"received a float at 'compile\.optimizer"):
        _sweep(sampler="grid")
    grid = _sweep(
        sampler="grid",
        space={
            "model.layers.0.units": {"type": "int", "low": 4, "high": 12, "step": 4},
            "fit.batch_size": {"type": "categorical", "choices": [8, 16]},
        },
    )
    assert grid.grid_size() == 3 * 2


@pytest.mark.parametrize(
    "param",
    [
        {"type": "float", "low": 1.0, "high": 0.1},
        {"type": "float", "low": 0.0, "high": 1.0, "log": True},
        {"type": "int", "low": 0, "high": 8, "log": True},
    ],
    ids=["low above high", "log from 0", "log int from 0"],
)
def test_a_malformed_parameter_is_refused(param: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="expected"):
        _sweep(space={"fit.batch_size": param})


def test_with_value_sets_a_list_entry_and_refuses_a_path_through_a_value() -> None:
    body = {"a": [1, 2, 3], "b": {"c": 5}}
    assert with_value(body, "a.1", 9) == {"a": [1, 9, 3], "b": {"c": 5}}
    with pytest.raises(SpecError, match=r"expected an object or list at 'b\.c\.d'"):
        with_value(body, "b.c.d.e", 1)
