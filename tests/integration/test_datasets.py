"""Uploads over HTTP through real processes: the API stores the file, the ingest worker (its
own queue) parses it, a training worker trains a job that references it."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from tests.bad_uploads import BAD_UPLOADS
from tests.processes import Stack, finished, poll_job, wait_for

TIMEOUT = 120


def upload(client: httpx.Client, name: str, content: bytes, **form: str) -> dict[str, Any]:
    response = client.post("/v1/datasets", files={"file": (name, content)}, data=form)
    assert response.status_code == 202, response.text
    dataset_id = response.json()["id"]

    def settled() -> dict[str, Any] | None:
        dataset = client.get(f"/v1/datasets/{dataset_id}").json()
        return dataset if dataset["status"] != "processing" else None

    return wait_for(settled, TIMEOUT, 0.05, f"dataset {dataset_id}")


def test_upload_then_train_from_the_dataset(stack: Stack) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((300, 3))
    lines = ["a,b,c,label"] + [
        f"{a},{b},{c},{'big' if a + b + c > 1.5 else 'small'}" for a, b, c in x
    ]
    with stack.client() as client:
        dataset = upload(client, "points.csv", "\n".join(lines).encode(), target="label")
        assert dataset["status"] == "ready", dataset["error"]
        assert (dataset["rows"], dataset["labels"]) == (300, ["big", "small"])
        body = {
            "model": {"layers": [
                {"type": "Dense", "units": 8, "activation": "relu", "input_shape": [3]},
                {"type": "Dense", "units": 2, "activation": "softmax"},
            ]},
            "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                        "optimizer": {"type": "adam", "learning_rate": 0.05}},
            "fit": {"epochs": 10, "batch_size": 16},
            "data": {"train": {"dataset_id": dataset["id"]}, "test_split": 0.2,
                     "standardize": True},
            "seed": 2,
        }  # fmt: skip
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        job, _ = poll_job(client, job_id, finished, TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["labels"] == ["big", "small"]
    assert job["result"]["test_metrics"]["accuracy"] > 0.8


def test_a_bad_upload_fails_with_its_row_and_column(stack: Stack) -> None:
    with stack.client() as client:
        dataset = upload(client, "bad.csv", b"a,b,y\n1,2,3\n4,five,6\n", target="y")
    assert dataset["status"] == "failed"
    assert dataset["error"]["message"] == (
        "row 2 (line 3), column 'b': expected a number, received 'five'"
    )


def test_a_truncated_upload_leaves_no_dataset_and_no_file(stack: Stack) -> None:
    """The client sends half the declared body and hangs up."""
    import socket
    from urllib.parse import urlsplit

    def snapshot() -> tuple[list[str], list[str]]:
        with stack.client() as client:
            ids = [
                d["id"] for d in client.get("/v1/datasets", params={"limit": 100}).json()["data"]
            ]
        root = stack.settings.resolved_artifacts_dir / "datasets"
        files = sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        return ids, files

    before = snapshot()
    address = urlsplit(stack.base_url)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n'
        + b"a,y\n" + b"1,2\n" * 10_000
    )  # fmt: skip
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {address.hostname}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body) * 2}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(head + body)
    with stack.client() as client:
        wait_for(lambda: client.get("/healthz").status_code == 200, 10)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "content", "form", "message"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_every_bad_upload_fails_on_the_real_ingest_worker(
    stack: Stack, name: str, content: bytes, form: dict, message: str
) -> None:
    with stack.client() as client:
        dataset = upload(client, name, content, **form)
    assert dataset["status"] == "failed"
    assert message in dataset["error"]["message"]
    folder = stack.settings.resolved_artifacts_dir / "datasets" / dataset["id"]
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
