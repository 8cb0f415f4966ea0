"""A submission's one-statement read of its facts answers what the repository's ORM queries
answer, on SQLite (thread pool) and PostgreSQL (async pool): usage, datasets, live queues,
the idempotency key's earlier use and GPU runs; and what concurrent submissions read
together (one statement on PostgreSQL) is what each reads alone."""

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
from service.jobs.submission_store import SubmissionFacts, SubmissionFactsQuery, submission_store
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


async def _read(store_url: str, query: SubmissionFactsQuery) -> SubmissionFacts:
    engine = make_engine(store_url)
    pool = pool_for(engine)
    if pool is not None:
        await pool.open()
    try:
        return await submission_store(engine, pool).read_facts(query)
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
    query = SubmissionFactsQuery(
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

    bare = asyncio.run(_read(store_url, SubmissionFactsQuery("t3")))
    assert (bare.active_jobs, bare.stored_bytes, bare.datasets) == (0, 0, {})
    assert (bare.idempotency, bare.live_queues, bare.gpu_use) == (None, [], [])


async def _read_together(
    store_url: str, queries: list[SubmissionFactsQuery]
) -> tuple[list[SubmissionFacts], int]:
    """The facts of concurrent submissions, and how many statements read them (PostgreSQL)."""
    engine = make_engine(store_url)
    pool = pool_for(engine)
    if pool is not None:
        await pool.open()
    try:
        store = submission_store(engine, pool)
        found = await asyncio.gather(*(store.read_facts(query) for query in queries))
        return list(found), getattr(getattr(store, "_reads", None), "runs", len(queries))
    finally:
        if pool is not None:
            await pool.close()
        engine.dispose()


def test_facts_read_together_are_what_each_reads_alone(
    sessions: sessionmaker[Session], store_url: str
) -> None:
    now = utcnow()
    datasets = {t: _dataset(t, size) for t, size in (("t1", 100), ("t2", 7), ("t3", 1))}
    with transaction(sessions) as session:
        for row in datasets.values():
            session.add(row)
        for tenant, active in (("t1", 3), ("t2", 1)):
            for _ in range(active):
                session.add(_job(tenant, JobStatus.queued))
        session.add(IdempotencyKey(tenant_id="t2", key="k", request_hash="h", job_id="job_x"))
        session.add(WorkerBeat(name="w1", hostname="h", pid=1, queues="cpu", heartbeat_at=now))
    queries = [
        SubmissionFactsQuery(tenant, [datasets[other].id for other in others], key, live_since=live)
        for tenant, others, key, live in (
            ("t1", ["t1"], None, now - timedelta(minutes=1)),
            ("t2", ["t2", "t1"], "k", None),  # another tenant's dataset is not found
            ("t3", [], "k", now - timedelta(minutes=1)),  # t2's key is not t3's
            ("t1", ["t1", "t1"], "other", None),
            ("t4", ["t3"], None, None),
        )
    ] * 4
    together, statements = asyncio.run(_read_together(store_url, queries))
    alone = [asyncio.run(_read(store_url, query)) for query in queries]
    assert together == alone
    assert [f.active_jobs for f in together[:5]] == [3, 1, 0, 3, 0]
    assert together[1].idempotency is not None and together[2].idempotency is None
    assert set(together[1].datasets) == {datasets["t2"].id}
    if pool_for(make_engine(store_url)) is not None:
        assert statements < len(queries)  # read together
