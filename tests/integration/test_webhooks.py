"""Webhooks on real processes (the API, a training worker and a webhooks worker on Redis +
PostgreSQL) to a real receiver on loopback: a job's end arrives signed (checked with
``fitq.verify_webhook``), a 500 is retried under the same webhook-id, and no delivery is
lost when the webhooks worker is killed mid-attempt and while it is down."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from fitq import Client, verify_webhook
from fitq.queues import WEBHOOKS_QUEUE
from tests.factories import tiny_job
from tests.integration.conftest import started_stack
from tests.processes import REPO_ROOT, Stack, child_env, wait_for
from tests.webhook_receiver import Receiver

HOOKS = {
    "FITQ_WEBHOOK_ALLOW_LOOPBACK": "true",
    "FITQ_WEBHOOK_RETRY_SECONDS": "0.5",
    "FITQ_WEBHOOK_TIMEOUT_SECONDS": "1",  # a claim then lasts 8 s (fitq.webhooks.delivery)
    "FITQ_RESEND_AFTER_SECONDS": "1",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("webhooks")
    with ExitStack() as cleanup:
        running = started_stack(cleanup, workdir, redis_postgres=True, **HOOKS)
        running.start_worker()
        running.start_worker("hooks", WEBHOOKS_QUEUE)
        yield running


def test_a_job_end_arrives_signed_and_a_500_is_retried(stack: Stack) -> None:
    with Receiver(answers=[500, 200]) as receiver, Client(stack.base_url) as client:
        hook = client.webhooks.create(receiver.url, ["job.succeeded", "job.failed"])
        job = client.jobs.create(tiny_job(epochs=2))
        done = client.jobs.wait(job.id, timeout=120, poll=0.1)
        assert done.status == "succeeded"
        wait_for(lambda: len(receiver.received) == 2 or None, 30, 0.1, "the retry")
        [delivery] = client.webhooks.deliveries(hook.id)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.id
    event = verify_webhook(second.body, second.headers, hook.secret)
    assert event["type"] == "job.succeeded"
    assert (
        event["data"]["id"] == job.id
        and event["data"]["result"] == done.model_dump(mode="json")["result"]
    )
    assert [(a.number, a.status_code) for a in delivery.attempts] == [(1, 500), (2, 200)]
    assert delivery.status == "delivered"


def test_no_delivery_is_lost_when_the_webhooks_worker_dies(stack: Stack) -> None:
    with Receiver(hang={0}) as receiver, Client(stack.base_url) as client:
        hook = client.webhooks.create(receiver.url, ["job.succeeded"])
        tested = client.webhooks.test(hook.id)
        wait_for(lambda: receiver.received or None, 30, 0.05, "the first attempt")
        hooks_worker = next(w for w in stack.workers if "worker-hooks" in str(w.log_path))
        hooks_worker.kill()  # mid-attempt: the receiver has the request, no answer was recorded
        stack.workers.remove(hooks_worker)
        # While no webhooks worker runs, a job ends: its delivery waits in the outbox.
        job = client.jobs.create(tiny_job(epochs=1))
        assert client.jobs.wait(job.id, timeout=120, poll=0.1).status == "succeeded"
        [pending] = [d for d in client.webhooks.deliveries(hook.id) if d.subject_id == job.id]
        assert pending.status == "pending" and pending.attempts == []
        stack.start_worker("hooks", WEBHOOKS_QUEUE)

        def all_delivered() -> bool | None:
            found = list(client.webhooks.deliveries(hook.id))
            return all(d.status == "delivered" for d in found) or None

        wait_for(all_delivered, 60, 0.2, "both deliveries")
        found = {d.id: d for d in client.webhooks.deliveries(hook.id)}
    # The test event: its killed attempt left no record; the next one, after the claim ran
    # out, went through under the same webhook-id.
    assert [a.status_code for a in found[tested.id].attempts] == [200]
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids.count(tested.id) == 2 and ids.count(pending.id) == 1
    events = [verify_webhook(r.body, r.headers, hook.secret) for r in receiver.received[1:]]
    assert sorted(e["type"] for e in events) == ["job.succeeded", "webhook.test"]


def fitq_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fitq", *args, "--url", stack.base_url],
        env=child_env(stack.env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_adds_tests_lists_and_removes_an_endpoint(stack: Stack) -> None:
    with Receiver() as receiver:
        added = fitq_cli(stack, "webhooks", "add", receiver.url, "-e", "job.failed")
        assert added.returncode == 0, added.stderr
        first, second = added.stdout.splitlines()
        hook_id, url, events = first.split(" ", 2)
        assert (url, events) == (receiver.url, "job.failed")
        secret = second.removeprefix("secret (shown once): ")
        listed = fitq_cli(stack, "webhooks", "list")
        assert f"{hook_id}\t{receiver.url}\tjob.failed\t" in listed.stdout
        assert secret not in listed.stdout
        tested = fitq_cli(stack, "webhooks", "test", hook_id)
        assert tested.returncode == 0, tested.stderr
        delivery_id = tested.stdout.strip()
        wait_for(lambda: receiver.received or None, 30, 0.05, "the test event")
        assert (
            verify_webhook(receiver.received[0].body, receiver.received[0].headers, secret)["type"]
            == "webhook.test"
        )

        def delivered() -> str | None:
            shown = fitq_cli(stack, "webhooks", "deliveries", hook_id).stdout
            return shown if "\tdelivered\t1\t200\t" in shown else None

        shown = wait_for(delivered, 30, 0.2, "the delivery's row")
        assert shown.splitlines()[1].startswith(f"{delivery_id}\twebhook.test\t\tdelivered")
    refused = fitq_cli(stack, "webhooks", "add", "http://10.0.0.7/hook")
    assert refused.returncode == 1
    assert "private" in refused.stderr
    removed = fitq_cli(stack, "webhooks", "rm", hook_id)
    assert removed.returncode == 0 and f"{hook_id} deleted" in removed.stderr
    assert fitq_cli(stack, "webhooks", "deliveries", hook_id).returncode == 1
