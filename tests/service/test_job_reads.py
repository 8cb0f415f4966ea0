"""The hot read of a job (one statement, no ORM, orjson) answers exactly what the typed
pydantic JobRead of the same row answers, on SQLite and on PostgreSQL, in every state."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fitq import keys
from fitq.documents import job_document
from fitq.errors import JobErrorType
from fitq.ids import JOB_PREFIX, new_id
from fitq.schemas import JobError, JobList, JobRead, JobResult, Progress
from fitq.settings import Settings
from fitq.spec import JobSpec
from fitq.statuses import JobStatus
from fitq.store import repository as repo
from fitq.store.db import make_engine, transaction
from fitq.store.models import ApiKey, Job
from fitq.store.types import utcnow
from service.jobs.presenter import render_json
from service.pg import pool_for
from service.reads import StoreReads, store_reads
from tests.factories import tiny_job
from worker.runner import JobRunner


def typed_read(job: Job, queue_position: int | None) -> dict[str, Any]:
    """The oracle: JobRead built field by field by pydantic, serialised as FastAPI would."""
    result = None
    if job.result is not None:
        url = f"/v1/jobs/{job.id}/model" if job.model_key else None
        result = JobResult.model_validate({**job.result, "model_url": url})
    error = None
    if job.error_type is not None:
        error = JobError(type=JobErrorType(job.error_type), message=job.error_message or "")
    read = JobRead(
        id=job.id,
        status=JobStatus(job.status),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        spec=JobSpec.model_validate(job.spec),
        progress=Progress(
            epoch=job.epoch,
            epochs=job.epochs,
            eta_seconds=job.eta_seconds,
            queue_position=queue_position,
        ),
        history=job.history,
        result=result,
        error=error,
        attempts=job.attempt - job.handbacks,
        cancel_requested=job.cancel_requested,
    )
    return read.model_dump(mode="json", by_alias=True)


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real job's stored spec and result: submitted and trained on an embedded store."""
    from fitq.artifacts import artifact_store_from_root
    from fitq.store.db import make_session_factory
    from fitq.store.migrate import upgrade
    from service.main import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("fitq"), sweeper_enabled=False, auth="off")
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/v1/jobs", json=tiny_job(epochs=2)).json()["id"]
        runner = JobRunner(
            sessions=make_session_factory(make_engine(settings.resolved_database_url)),
            artifacts=artifact_store_from_root(settings.resolved_artifacts_dir),
            settings=settings,
            worker_name="test",
        )
        runner.run(job_id)
        with transaction(runner.sessions) as session:
            job = repo.get_job_by_id(session, job_id)
            assert job is not None and job.status == JobStatus.succeeded
            return {"spec": job.spec, "result": job.result, "history": job.history}


def add(sessions: sessionmaker[Session], spec: dict[str, Any], **fields: Any) -> str:
    job = Job(
        id=new_id(JOB_PREFIX),
        tenant_id=fields.pop("tenant_id", "t1"),
        status=fields.pop("status", JobStatus.queued),
        queue=fields.pop("queue", "cpu"),
        spec=spec,
        epochs=2,
        history=fields.pop("history", []),
        attempt=fields.pop("attempt", 0),
        sends=0,
        epoch=fields.pop("epoch", 0),
        cancel_requested=fields.pop("cancel_requested", False),
        **fields,
    )
    with transaction(sessions) as session:
        repo.add_job(session, job)
    return job.id


@asynccontextmanager
async def opened_reads(store_url: str) -> AsyncIterator[StoreReads]:
    """The reads the API would use on this store, their pool opened (PostgreSQL)."""
    engine = make_engine(store_url)
    pool = pool_for(engine)
    if pool is not None:
        await pool.open()
    try:
        yield store_reads(engine, pool)
    finally:
        if pool is not None:
            await pool.close()
        engine.dispose()


