"""Sweeps through the API in-process, their trials trained by the worker's runner (Keras,
without Celery) on the same store: the lifecycle, parallelism, pruning, cancel and delete,
and a trial re-run as a plain job to the same numbers."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fitq.settings import Settings
from fitq.spec.sweep import with_value
from tests.factories import tiny_arrays, tiny_job


def sweep_body(**overrides: Any) -> dict[str, Any]:
    job = tiny_job(epochs=3, test=tiny_arrays(rows=32, seed=1))
    job.pop("seed")  # each trial's seed: the sweep's plus its number
    job["fit"]["validation_split"] = 0.25
    body: dict[str, Any] = {
        "job": job,
        "space": {
            "compile.optimizer.learning_rate": {
                "type": "float",
                "low": 1e-3,
                "high": 0.1,
                "log": True,
            },
            "model.layers.0.units": {"type": "int", "low": 4, "high": 16, "step": 4},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "sampler": "random",
        "max_trials": 4,
        "parallelism": 2,
        "seed": 11,
    }
    body.update(overrides)
    return body


def queued_trials(client: TestClient, sweep_id: str) -> list[str]:
    sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
    return [t["job_id"] for t in sweep["trials"] if t["state"] == "queued"]


def drive(client: TestClient, runner: Any, sweep_id: str, sent: list[str]) -> list[int]:
    """Train queued trials one at a time until the sweep ends; the number of trials active
    after each step."""
    active_seen = []
    for _ in range(50):
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
        active_seen.append(sweep["counts"]["queued"] + sweep["counts"]["running"])
        queued = [t["job_id"] for t in sweep["trials"] if t["state"] == "queued"]
        if not queued:
            return active_seen
        runner.run(queued[0])
    raise AssertionError("the sweep did not end")


@pytest.fixture
def sent(runner: Any) -> list[str]:
    """The trial ids the runner sends after advancing a sweep (no broker here)."""
    ids: list[str] = []
    runner.send_trial = lambda job_id, queue, runtime: ids.append(job_id)
    return ids


def test_a_sweep_runs_its_trials_within_parallelism_and_names_the_best(
    api: tuple[TestClient, Settings], runner: Any, sent: list[str]
) -> None:
    client, _ = api
    created = client.post("/v1/sweeps", json=sweep_body())
    assert created.status_code == 202, created.text
    sweep = created.json()
    assert created.headers["location"] == f"/v1/sweeps/{sweep['id']}"
    assert sweep["status"] == "queued"
    assert [t["state"] for t in sweep["trials"]] == ["queued", "queued"]

    active = drive(client, runner, sweep["id"], sent)
    assert max(active) == 2  # parallelism held
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert done["counts"]["complete"] == 4 and len(done["trials"]) == 4
    assert sent == [t["job_id"] for t in done["trials"][2:]]  # the runner started the rest

    values = {}
    for trial in done["trials"]:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert (job["sweep_id"], job["trial"]) == (sweep["id"], trial["number"])
        assert job["spec"]["seed"] == 11 + trial["number"]
        assert job["spec"]["model"]["layers"][0]["units"] == trial["params"]["model.layers.0.units"]
        lr = job["spec"]["compile"]["optimizer"]["learning_rate"]
        assert lr == trial["params"]["compile.optimizer.learning_rate"]
        assert 1e-3 <= lr <= 0.1
        assert trial["value"] == job["history"][-1]["val_loss"]
        values[trial["number"]] = trial["value"]
    best = min(values, key=values.__getitem__)
    assert done["best"]["number"] == best and done["best"]["value"] == values[best]


def test_a_trial_rerun_as_a_plain_job_gives_the_same_numbers(
    api: tuple[TestClient, Settings], runner: Any, sent: list[str]
) -> None:
    client, _ = api
    body = sweep_body(max_trials=1, parallelism=1)
    sweep = client.post("/v1/sweeps", json=body).json()
    drive(client, runner, sweep["id"], sent)
    trial = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"][0]
    job = client.get(f"/v1/jobs/{trial['job_id']}").json()

    plain = copy.deepcopy(body["job"])
    for path, value in trial["params"].items():
        plain = with_value(plain, path, value)
    plain["seed"] = job["spec"]["seed"]
    rerun = client.post("/v1/jobs", json=plain).json()
    runner.run(rerun["id"])
    again = client.get(f"/v1/jobs/{rerun['id']}").json()
    assert again["history"] == job["history"]
    assert again["result"]["test_loss"] == job["result"]["test_loss"]
    assert again["sweep_id"] is None and again["trial"] is None


def test_the_median_pruner_stops_poor_trials_keeping_their_history(
    api: tuple[TestClient, Settings], runner: Any, sent: list[str]
) -> None:
    client, _ = api
    body = sweep_body(
        space={
            "compile.optimizer.learning_rate": {
                "type": "float",
                "low": 1e-5,
                "high": 0.3,
                "log": True,
            }
        },
        pruner="median",
        max_trials=9,
        parallelism=1,
    )
    body["job"]["fit"]["epochs"] = 4
    sweep = client.post("/v1/sweeps", json=body).json()
    drive(client, runner, sweep["id"], sent)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    pruned = [t for t in done["trials"] if t["state"] == "pruned"]
    assert pruned, done["counts"]
    for trial in pruned:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert job["status"] == "cancelled" and job["cancel_reason"] == "pruned"
        assert len(job["history"]) == trial["epochs"] < 4  # stopped early, history kept
        assert job["error"] is None
    # Median's warm-up: nothing is pruned before five trials have completed.
    assert min(t["number"] for t in pruned) >= 5


def test_cancel_stops_the_trials_and_delete_removes_them(
    api: tuple[TestClient, Settings], runner: Any, sent: list[str]
) -> None:
    client, _ = api
    sweep = client.post("/v1/sweeps", json=sweep_body()).json()
    trial_ids = [t["job_id"] for t in sweep["trials"]]
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409
    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 2
    for job_id in trial_ids:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert (job["status"], job["cancel_reason"]) == ("cancelled", "requested")
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 202  # harmless
    listed = client.get("/v1/sweeps").json()
    assert [s["id"] for s in listed["data"]] == [sweep["id"]]
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    for job_id in trial_ids:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (
            {"space": {"model.layers.0.unit": {"type": "int", "low": 1, "high": 4}}},
            "space.model.layers.0.unit",
            "units",
        ),
        (
            {"space": {"model.layers.0.units": {"type": "int", "low": 0, "high": 4}}},
            "space.model.layers.0.units",
            "received 0",
        ),
        ({"objective": {"metric": "val_mea"}}, "objective.metric", "val_mae"),
        ({"parallelism": 4}, "parallelism", "FITQ_MAX_ACTIVE_JOBS"),
    ],
)
def test_a_sweep_that_can_make_an_invalid_job_is_refused(
    api: tuple[TestClient, Settings], change: dict[str, Any], loc: str, words: str
) -> None:
    client, settings = api
    settings.max_active_jobs = 3
    body = sweep_body(**change)
    refused = client.post("/v1/sweeps", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["error"]["details"][0]
    assert detail["loc"] == loc
    assert words in detail["message"]
    assert client.get("/v1/sweeps").json()["data"] == []


def test_a_sampler_that_cannot_draw_fails_the_sweep_with_its_reason(
    api: tuple[TestClient, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fitq.sweeps.advance

    def refuse(*args: Any) -> Any:
        raise ValueError("the space has no point left")

    monkeypatch.setattr(fitq.sweeps.advance, "suggest", refuse)
    client, _ = api
    created = client.post("/v1/sweeps", json=sweep_body())
    assert created.status_code == 202, created.text
    sweep = created.json()
    assert sweep["status"] == "failed" and sweep["trials"] == []
    assert sweep["error"] == "drawing trial values failed: the space has no point left"
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204


def test_one_at_a_time_a_sweep_is_the_hand_run_optuna_study(
    api: tuple[TestClient, Settings], runner: Any, sent: list[str]
) -> None:
    """Parallelism 1: the same values drawn, the same Keras numbers epoch by epoch, the
    same trials pruned, the same best as ``study.optimize`` with the same Keras code."""
    import keras
    import optuna

    client, _ = api
    body = sweep_body(sampler="tpe", pruner="hyperband", max_trials=12, parallelism=1)
    sweep = client.post("/v1/sweeps", json=body).json()
    drive(client, runner, sweep["id"], sent)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()

    train = tiny_arrays()
    hand_histories: list[dict[str, list[float]]] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("compile.optimizer.learning_rate", 1e-3, 0.1, log=True)
        units = trial.suggest_int("model.layers.0.units", 4, 16, step=4)
        keras.utils.set_random_seed(11 + trial.number)
        model = keras.Sequential()
        model.add(keras.layers.Dense(units, activation="relu", input_shape=(4,)))
        model.add(keras.layers.Dense(1))
        model.compile(
            loss="mse", optimizer=keras.optimizers.Adam(learning_rate=lr), metrics=["mae", "mse"]
        )
        seen: dict[str, list[float]] = {}
        hand_histories.append(seen)

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                for key, value in (logs or {}).items():
                    seen.setdefault(key, []).append(value)
                trial.report(logs["val_loss"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        history = model.fit(
            train["x"],
            train["y"],
            batch_size=16,
            epochs=3,
            validation_split=0.25,
            verbose=0,
            callbacks=[Report()],
        )
        return history.history["val_loss"][-1]

    study = optuna.create_study(
        study_name=sweep["id"],  # Hyperband's brackets follow the study's name
        sampler=optuna.samplers.TPESampler(seed=11),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=3, reduction_factor=3),
    )
    study.optimize(objective, n_trials=12)

    assert [t["params"] for t in done["trials"]] == [t.params for t in study.trials]
    states = {"COMPLETE": "complete", "PRUNED": "pruned"}
    assert [t["state"] for t in done["trials"]] == [states[t.state.name] for t in study.trials]
    for trial, seen in zip(done["trials"], hand_histories, strict=True):
        history = client.get(f"/v1/jobs/{trial['job_id']}").json()["history"]
        assert {key: [e[key] for e in history] for key in seen} == seen
    assert (done["best"]["number"], done["best"]["value"]) == (
        study.best_trial.number,
        study.best_value,
    )
