"""Concurrent submissions share transactions and broker round trips (group commit), and
each still gets what a lone submission gets: its own job, its queue position, its message,
its idempotent replay — on SQLite and PostgreSQL, with a real Redis broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from fitq.errors import FitqError, RequestErrorType
from fitq.queues import TRAIN_QUEUE
from fitq.settings import Settings
from fitq.store.db import make_engine, make_session_factory, transaction
from fitq.store.models import IdempotencyKey, Job
from fitq.store.types import utcnow
from service.jobs.group_commit import GroupCommit, Written
from service.jobs.submission_store import DuplicateKey, NewRows
from service.main import create_app
from service.queue import TrainMessage
from tests.factories import tiny_job
from tests.services import redis_db

CONCURRENT = 40


@pytest.fixture
def broker() -> Iterator[str]:
    with redis_db() as url:
        yield url


@pytest.fixture
def app(sessions: Any, store_url: str, broker: str, tmp_path: Path) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path / "fitq",
        database_url=store_url,
        broker_url=broker,
        sweeper_enabled=False,
        auth="off",
        max_active_jobs=10_000,
    )
    return create_app(settings)


async def _submit_all(app: FastAPI, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fitq") as client:
            dataset = await _dataset(client)
            body = tiny_job(epochs=1)
            body["data"] = {"train": {"dataset_id": dataset}}

            async def submit(headers: dict[str, str]) -> httpx.Response:
                return await client.post("/v1/jobs", json=body, headers=headers)

            return await asyncio.gather(*(submit(r) for r in requests))


async def _positions(app: FastAPI, job_ids: list[str]) -> dict[str, int]:
    """What polls read now that every submission is committed."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fitq") as client:
            reads = [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in job_ids]
    return {job["id"]: job["progress"]["queue_position"] for job in reads}


async def _dataset(client: httpx.AsyncClient) -> str:
    first = await client.post("/v1/jobs", json=tiny_job(epochs=1))
    assert first.status_code == 202, first.text
    return str(first.json()["spec"]["data"]["train"]["dataset_id"])


def _stored_jobs(store_url: str) -> dict[str, Job]:
    with transaction(make_session_factory(make_engine(store_url))) as session:
        return {job.id: job for job in session.query(Job)}


def test_concurrent_submissions_are_batched_and_each_answered_as_alone(
    app: FastAPI, store_url: str, broker: str
) -> None:
    responses = asyncio.run(_submit_all(app, [{}] * CONCURRENT))
    commits = app.state.context.group_commit
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    assert commits.largest > 1  # batched: fewer transactions than jobs
    assert commits.batches < CONCURRENT + 1
    answered = {r.json()["id"]: r.json()["progress"]["queue_position"] for r in responses}
    exact = asyncio.run(_positions(app, list(answered)))
    # The first job (it stored the dataset) is ahead of all of them, in creation order.
    assert sorted(exact.values()) == list(range(2, CONCURRENT + 2))
    assert [exact[job_id] for job_id in sorted(exact)] == sorted(exact.values())
    # A position answered at commit counts the jobs committed by then: never past the truth
    # (two batches in flight may commit out of order).
    assert all(1 <= answered[job_id] <= exact[job_id] for job_id in answered)
    stored = _stored_jobs(store_url)
    assert set(answered) <= set(stored)
    assert all(job.sends == 1 and job.status == "queued" for job in stored.values())
    messages = redis.Redis.from_url(broker).llen(TRAIN_QUEUE)
    assert messages == CONCURRENT + 1  # every id sent once, after its row was committed


def test_one_idempotency_key_in_a_batch_makes_one_job_and_fails_no_other(
    app: FastAPI, store_url: str, broker: str
) -> None:
    """Ten requests with one key, ten without, all at once: the batch that holds the key
    twice is written one submission at a time; the key's requests answer one job."""
    requests = [{"Idempotency-Key": "same"}] * 10 + [{}] * 10
    responses = asyncio.run(_submit_all(app, requests))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    keyed = {r.json()["id"] for r in responses[:10]}
    assert len(keyed) == 1
    replayed = [r.headers.get("Idempotent-Replayed") == "true" for r in responses[:10]]
    assert replayed.count(False) == 1
    unkeyed = {r.json()["id"] for r in responses[10:]}
    assert len(unkeyed) == 10 and not keyed & unkeyed
    assert len(_stored_jobs(store_url)) == 1 + 1 + 10  # the dataset's first job, the keyed, ten
    assert redis.Redis.from_url(broker).llen(TRAIN_QUEUE) == 12


def test_a_key_past_its_window_is_replaced_by_the_new_job(
    app: FastAPI, store_url: str, broker: str
) -> None:
    (first,) = asyncio.run(_submit_all(app, [{"Idempotency-Key": "old"}]))
    sessions = make_session_factory(make_engine(store_url))
    with transaction(sessions) as session:
        key = session.get(IdempotencyKey, ("default", "old"))
        assert key is not None and key.job_id == first.json()["id"]
        key.created_at = utcnow() - timedelta(hours=25)
    (second,) = asyncio.run(_submit_all(app, [{"Idempotency-Key": "old"}]))
    assert second.status_code == 202 and "Idempotent-Replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    with transaction(sessions) as session:
        key = session.get(IdempotencyKey, ("default", "old"))
        assert key is not None and key.job_id == second.json()["id"]


class _StoreThatFails:
    """A store whose writes fail as told: the batching logic alone, no database."""

    def __init__(self, error: Callable[[list[str]], Exception | None]) -> None:
        self.error = error
        self.batches: list[list[str]] = []

    async def read_facts(self, query: Any) -> Any:
        raise NotImplementedError

    async def insert(self, jobs: Any) -> list[int]:
        ids = [rows.job["id"] for rows in jobs]
        self.batches.append(ids)
        failure = self.error(ids)
        if failure is not None:
            raise failure
        return list(range(1, len(ids) + 1))


def _write_all(store: _StoreThatFails, count: int) -> tuple[list[Any], list[str]]:
    sent: list[str] = []

    async def send(messages: Any) -> list[bool]:
        sent.extend(m.job_id for m in messages)
        return [True] * len(messages)

    async def run() -> list[Any]:
        commit = GroupCommit(store, send)  # type: ignore[arg-type]
        writes = [
            commit.write(NewRows(job={"id": f"job_{i}", "queue": "cpu"}, first_event={}),
                         TrainMessage(f"job_{i}", "cpu", 60.0))
            for i in range(count)
        ]  # fmt: skip
        return await asyncio.gather(*writes, return_exceptions=True)

    return asyncio.run(run()), sent


def test_a_store_that_fails_fails_each_submission_of_the_batch_once() -> None:
    """No retry one at a time when the store is down: that would wait out the pool per job."""
    store = _StoreThatFails(lambda ids: FitqError(503, RequestErrorType.unavailable, "down"))
    results, sent = _write_all(store, 8)
    assert all(isinstance(r, FitqError) and r.status_code == 503 for r in results)
    assert sum(len(batch) for batch in store.batches) == 8
    assert sent == []


def test_a_taken_key_fails_its_submission_alone() -> None:
    store = _StoreThatFails(
        lambda ids: DuplicateKey() if len(ids) > 1 or ids == ["job_3"] else None
    )
    results, sent = _write_all(store, 8)
    assert isinstance(results[3], DuplicateKey)
    assert all(isinstance(r, Written) and r.sent for i, r in enumerate(results) if i != 3)
    assert sorted(sent) == sorted(f"job_{i}" for i in range(8) if i != 3)
