"""Webhooks through the API in-process, delivered to a real HTTP receiver on loopback by
the delivery code the webhooks worker runs (``fitq.webhooks.delivery``), without Celery:
signatures verified with the Standard Webhooks library, the body the GET answer, retries
after 500s with one webhook-id, the retry window, redirects, refusals (SSRF) at creation
and at delivery, tenant isolation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from fitq.settings import Settings
from fitq.store.db import make_engine, make_session_factory
from fitq.store.migrate import upgrade
from fitq.webhooks.delivery import deliver, send_due
from service.main import create_app
from tests.factories import tiny_job
from tests.webhook_receiver import Receiver

PUBLIC = "93.184.216.34"  # a global address: what the fake resolver answers for names


def public_names(host: str, port: int) -> list[str]:
    if host in ("localhost", "127.0.0.1"):
        return ["127.0.0.1"]
    return [PUBLIC]


@pytest.fixture
def hooks(embedded_settings: Settings, queued: list[str]) -> Iterator[tuple[TestClient, Settings]]:
    settings = embedded_settings.model_copy(
        update={
            "webhook_allow_loopback": True,
            "webhook_retry_seconds": 0.05,
            "webhook_timeout_seconds": 5.0,
        }
    )
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        ctx = client.app.state.context  # type: ignore[attr-defined]
        ctx.resolve = public_names
        ctx.queue.send_webhook = queued.append  # the webhooks queue, read by deliver_due
        yield client, settings


@pytest.fixture
def queued() -> list[str]:
    """Delivery ids put on the webhooks queue (by the API, the worker or ``send_due``)."""
    return []


def store(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.resolved_database_url))


def deliver_due(settings: Settings, queued: list[str], rounds: int = 1, **kwargs: Any) -> list[str]:
    """The webhooks worker (each message on the queue delivered) and the sweeper (due
    deliveries put on the queue), ``rounds`` times, the retry interval waited out between."""
    sessions = store(settings)
    outcomes: list[str] = []
    for index in range(rounds):
        if index:
            time.sleep(settings.webhook_retry_seconds * 2**index)
        send_due(sessions, settings, queued.append)
        while queued:
            outcomes.append(deliver(sessions, settings, queued.pop(0), **kwargs))
    return outcomes


def add_hook(client: TestClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    created = client.post(
        "/v1/webhooks",
        json={
            "url": url,
            "events": events or ["job.succeeded", "job.failed", "job.cancelled", "sweep.completed"],
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_an_endpoint_is_created_with_a_secret_shown_once(hooks, queued) -> None:
    client, _ = hooks
    created = client.post(
        "/v1/webhooks",
        json={
            "url": "https://hooks.example.com/fitq",
            "events": ["job.succeeded"],
            "description": "ci",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/v1/webhooks/{body['id']}"
    assert body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # the library takes it
    read = client.get(f"/v1/webhooks/{body['id']}").json()
    assert "secret" not in read
    assert read == {k: v for k, v in body.items() if k != "secret"}
    listed = client.get("/v1/webhooks").json()
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://10.0.0.7/hook", "expected a public address, received 10.0.0.7: private"),
        ("https://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("https://[fe80::1]/hook", "link-local"),
        (
            "https://user:pw@hooks.example.com/",
            "without credentials, received 'https://***@hooks.example.com/'",
        ),
        ("ftp://hooks.example.com/", "expected an http or https URL"),
        ("https:///nohost", "expected a URL with a host"),
    ],
)
def test_unsafe_urls_are_refused_at_creation(hooks, url: str, words: str) -> None:
    client, _ = hooks
    refused = client.post("/v1/webhooks", json={"url": url, "events": ["job.failed"]})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert words in error["message"], error
    assert "url" in str(error)
    assert client.get("/v1/webhooks").json()["data"] == []


def test_loopback_and_http_are_refused_unless_the_setting_allows_them(api) -> None:
    client, _ = api  # FITQ_WEBHOOK_ALLOW_LOOPBACK unset
    for url, words in [
        (
            "https://localhost/hook",
            "localhost (127.0.0.1): loopback (FITQ_WEBHOOK_ALLOW_LOOPBACK=true",
        ),
        (
            "http://hooks.example.com/",
            "expected an https URL (plain http: FITQ_WEBHOOK_ALLOW_HTTP)",
        ),
    ]:
        refused = client.post("/v1/webhooks", json={"url": url, "events": ["job.failed"]})
        assert refused.status_code == 422, refused.text
        assert words in refused.json()["error"]["message"]


def test_a_misspelt_event_is_refused_in_the_users_words(hooks, queued) -> None:
    client, _ = hooks
    refused = client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/", "events": ["job.succeed"]}
    )
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    assert message == (
        "events.0: expected one of 'job.succeeded', 'job.failed', 'job.cancelled', "
        "'sweep.completed', received 'job.succeed' (did you mean 'job.succeeded'?)"
    ), message
    twice = client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/", "events": ["job.failed", "job.failed"]},
    )
    assert twice.status_code == 422
    assert (
        "expected each event once, received 'job.failed' twice" in twice.json()["error"]["message"]
    )


def test_a_succeeded_job_is_pushed_signed_with_its_get_document(hooks, runner, queued) -> None:
    client, settings = hooks
    runner.settings = settings
    with Receiver() as receiver:
        hook = add_hook(client, receiver.url, ["job.succeeded"])
        other = add_hook(client, receiver.url.replace("/hooks", "/failures"), ["job.failed"])
        job_id = client.post("/v1/jobs", json=tiny_job(epochs=2)).json()["id"]
        runner.send_webhook = queued.append  # the training worker puts it on the queue
        assert runner.run(job_id).value == "succeeded"
        sent = list(queued)
        assert len(sent) == 1
        assert deliver_due(settings, queued) == ["delivered"]
    [request] = receiver.received
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    event = Webhook(hook["secret"]).verify(request.body, request.headers)
    assert event["type"] == "job.succeeded"
    assert event["data"] == client.get(f"/v1/jobs/{job_id}").json()
    assert request.headers["webhook-id"] == sent[0]
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other["secret"]).verify(request.body, request.headers)

    [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert delivery["id"] == sent[0]
    assert delivery["status"] == "delivered"
    assert delivery["subject_id"] == job_id
    assert [(a["number"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (1, 200, None)
    ]
    assert delivery["payload"] == event
    assert client.get(f"/v1/webhooks/{other['id']}/deliveries").json()["data"] == []


def test_500s_are_retried_with_the_same_webhook_id_until_a_2xx(hooks, queued) -> None:
    client, settings = hooks
    with Receiver(answers=[500, 503, 204]) as receiver:
        hook = add_hook(client, receiver.url, ["job.cancelled"])
        job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        outcomes = deliver_due(settings, queued, rounds=6)
    assert outcomes == ["retry", "retry", "delivered"]
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    for request in receiver.received:  # each attempt signed afresh, each verifies
        Webhook(hook["secret"]).verify(request.body, request.headers)
    assert len({r.body for r in receiver.received}) == 1
    [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert delivery["status"] == "delivered"
    assert delivery["event_type"] == "job.cancelled"
    assert [(a["number"], a["status_code"]) for a in delivery["attempts"]] == [
        (1, 500),
        (2, 503),
        (3, 204),
    ]
    assert delivery["attempts"][0]["error"] == "answered 500"
    assert delivery["next_attempt_at"] is None and delivery["finished_at"] is not None


def test_a_delivery_fails_once_its_retry_window_closes(hooks, queued) -> None:
    client, settings = hooks
    settings = settings.model_copy(update={"webhook_retry_window_seconds": 0.3})
    with Receiver(answers=[500]) as receiver:
        hook = add_hook(client, receiver.url, ["job.cancelled"])
        job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
        client.post(f"/v1/jobs/{job_id}/cancel")
        outcomes = deliver_due(settings, queued, rounds=6)
    assert outcomes[-1] == "failed" and set(outcomes[:-1]) <= {"retry"}
    [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert delivery["status"] == "failed"
    assert len(delivery["attempts"]) == len(receiver.received) == len(outcomes)


def test_a_redirect_is_not_followed(hooks, queued) -> None:
    client, settings = hooks
    with Receiver(answers=[302]) as receiver:
        receiver.location = receiver.url + "/moved"
        hook = add_hook(client, receiver.url, ["job.cancelled"])
        job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
        client.post(f"/v1/jobs/{job_id}/cancel")
        assert deliver_due(settings, queued) == ["retry"]
    assert [r.path for r in receiver.received] == ["/hooks"]
    [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert delivery["attempts"][0]["error"] == "answered 302: a redirect, which is not followed"


def test_a_name_that_resolves_inward_at_delivery_is_refused_unsent(hooks, queued) -> None:
    """DNS rebinding: public when the endpoint was created, private when it is sent."""
    client, settings = hooks
    hook = add_hook(client, "https://hooks.example.com/fitq", ["job.cancelled"])
    job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    for inward in (["10.0.0.7"], ["169.254.169.254"], [PUBLIC, "127.0.0.1"]):
        settings = settings.model_copy(update={"webhook_allow_loopback": False})
        assert deliver_due(settings, queued, resolve=lambda host, port, a=inward: a) == ["retry"]
        time.sleep(settings.webhook_retry_seconds * 4)
    attempts = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"][0]["attempts"]
    errors = [a["error"] for a in attempts]
    assert len(errors) == 3, errors
    assert (
        "refused: expected a public address, received hooks.example.com (10.0.0.7): private"
        in errors[0]
    )
    assert "a cloud metadata address" in errors[1]
    assert "(127.0.0.1): loopback" in errors[2]
    assert all(a["status_code"] is None for a in attempts)


def test_the_test_event_and_delete(hooks, queued) -> None:
    client, settings = hooks
    with Receiver() as receiver:
        hook = add_hook(client, receiver.url, ["sweep.completed"])
        tested = client.post(f"/v1/webhooks/{hook['id']}/test")
        assert tested.status_code == 202, tested.text
        assert tested.json()["event_type"] == "webhook.test"
        assert queued == [tested.json()["id"]]  # on the queue already
        assert deliver_due(settings, queued) == ["delivered"]
    event = Webhook(hook["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)
    assert event["type"] == "webhook.test" and event["data"]["webhook_id"] == hook["id"]
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_a_cancelled_sweep_tells_of_each_trial_and_of_its_end(hooks, queued) -> None:
    from tests.service.test_sweeps import sweep_body

    client, settings = hooks
    with Receiver() as receiver:
        hook = add_hook(client, receiver.url)
        sweep = client.post("/v1/sweeps", json=sweep_body()).json()
        cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        assert deliver_due(settings, queued) == ["delivered"] * 3
    events = [Webhook(hook["secret"]).verify(r.body, r.headers) for r in receiver.received]
    assert sorted(e["type"] for e in events) == [
        "job.cancelled",
        "job.cancelled",
        "sweep.completed",
    ]
    [ended] = [e for e in events if e["type"] == "sweep.completed"]
    assert ended["data"] == client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert ended["data"]["status"] == "cancelled"


def test_a_tenant_sees_and_hears_only_its_own(embedded_settings: Settings, queued) -> None:
    from tests.service.test_auth import bearer, make_key

    settings = embedded_settings.model_copy(update={"auth": "on", "webhook_allow_loopback": True})
    upgrade(settings.resolved_database_url)
    a, b = bearer(make_key(settings, "tenant-a")), bearer(make_key(settings, "tenant-b"))
    with TestClient(create_app(settings)) as client, Receiver() as receiver:
        client.app.state.context.queue.send_webhook = queued.append  # type: ignore[attr-defined]
        created = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["job.cancelled"]}, headers=a
        )
        hook_id = created.json()["id"]
        for method, path in [
            ("GET", f"/v1/webhooks/{hook_id}"),
            ("GET", f"/v1/webhooks/{hook_id}/deliveries"),
            ("POST", f"/v1/webhooks/{hook_id}/test"),
            ("DELETE", f"/v1/webhooks/{hook_id}"),
        ]:
            theirs = client.request(method, path, headers=b)
            assert theirs.status_code == 404, (method, path, theirs.text)
            assert theirs.json()["error"]["message"] == f"webhook {hook_id!r} not found"
        assert client.get("/v1/webhooks", headers=b).json()["data"] == []
        # b's job ending is told to b's endpoints only: a hears nothing of it.
        job_id = client.post("/v1/jobs", json=tiny_job(), headers=b).json()["id"]
        client.post(f"/v1/jobs/{job_id}/cancel", headers=b)
        assert deliver_due(settings, queued) == []
        assert receiver.received == []
        assert client.get(f"/v1/webhooks/{hook_id}", headers=a).status_code == 200


def test_a_job_the_sweeper_fails_is_told_by_its_next_pass(hooks, queued) -> None:
    """worker_lost: the sweeper fails the job and, in the same pass, queues its delivery."""
    from datetime import timedelta

    from fitq.store import repository as repo
    from fitq.store.db import transaction
    from service.sweeper import sweep_once

    client, settings = hooks
    ctx = client.app.state.context
    with Receiver() as receiver:
        hook = add_hook(client, receiver.url, ["job.failed"])
        job_id = client.post("/v1/jobs", json=tiny_job()).json()["id"]
        with transaction(ctx.sessions) as session:
            repo.get_job_by_id(session, job_id).attempt = settings.max_attempts - 1
        with transaction(ctx.sessions) as session:
            repo.claim_job(session, job_id, "dead-worker", timedelta(seconds=-1))
        assert sweep_once(ctx).lost == [job_id]
        assert len(queued) == 1
        assert deliver_due(settings, queued) == ["delivered"]
    event = Webhook(hook["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)
    assert event["type"] == "job.failed"
    assert event["data"]["error"]["type"] == "worker_lost"
    assert event["data"] == client.get(f"/v1/jobs/{job_id}").json()
