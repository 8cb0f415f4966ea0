"""The SDK's error and retry rules, on a scripted transport (no server logic is stood in for:
these are the client's own decisions about what it received)."""

from __future__ import annotations

import json

import httpx
import pytest

from fitq.client import Client, NotFound, QuotaExceeded, ValidationError
from fitq.spec.job import EXAMPLE_JOB

SPEC = {
    "model": EXAMPLE_JOB["model"],
    "compile": EXAMPLE_JOB["compile"],
    "seed": 7,
    "data": {"train": {"dataset_id": "ds_1", "rows": 6, "x_shape": [6, 2], "y_shape": [6]}},
}
JOB = {
    "id": "job_1", "status": "queued", "created_at": "2026-11-28T00:00:00Z",
    "started_at": None, "finished_at": None, "spec": SPEC,
    "progress": {"epoch": 0, "epochs": 1}, "history": [], "result": None, "error": None,
    "attempts": 0, "cancel_requested": False,
}  # fmt: skip


def scripted(*answers: httpx.Response) -> tuple[Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return Client(
        "http://fitq.test", "fitq_key", backoff=0.001, transport=httpx.MockTransport(handle)
    ), seen


def envelope(status: int, kind: str, message: str, **headers: str) -> httpx.Response:
    body = {
        "error": {"type": kind, "message": message, "details": [{"loc": "x", "message": message}]}
    }
    return httpx.Response(status, json=body, headers=headers)


def test_503_and_429_are_retried_honouring_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("fitq.client.time.sleep", waits.append)
    client, seen = scripted(
        envelope(503, "unavailable", "broker down"),
        envelope(429, "quota_exceeded", "too many", **{"Retry-After": "7"}),
        httpx.Response(202, json=JOB),
    )
    job = client.jobs.create({"model": {}})
    assert job.id == "job_1"
    assert len(seen) == 3 and waits == [0.001, 7.0]
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(keys) == 1  # every retry is the same submission
    assert seen[0].headers["authorization"] == "Bearer fitq_key"


def test_errors_are_typed_and_carry_the_body() -> None:
    client, _ = scripted(envelope(404, "not_found", "no job job_x"))
    with pytest.raises(NotFound) as found:
        client.jobs.get("job_x")
    assert (found.value.status_code, found.value.message) == (404, "no job job_x")
    client, _ = scripted(envelope(422, "validation_error", "fit.epochs: too many"))
    with pytest.raises(ValidationError) as invalid:
        client.jobs.create({})
    assert invalid.value.details == [{"loc": "x", "message": "fit.epochs: too many"}]


def test_retries_give_up_with_the_last_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fitq.client.time.sleep", lambda _: None)
    client, seen = scripted(*[envelope(429, "quota_exceeded", "full")] * 5)
    with pytest.raises(QuotaExceeded):
        client.jobs.create({})
    assert len(seen) == 5  # 1 + 4 retries


def test_uploads_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fitq.client.time.sleep", lambda _: None)
    client, seen = scripted(envelope(503, "unavailable", "broker down"))
    with pytest.raises(Exception, match="broker down"):
        client.datasets.upload(([[1.0]], [1.0]))
    assert len(seen) == 1
    assert b'name="file"; filename="arrays.npz"' in seen[0].content


def test_pages_are_followed() -> None:
    page = lambda ids, after: httpx.Response(  # noqa: E731
        200, json={"data": [{**JOB, "id": i} for i in ids], "has_more": after is not None,
                   "next_after": after},
    )  # fmt: skip
    client, seen = scripted(page(["job_3", "job_2"], "c1"), page(["job_1"], None))
    assert [job.id for job in client.jobs.list(page_size=2)] == ["job_3", "job_2", "job_1"]
    assert seen[1].url.params["after"] == "c1"
    assert json.loads(seen[0].url.params.get("limit", "0")) == 2
