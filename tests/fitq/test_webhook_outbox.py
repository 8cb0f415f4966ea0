"""The webhook outbox on SQLite and PostgreSQL: deliveries written with the change that ends
a job, put on the queue once (again only when lost), claimed by one sender at a time, a
stale sender's record refused; and the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fitq.settings import Settings
from fitq.spec import JobSpec
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.models import Job, WebhookEndpoint
from fitq.store.types import utcnow
from fitq.webhooks.delivery import retry_at
from tests.factories import tiny_job

LEASE = timedelta(seconds=40)


def add_endpoint(sessions: sessionmaker[Session], tenant: str, events: list[str]) -> str:
    endpoint_id = f"wh_{tenant}{len(events)}"
    with transaction(sessions) as session:
        repo.add_endpoint(
            session,
            WebhookEndpoint(
                id=endpoint_id, tenant_id=tenant, url="https://hooks.example.com/",
                events=events, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", created_at=utcnow(),
            ),
        )  # fmt: skip
    return endpoint_id


def stored_spec() -> dict[str, Any]:
    """A job's spec as the store keeps it: its data stored, not inline."""
    body = tiny_job()
    train = {"dataset_id": "ds_01ARZ3NDEKTSV4RRFFQ69G5FAV", "rows": 64, "x_shape": [64, 4]}
    body["data"] = {"train": train | {"y_shape": [64]}}
    return JobSpec.model_validate(body).model_dump(mode="json")


def queued_job(sessions: sessionmaker[Session], tenant: str, job_id: str) -> None:
    row = repo.queued_job_row(
        job_id=job_id, tenant_id=tenant, queue="cpu", spec=stored_spec(), epochs=2,
        max_runtime_seconds=60.0, now=utcnow(),
    )  # fmt: skip
    with transaction(sessions) as session:
        session.add(Job(**row))


def test_a_job_that_ends_writes_one_delivery_per_subscribed_endpoint(sessions) -> None:
    queued_job(sessions, "acme", "job_1")
    with transaction(sessions) as session:  # no endpoint: nothing written
        assert repo.cancel_queued(session, "job_1")
        assert repo.job_ended(session, "job_1") == []
    cancelled = add_endpoint(sessions, "acme", ["job.cancelled", "job.failed"])
    add_endpoint(sessions, "acme", ["job.succeeded"])
    add_endpoint(sessions, "other", ["job.cancelled", "job.failed", "job.succeeded"])
    queued_job(sessions, "acme", "job_2")
    with transaction(sessions) as session:
        assert repo.cancel_queued(session, "job_2")
    with transaction(sessions) as session:
        [delivery] = repo.list_deliveries(session, cancelled, 10, None)
        assert (delivery.event_type, delivery.subject_id, delivery.status) == (
            "job.cancelled",
            "job_2",
            "pending",
        )
        event = json.loads(delivery.payload)
        assert event["type"] == "job.cancelled"
        assert event["data"]["id"] == "job_2" and event["data"]["status"] == "cancelled"
        assert event["data"]["cancel_reason"] == "requested"


def test_due_deliveries_go_on_the_queue_once_and_again_only_when_lost(sessions) -> None:
    endpoint = add_endpoint(sessions, "acme", ["job.failed"])
    now = utcnow()
    with transaction(sessions) as session:
        delivery = repo.add_delivery(session, endpoint, "acme", "job.failed", None, "{}", now)
    later = now + timedelta(seconds=1)
    with transaction(sessions) as session:
        assert repo.dispatch_due(session, later, resend_before=now) == [delivery]
    with transaction(sessions) as session:  # sent: not again
        assert repo.dispatch_due(session, later, resend_before=now) == []
    much_later = later + timedelta(seconds=120)
    with transaction(sessions) as session:  # never claimed: lost, sent again
        assert repo.dispatch_due(session, much_later, much_later - timedelta(seconds=60)) == [
            delivery
        ]