def test_every_state_reads_as_the_typed_job(
    sessions: sessionmaker[Session], store_url: str, finished_job: dict[str, Any]
) -> None:
    spec, result, history = finished_job["spec"], finished_job["result"], finished_job["history"]
    older_spec = copy.deepcopy(spec)  # as stored before fields with defaults were added
    older_spec.pop("resources", None)
    older_spec["fit"].pop("mixed_precision", None)
    now = utcnow()
    queued = [add(sessions, spec) for _ in range(3)]
    other_queue = add(sessions, spec, queue="gpu1")
    ids = {
        "queued": queued,
        "other_queue": [other_queue],
        "running": [
            add(
                sessions,
                older_spec,
                status=JobStatus.running,
                attempt=2,
                handbacks=1,
                started_at=now,
                epoch=1,
                history=history[:1],
                eta_seconds=0.5,
                cancel_requested=True,
            )
        ],
        "succeeded": [
            add(
                sessions,
                spec,
                status=JobStatus.succeeded,
                attempt=1,
                started_at=now,
                finished_at=now + timedelta(seconds=1.25),
                epoch=2,
                history=history,
                result=result,
                model_key="jobs/x/model.keras",
            )
        ],
        "failed": [
            add(
                sessions,
                spec,
                status=JobStatus.failed,
                attempt=3,
                started_at=now,
                finished_at=now,
                error_type=JobErrorType.non_finite_loss.value,
                error_message="loss became NaN at epoch 1",
            )
        ],
    }

    async def read_all() -> dict[str, dict[str, Any] | None]:
        async with opened_reads(store_url) as reads:
            every = [job_id for group in ids.values() for job_id in group]
            found = {job_id: await reads.job("t1", job_id) for job_id in every}
            found["other tenant"] = await reads.job("t2", queued[0])
            found["unknown"] = await reads.job("t1", unknown)
            return found

    async def read_together() -> tuple[dict[str, dict[str, Any] | None], int]:
        """The same reads at once, as concurrent polls: one statement on PostgreSQL."""
        async with opened_reads(store_url) as reads:
            every = [job_id for group in ids.values() for job_id in group]
            asked = [("t1", job_id) for job_id in every]
            asked += [("t2", queued[0]), ("t1", unknown)]
            found = await asyncio.gather(*(reads.job(*query) for query in asked))
            polls = getattr(reads, "_polls", None)
            statements = polls.runs if polls is not None else len(asked)
            names = [*every, "other tenant", "unknown"]
            return dict(zip(names, found, strict=True)), statements

    unknown = new_id(JOB_PREFIX)
    rows = asyncio.run(read_all())
    together, statements = asyncio.run(read_together())
    assert together == rows
    if pool_for(make_engine(store_url)) is not None:
        assert statements < len(rows)
    assert rows.pop("other tenant") is None
    assert rows.pop("unknown") is None
    positions = {job_id: row["queue_position"] for job_id, row in rows.items() if row}
    assert [positions[job_id] for job_id in queued] == [1, 2, 3]
    assert positions[other_queue] == 1
    for job_id in ids["running"] + ids["succeeded"] + ids["failed"]:
        assert positions[job_id] is None
    with transaction(sessions) as session:
        for job_id, row in rows.items():
            assert row is not None
            job = repo.get_job_by_id(session, job_id)
            assert job is not None
            served = orjson.loads(render_json(job_document(row, row["queue_position"])))
            assert served == typed_read(job, positions[job_id]), job.status
            # Twice: the second comes from the rendered-spec cache.
            again = orjson.loads(render_json(job_document(row, row["queue_position"])))
            assert again == served
    assert list(served) == list(JobRead.model_fields)


def test_an_api_key_is_read_by_prefix(sessions: sessionmaker[Session], store_url: str) -> None:
    issued = keys.generate()
    with transaction(sessions) as session:
        repo.add_api_key(
            session,
            ApiKey(
                prefix=issued.prefix,
                secret_sha256=issued.secret_sha256,
                tenant_id="t9",
                role=keys.Role.user.value,
            ),
        )
    prefix = keys.parse(issued.key)
    assert prefix is not None

    async def read() -> tuple[Any, Any]:
        async with opened_reads(store_url) as reads:
            return await reads.api_key(prefix[0]), await reads.api_key("fitq_nope")

    row, missing = asyncio.run(read())
    assert missing is None
    assert row["tenant_id"] == "t9"
    assert row["role"] == "user"
    assert row["revoked_at"] is None
    assert keys.matches(prefix[1], row["secret_sha256"])


def test_the_created_job_is_answered_as_it_is_then_read(api: tuple[TestClient, Settings]) -> None:
    """POST answers from the row it wrote (no second read): the same document a GET gives."""
    client, _ = api
    first = client.post("/v1/jobs", json=tiny_job(epochs=1))
    second = client.post("/v1/jobs", json=tiny_job(epochs=1), headers={"Idempotency-Key": "k1"})
    replay = client.post("/v1/jobs", json=tiny_job(epochs=1), headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    for created, position in ((first, 1), (second, 2)):
        body = created.json()
        assert created.headers["Location"] == f"/v1/jobs/{body['id']}"
        assert body["progress"]["queue_position"] == position
        assert body == client.get(created.headers["Location"]).json()
    assert replay.json() == second.json()
    events = client.get(f"/v1/jobs/{first.json()['id']}/events").json()["data"]
    assert [(e["seq"], e["type"], e["data"]) for e in events] == [
        (1, "status", {"status": "queued"})
    ]


def test_a_listed_job_is_the_job_as_read(api: tuple[TestClient, Settings]) -> None:
    """A page is a valid JobList whose jobs read as GET reads them (no queue position)."""
    client, _ = api
    created = [client.post("/v1/jobs", json=tiny_job(epochs=1)).json()["id"] for _ in range(3)]
    first = client.get("/v1/jobs", params={"limit": 2})
    page = JobList.model_validate_json(first.content)
    assert [job.id for job in page.data] == created[::-1][:2]
    assert page.has_more and page.next_after is not None
    for listed in first.json()["data"]:
        read = client.get(f"/v1/jobs/{listed['id']}").json()
        assert read["progress"].pop("queue_position") >= 1
        assert listed["progress"].pop("queue_position") is None
        assert listed == read
    rest = client.get("/v1/jobs", params={"limit": 2, "after": page.next_after}).json()
    assert [job["id"] for job in rest["data"]] == created[:1]
    assert rest["has_more"] is False and rest["next_after"] is None
