"""Hostile input against the API and the ingest worker as real processes, their memory read
from the kernel (each process's resident high-water mark, ``VmHWM``): what an attack may
cost is stated here and in the README, not guessed from timings.

- The ingest worker: a CSV header of 1,000,000 columns took it 3 GB and a JSON lines file
  of one huge line held the line whole; now each costs it less than ``WORKER_BOUND``.
- The API: a ``keras_config`` string of millions of small arrays cost it 1.6 GB (26 times
  the body); refused now, a hostile body costs it at most ``REFUSED_FACTOR`` times its size
  (the body is buffered, measured and, for the string, parsed once). Valid inline data at
  the body limit costs at most ``INLINE_FACTOR`` times its size while it is parsed (each
  number a Python float, then a NumPy one): the README states both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.factories import tiny_job
from tests.integration.conftest import api_stack
from tests.processes import peak_rss, pool_child, wait_for

WORKER_BOUND = 64 * 2**20
REFUSED_FACTOR = 6
INLINE_FACTOR = 20


def upload(client: httpx.Client, name: str, content: bytes, target: str) -> dict:
    response = client.post("/v1/datasets", files={"file": (name, content)}, data={"target": target})
    assert response.status_code == 202, response.text
    dataset_id = response.json()["id"]

    def done() -> dict | None:
        dataset = client.get(f"/v1/datasets/{dataset_id}").json()
        return dataset if dataset["status"] != "processing" else None

    return wait_for(done, 120, 0.1, f"dataset {dataset_id}")


def test_hostile_uploads_cost_the_ingest_worker_little_memory(tmp_path: Path) -> None:
    with api_stack(tmp_path) as stack, stack.client() as client:
        worker = stack.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        warm = upload(client, "warm.csv", b"a,b\n1,2\n3,4\n", target="b")
        assert warm["status"] == "ready", warm  # pandas and the parsers are loaded
        child = pool_child(worker.process.pid)
        before = peak_rss(child)

        wide = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b"\n"
        failed = upload(client, "wide.csv", wide, target="c0")
        assert "FITQ_MAX_COLUMNS" in failed["error"]["message"], failed
        line = json.dumps({"y": 1, "x": "a" * 40 * 2**20}).encode() + b"\n"
        failed = upload(client, "long.jsonl", line, target="y")
        assert "expected a record of at most" in failed["error"]["message"], failed

        assert pool_child(worker.process.pid) == child  # measured on the process that read
        grew = peak_rss(child) - before
    assert grew < WORKER_BOUND, f"the ingest worker's peak memory grew {grew:,} bytes"


def _keras_config_of_small_arrays() -> bytes:
    """15 M small arrays in a 60 MB string (a string passes the JSON limits unmeasured)."""
    arrays = "[0]," * (15 * 2**20)
    keras_config = '{"class_name": "Sequential", "config": {"layers": [' + arrays + "[0]]}}"
    return json.dumps({"model": {"keras_config": keras_config}}).encode()


def _small_arrays() -> bytes:
    """The same arrays as JSON: within the depth and width limits, over the count."""
    rows = "[" + ",".join(["[0]"] * 100_000) + "]"
    job = tiny_job()
    job["data"]["train"] = {"x": "X", "y": [0.0] * 150}
    return json.dumps(job).replace('"X"', "[" + ",".join([rows] * 150) + "]").encode()


def _numbers_at_the_size_limit() -> bytes:
    """As many short numbers as 60 MB holds, in rows the limits allow: the worst a valid
    inline dataset costs (each number becomes a Python float, then a NumPy one)."""
    rows = 60 * 2**20 // (4 * 1000)
    job = tiny_job(features=1000)
    job["data"]["train"] = {"x": "X", "y": [0.5] * rows}
    row = "[" + ",".join(["0.5"] * 1000) + "]"
    return json.dumps(job).replace('"X"', "[" + ",".join([row] * rows) + "]").encode()


@pytest.mark.parametrize(
    ("attack", "status", "factor"),
    [
        (_keras_config_of_small_arrays, 422, REFUSED_FACTOR),
        (_small_arrays, 422, REFUSED_FACTOR),
        (_numbers_at_the_size_limit, 200, INLINE_FACTOR),
    ],
)
def test_a_json_body_costs_the_api_a_stated_multiple_of_its_size(
    tmp_path: Path, attack: Callable[[], bytes], status: int, factor: int
) -> None:
    body = attack()
    with api_stack(tmp_path) as stack, stack.client() as client:
        assert stack.api is not None
        client.get("/healthz")
        before = peak_rss(stack.api.process.pid)
        response = client.post(
            "/v1/validate", content=body, headers={"Content-Type": "application/json"}
        )
        grew = peak_rss(stack.api.process.pid) - before
    assert response.status_code == status, response.text[:500]
    assert grew < factor * len(body), (
        f"the API's peak memory grew {grew:,} bytes for a body of {len(body):,}"
    )
