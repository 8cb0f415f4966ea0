"""A submission's one-statement read of its facts answers what the repository's ORM queries
answer, on SQLite (thread pool) and PostgreSQL (async pool): usage, datasets, live queues,
the idempotency key's earlier use and GPU runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fitq.ids import DATASET_PREFIX, JOB_PREFIX, new_id
from fitq.statuses import DatasetStatus, JobStatus
from fitq.store import repository as repo
from fitq.store.db import make_engine, transaction
from fitq.store.models import Dataset, IdempotencyKey, Job, WorkerBeat
from fitq.store.types import utcnow
from service.jobs.submission_store import Facts, FactsQuery, submission_store
from service.pg import pool_for


def _dataset(tenant: str, size: int, status: str = DatasetStatus.ready) -> Dataset:
    return Dataset(
        id=new_id(DATASET_PREFIX), tenant_id=tenant, status=status, source="inline",
        rows=4, x_shape=[4, 2], y_shape=[4, 1], stats={"y_classes": [0, 1]}, labels=["a", "b"],
        size_bytes=size,
    )  # fmt: skip


def _job(tenant: str, status: str, **fields: Any) -> Job:
    return Job(
        id=new_id(JOB_PREFIX), tenant_id=tenant, status=status, queue="cpu", spec={},
        epochs=1, history=[], attempt=0, sends=0, epoch=0, cancel_requested=False, **fields,
    )  # fmt: skip


async def _read(store_url: str, query: FactsQuery) -> Facts:
    engine = make_engine(store_url)
    pool = pool_for(engine)
    if pool is not None:
        await pool.open()
    try:
        return await submission_store(engine, pool).facts(query)
    finally:
        if pool is not None:
            await pool.close()
        engine.dispose()


def test_the_facts_are_what_the_orm_reads(sessions: sessionmaker[Session], store_url: str) -> None:
    now = utcnow()
    mine, theirs = _dataset("t1", 100), _dataset("t2", 7)
    pending = _dataset("t1", 50, status=DatasetStatus.processing)
    jobs = [
        _job("t1", JobStatus.queued),
        _job("t1", JobStatus.running, gpus=2, started_at=now - timedelta(hours=1)),
        _job(
            "t1",
            JobStatus.succeeded,
            gpus=1,
            started_at=now - timedelta(hours=30),
            finished_at=now - timedelta(hours=20),
        ),
        _job("t2", JobStatus.queued),
    ]
    with transaction(sessions) as session:
        for row in (mine, theirs, pending, *jobs):
            session.add(row)
        session.add(IdempotencyKey(tenant_id="t1", key="k", request_hash="h", job_id=jobs[0].id))
        session.add(WorkerBeat(name="w1", hostname="h", pid=1, queues="cpu,gpu1", heartbeat_at=now))
        session.add(
            WorkerBeat(
                name="w2", hostname="h", pid=2, queues="cpu", heartbeat_at=now - timedelta(hours=1)
            )
        )
    since = now - timedelta(days=1)
    query = FactsQuery(
        "t1",
        [mine.id, theirs.id, pending.id],
        idempotency_key="k",
        live_since=now - timedelta(minutes=1),
        gpu_since=since,
    )
    facts = asyncio.run(_read(store_url, query))
    with transaction(sessions) as session:
        assert facts.active_jobs == repo.active_jobs(session, "t1") == 2
        assert facts.stored_bytes == repo.dataset_bytes(session, "t1") == 150
        expected_gpu = repo.gpu_seconds_since(session, "t1", since)
    assert abs(repo.gpu_seconds(facts.gpu_use, since, utcnow()) - expected_gpu) < 5
    assert set(facts.datasets) == {mine.id, pending.id}  # another tenant's is not found
    found = facts.datasets[mine.id]
    assert (found.status, found.rows, found.x_shape, found.y_shape) == ("ready", 4, [4, 2], [4, 1])
    assert (found.stats, found.labels) == ({"y_classes": [0, 1]}, ["a", "b"])
    assert facts.live_queues == ["cpu,gpu1"]  # the silent worker is not live
    assert facts.idempotency is not None
    assert (facts.idempotency["request_hash"], facts.idempotency["job_id"]) == ("h", jobs[0].id)
    assert facts.idempotency["created_at"].tzinfo is not None

    bare = asyncio.run(_read(store_url, FactsQuery("t3")))
    assert (bare.active_jobs, bare.stored_bytes, bare.datasets) == (0, 0, {})
    assert (bare.idempotency, bare.live_queues, bare.gpu_use) == (None, [], [])