def test_one_sender_holds_a_delivery_and_a_stale_one_cannot_record(sessions) -> None:
    endpoint = add_endpoint(sessions, "acme", ["job.failed"])
    now = utcnow()
    with transaction(sessions) as session:
        delivery = repo.add_delivery(session, endpoint, "acme", "job.failed", None, "{}", now)
    with transaction(sessions) as session:
        first = repo.claim_delivery(session, delivery, now, LEASE)
    assert first is not None and first.number == 1
    assert first.url == "https://hooks.example.com/"
    with transaction(sessions) as session:  # held
        assert repo.claim_delivery(session, delivery, now + timedelta(seconds=1), LEASE) is None
    expired = now + LEASE + timedelta(seconds=1)
    with transaction(sessions) as session:  # the first sender died: another takes over
        second = repo.claim_delivery(session, delivery, expired, LEASE)
    assert second is not None and second.number == 1  # the dead attempt left no trace
    failed = repo.AttemptRecord(expired, 500, "answered 500", 3.0, False, expired + LEASE)
    with transaction(sessions) as session:
        assert not repo.record_attempt(session, first, failed)  # stale: refused
        assert repo.record_attempt(session, second, failed)
    with transaction(sessions) as session:
        row = repo.get_delivery(session, delivery)
        assert row is not None
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert [a.number for a in repo.attempts_of(session, [delivery])[delivery]] == [1]
        # not due until its next_at
        assert repo.claim_delivery(session, delivery, expired + timedelta(seconds=1), LEASE) is None
    with transaction(sessions) as session:
        third = repo.claim_delivery(session, delivery, expired + LEASE, LEASE)
    assert third is not None and third.number == 2
    ok = repo.AttemptRecord(expired + LEASE, 200, None, 2.0, True, None)
    with transaction(sessions) as session:
        assert repo.record_attempt(session, third, ok)
    with transaction(sessions) as session:
        row = repo.get_delivery(session, delivery)
        assert row is not None and (row.status, row.attempts) == ("delivered", 2)
        assert row.finished_at is not None
        assert repo.claim_delivery(session, delivery, expired + 3 * LEASE, LEASE) is None


def test_retries_double_up_to_the_cap_and_stop_at_the_window() -> None:
    settings = Settings(
        webhook_retry_seconds=5, webhook_retry_max_seconds=3600, webhook_retry_window_seconds=86400
    )
    created = datetime(2026, 12, 5, tzinfo=UTC)
    waits = []
    now, failures = created, 0
    while True:
        failures += 1
        later = retry_at(settings, created, failures, now)
        if later is None:
            break
        waits.append((later - now).total_seconds())
        now = later
    assert waits[:5] == [5, 10, 20, 40, 80]
    assert max(waits) == 3600 and waits[-1] == 3600
    assert now <= created + timedelta(days=1) < now + timedelta(seconds=3600)
    doubling = [5 * 2**k for k in range(10)]  # up to 2560 s, below the cap
    assert waits[: len(doubling)] == doubling
    assert len(waits) == len(doubling) + (86400 - sum(doubling)) // 3600  # then hourly


def test_finished_deliveries_are_deleted_once_old_and_pending_ones_never(sessions) -> None:
    endpoint = add_endpoint(sessions, "acme", ["job.failed"])
    now = utcnow()
    with transaction(sessions) as session:
        done = repo.add_delivery(session, endpoint, "acme", "job.failed", None, "{}", now)
        waiting = repo.add_delivery(session, endpoint, "acme", "job.failed", None, "{}", now)
    with transaction(sessions) as session:
        claim = repo.claim_delivery(session, done, now, LEASE)
        assert claim is not None
        ok = repo.AttemptRecord(now, 204, None, 1.0, True, None)
        assert repo.record_attempt(session, claim, ok)
    with transaction(sessions) as session:
        assert repo.delete_finished_deliveries(session, now - timedelta(days=1)) == 0
        assert repo.delete_finished_deliveries(session, now + timedelta(days=1)) == 1
    with transaction(sessions) as session:
        assert repo.get_delivery(session, done) is None
        assert repo.attempts_of(session, [done]) == {done: []}
        assert repo.get_delivery(session, waiting) is not None
