"""A 30-trial TPE sweep with Hyperband pruning over the seed model (learning rate, units,
batch size) through fitq on two worker processes, against the same Optuna study run by hand
in one process with the same Keras code and pruner, measured side by side in one run.

    .venv/bin/python -m bench.sweep_vs_optuna [--trials 30] [--epochs 9] [--seeds 3]

It starts its own stack on the machine's Redis and PostgreSQL (a database and a Redis db
index of its own): the API under uvicorn and two Celery training workers, as compose runs
them. The sweep's time runs from POST /v1/sweeps until a client polling every 50 ms sees it
finished; its data was stored by earlier (warm-up) jobs, one per worker, and is referenced by
dataset id. The hand-run study runs in this process after a warm-up fit, arrays in memory:
``study.optimize`` with a Keras callback that reports val_loss at each epoch's end and
raises ``TrialPruned`` when ``trial.should_prune()`` (Optuna's own Keras integration does
the same). Both use TPE seeded alike, seed each trial's Keras run alike, and name the study
alike (Hyperband's brackets follow the study's name): one trial at a time they would be the
same study (tests/service/test_sweeps.py holds that); two at a time, TPE draws some trials
before the one ahead of them has ended, so the trials differ and the best values are
compared. The best of 30 trials moves by tens of percent from one seed (or study name) to
the next, by hand as through fitq, so each of ``--seeds`` seeds runs both, and the mean
best values are compared too."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import keras
import optuna

from bench.stack import redis_postgres_stack
from examples.seed_data import seed_arrays, seed_job

LEARNING_RATE = {"low": 1e-4, "high": 0.1}
UNITS = {"low": 8, "high": 64, "step": 8}
BATCH_SIZES = [16, 32, 64]


class PruningCallback(keras.callbacks.Callback):
    """Report val_loss after each epoch (step = the epoch's index) and stop when pruned."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.trial.report(float((logs or {})["val_loss"]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned()


def train(
    arrays: dict, lr: float, units: int, batch_size: int, epochs: int, seed: int, callbacks: list
) -> float:
    """The seed model with the trial's values, as a script writes it: val_loss at the end."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    for width in (10, units, 20, 1):
        model.add(keras.layers.Dense(width))
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=lr), metrics=["mae"])
    history = model.fit(
        arrays["x_train"], arrays["y_train"], batch_size=batch_size, epochs=epochs,
        validation_data=(arrays["x_val"], arrays["y_val"]), callbacks=callbacks, verbose=0,
    )  # fmt: skip
    return float(history.history["val_loss"][-1])


def hand_run(arrays: dict, trials: int, epochs: int, name: str, seed: int) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
    )

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("compile.optimizer.learning_rate", **LEARNING_RATE, log=True)
        units = trial.suggest_int("model.layers.1.units", **UNITS)
        batch_size = trial.suggest_categorical("fit.batch_size", BATCH_SIZES)
        keras_seed = seed + trial.number  # fitq's trial seed: the sweep's plus its number
        return train(arrays, lr, units, batch_size, epochs, keras_seed, [PruningCallback(trial)])

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - started
    states = [t.state.name.lower() for t in study.trials]
    return {"seconds": seconds, "best": study.best_value, "pruned": states.count("pruned")}


def stored_body(client: httpx.Client, arrays: dict, epochs: int, workers: int) -> dict:
    """The seed job with its data stored by warm-up jobs (one per worker, run at once, so
    each worker process has trained before the timed sweep); later bodies reference it."""
    body = seed_job(arrays, epochs=1, seed=1)
    first = client.post("/v1/jobs", json=body).raise_for_status().json()
    body["data"] = {
        s: {"dataset_id": r["dataset_id"]} for s, r in first["spec"]["data"].items() if r
    }
    ids = [first["id"]] + [
        client.post("/v1/jobs", json=body).raise_for_status().json()["id"] for _ in range(workers)
    ]
    for job_id in ids:
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in {"succeeded", "failed"}:
            time.sleep(0.05)
    body["fit"]["epochs"] = epochs
    body.pop("seed")  # each trial's: the sweep's plus its number
    return body


def service_run(client: httpx.Client, job: dict, trials: int, epochs: int, seed: int) -> dict:
    sweep = {
        "job": job,
        "space": {
            "compile.optimizer.learning_rate": {"type": "float", **LEARNING_RATE, "log": True},
            "model.layers.1.units": {"type": "int", **UNITS},
            "fit.batch_size": {"type": "categorical", "choices": BATCH_SIZES},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "sampler": "tpe",
        "pruner": "hyperband",
        "max_trials": trials,
        "parallelism": 2,
        "seed": seed,
    }
    started = time.perf_counter()
    sweep_id = client.post("/v1/sweeps", json=sweep).raise_for_status().json()["id"]
    while True:
        found = client.get(f"/v1/sweeps/{sweep_id}").json()
        if found["status"] not in {"queued", "running"}:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if found["status"] != "succeeded":
        raise RuntimeError(f"sweep {sweep_id} ended {found['status']}: {found['error']}")
    pruned = found["counts"]["pruned"]
    return {"seconds": seconds, "best": found["best"]["value"], "pruned": pruned, "id": sweep_id}


def run(trials: int, epochs: int, seeds: int) -> list[dict]:
    arrays = seed_arrays()
    with ExitStack() as cleanup:
        stack = redis_postgres_stack(cleanup)
        with ThreadPoolExecutor(2) as pool:  # both workers start at once
            list(pool.map(lambda name: stack.start_worker(name), ["w0", "w1"]))
        with httpx.Client(base_url=stack.base_url, timeout=120) as client:
            body = stored_body(client, arrays, epochs, workers=2)
            train(arrays, 1e-3, 20, 32, 1, 1, [])  # warm-up: tracing, allocator
            rows = []
            for seed in range(1, seeds + 1):
                service = service_run(client, body, trials, epochs, seed)
                hand = hand_run(arrays, trials, epochs, service["id"], seed)
                rows.append({"seed": seed, "hand": hand, "service": service})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows = run(args.trials, args.epochs, args.seeds)
    print(
        f"{args.trials} trials, TPE + Hyperband (1..{args.epochs} epochs, factor 3), seed model, val_loss"
    )
    print(
        "| seed | by hand, one process (s) | fitq, two workers (s) | fitq / by hand | best by hand | best fitq | gap | pruned by hand / fitq |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        hand, service = r["hand"], r["service"]
        gap = (service["best"] - hand["best"]) / hand["best"]
        print(
            f"| {r['seed']} | {hand['seconds']:.1f} | {service['seconds']:.1f} | {service['seconds'] / hand['seconds']:.2f}x "
            f"| {hand['best']:.6g} | {service['best']:.6g} | {gap:+.1%} | {hand['pruned']} / {service['pruned']} |"
        )
    hand_s = sum(r["hand"]["seconds"] for r in rows)
    service_s = sum(r["service"]["seconds"] for r in rows)
    hand_best = sum(r["hand"]["best"] for r in rows) / len(rows)
    service_best = sum(r["service"]["best"] for r in rows) / len(rows)
    print(
        f"all seeds: wall {service_s / hand_s:.2f}x (target ≤ 0.7x); mean best {hand_best:.6g} by hand, "
        f"{service_best:.6g} fitq ({(service_best - hand_best) / hand_best:+.1%}; target within 2 %)"
    )


if __name__ == "__main__":
    main()
