"""The seed example run by hand with Keras: what a fitq job reproduces bit for bit.

python examples/seed_example.py                  # test loss and MAE, every digit
python examples/seed_example.py --json           # {"test_loss": ..., "test_metrics": {"mae": ...}}
python examples/seed_example.py --compare JOB_ID # the job's result (FITQ_URL, FITQ_API_KEY)
                                                 # against this run: exit 0 when every digit
                                                 # is the same
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import keras

from examples.seed_data import seed_arrays

warnings.filterwarnings("ignore", message=".*input_shape.*")  # Keras 3 prefers keras.Input


def run(arrays: dict, seed: int = 42, epochs: int = 10, batch_size: int = 32) -> dict:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential()
    model.add(keras.layers.Dense(10, input_shape=(784,)))  # the classic form; Keras 3 warns
    model.add(keras.layers.Dense(20))
    model.add(keras.layers.Dense(20))
    model.add(keras.layers.Dense(1))
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(arrays["x_val"], arrays["y_val"]),
        verbose=0,
    )
    return model.evaluate(
        arrays["x_test"], arrays["y_test"], batch_size=batch_size, verbose=0, return_dict=True
    )


def compare(job_id: str, scores: dict) -> bool:
    """The job's test loss and MAE (as ``GET /v1/jobs/{id}`` returns them) against the
    hand run's, printed side by side; True when both are equal to the last digit."""
    from fitq.client import Client

    with Client() as client:
        result = client.jobs.get(job_id).result
    if result is None:
        print(f"job {job_id} has no result yet (not succeeded)")
        return False
    rows = [
        ("test loss", result.test_loss, scores["loss"]),
        ("test MAE", result.test_metrics.get("mae"), scores["mae"]),
    ]
    for name, job, hand in rows:
        verdict = "same" if job == hand else "DIFFERENT"
        print(f"{name:9}  job {job!r:22}  by hand {hand!r:22}  {verdict}")
    return all(job == hand for _, job, hand in rows)


if __name__ == "__main__":
    scores = run(seed_arrays())
    arguments = sys.argv[1:]
    if "--compare" in arguments:
        sys.exit(0 if compare(arguments[arguments.index("--compare") + 1], scores) else 1)
    if "--json" in arguments:  # as a job's result holds them
        print(json.dumps({"test_loss": scores["loss"], "test_metrics": {"mae": scores["mae"]}}))
    else:  # repr: every digit, to compare with a job's result exactly
        print(f"test loss {scores['loss']!r}  test MAE {scores['mae']!r}")
