"""The counts the triggers keep on PostgreSQL (``job_counts``, migration 0009) equal the rows
counted, whatever statements change the jobs: inserts of batches, multi-row updates across
tenants and queues, deletes, truncation, concurrent writers; and the migration counts the
jobs that were there before it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text

from fitq.store.migrate import alembic_config
from tests.services import postgres_database

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TENANTS = ("acme", "globex", "initech")
QUEUES = ("cpu", "gpu1")

COUNTED = """
    SELECT 'active' AS kind, tenant_id AS name, count(*) FROM jobs
    WHERE status IN ('queued', 'running') GROUP BY tenant_id
    UNION ALL
    SELECT 'queued', queue, count(*) FROM jobs WHERE status = 'queued' GROUP BY queue
"""


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_database() as url:
        command.upgrade(alembic_config(url), "0008")
        engine = create_engine(url)
        yield engine
        engine.dispose()


def _upgrade(engine: Engine) -> None:
    command.upgrade(alembic_config(engine.url.render_as_string(hide_password=False)), "head")


def _insert(engine: Engine, rng: random.Random, count: int, start: int) -> None:
    """``count`` jobs in one statement, as a batch is written (a statement per row, in one
    transaction, could deadlock with another: the migration's docstring says why)."""
    values = ", ".join(
        f"('job_{start + i:06d}', '{rng.choice(TENANTS)}', '{rng.choice(STATUSES)}',"
        f" '{rng.choice(QUEUES)}', '{{}}', now(), now(), 0, 0, 0, 0, 1, '[]', false, 0, 0)"
        for i in range(count)
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, status, queue, spec, created_at, updated_at,"
                " attempt, gpus, sends, epoch, epochs, history, cancel_requested, handbacks,"
                f" event_seq) VALUES {values}"
            )
        )


def _kept(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, name, jobs FROM job_counts")).all()
    return {(kind, name): jobs for kind, name, jobs in rows if jobs}


def _counted(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as connection:
        return {(kind, name): n for kind, name, n in connection.execute(text(COUNTED)).all()}


def test_the_migration_counts_the_jobs_already_there(engine: Engine) -> None:
    _insert(engine, random.Random(1), 60, 0)
    _upgrade(engine)
    assert _kept(engine) == _counted(engine) != {}


def test_the_counts_follow_every_kind_of_statement(engine: Engine) -> None:
    _upgrade(engine)
    rng = random.Random(7)
    inserted = 0
    for step in range(60):
        action = rng.choice(["insert", "update", "update", "move", "delete"])
        if action == "insert":
            count = rng.randint(1, 12)
            _insert(engine, rng, count, inserted)
            inserted += count
        with engine.begin() as connection:
            if action == "update":  # several rows, several tenants, one statement
                connection.execute(
                    text("UPDATE jobs SET status = :to WHERE status = :from AND random() < 0.5"),
                    {"to": rng.choice(STATUSES), "from": rng.choice(STATUSES)},
                )
            elif action == "move":
                connection.execute(
                    text("UPDATE jobs SET queue = :to WHERE random() < 0.3"),
                    {"to": rng.choice(QUEUES)},
                )
            elif action == "delete":
                connection.execute(text("DELETE FROM jobs WHERE random() < 0.1"))
        assert _kept(engine) == _counted(engine), f"after step {step} ({action})"
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET epoch = epoch + 1"))  # no count changes
    assert _kept(engine) == _counted(engine)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE jobs CASCADE"))
    assert _kept(engine) == {} == _counted(engine)


def test_concurrent_writers_leave_the_counts_exact(engine: Engine) -> None:
    """Batches across tenants and queues from several connections at once: the counter rows
    are taken in one order by every statement, so none waits on another in a cycle."""
    _upgrade(engine)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for batch in range(15):
                _insert(engine, rng, 8, seed * 1000 + batch * 8)
                with engine.begin() as connection:
                    connection.execute(
                        text("UPDATE jobs SET status = :to WHERE status = 'queued' "
                             "AND random() < 0.3"),
                        {"to": rng.choice(("running", "cancelled"))},
                    )  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _kept(engine) == _counted(engine) != {}
