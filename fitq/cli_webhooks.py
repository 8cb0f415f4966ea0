"""``fitq webhooks``: add, list, test and remove the endpoints your events are pushed to,
and see each delivery's attempts."""

from __future__ import annotations

from typing import Annotated

import typer

from fitq.cli_remote import AsJson, Key, Url, dump, err, out, print_table, session
from fitq.webhooks.events import EventType

webhooks_app = typer.Typer(
    help="Signed webhooks when jobs and sweeps end: add, list, test, deliveries, rm.",
    no_args_is_help=True,
)

ALL_EVENTS = [event.value for event in EventType]


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where events are POSTed (https).")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            "-e",
            help=f"An event to send (repeat it); default all: {', '.join(ALL_EVENTS)}.",
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note for you.")] = None,
    server: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Add an endpoint. Its signing secret is printed this once: keep it, and check each
    delivery with it (fitq.verify_webhook, or any Standard Webhooks library)."""
    with session(server, key) as client:
        created = client.webhooks.create(url, event or ALL_EVENTS, description)
    if as_json:
        dump(created)
        return
    out.print(f"{created.id} {created.url} {', '.join(created.events)}")
    out.print(f"secret (shown once): {created.secret}")


@webhooks_app.command("list")
def webhooks_list(url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Your endpoints, newest first (their secrets are never shown again)."""
    with session(url, key) as client:
        found = list(client.webhooks.list())
    if as_json:
        dump(found)
        return
    rows = [
        [w.id, w.url, ",".join(w.events), w.created_at.isoformat(timespec="seconds")] for w in found
    ]
    print_table(["id", "url", "events", "created"], rows)


@webhooks_app.command("test")
def webhooks_test(webhook_id: str, url: Url = None, key: Key = None) -> None:
    """Send a webhook.test event; `fitq webhooks deliveries ID` shows how it went."""
    with session(url, key) as client:
        delivery = client.webhooks.test(webhook_id)
    print(delivery.id)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: str,
    limit: Annotated[int, typer.Option(help="The newest this many.")] = 20,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """An endpoint's deliveries, newest first: each one's status, attempts and last answer."""
    with session(url, key) as client:
        found = []
        for delivery in client.webhooks.deliveries(webhook_id, page_size=min(limit, 100)):
            found.append(delivery)
            if len(found) == limit:
                break
    if as_json:
        dump(found)
        return
    rows = []
    for d in found:
        last = d.attempts[-1] if d.attempts else None
        answer = "" if last is None else last.error or str(last.status_code)
        when = d.next_attempt_at or d.finished_at
        rows.append(
            [
                d.id,
                d.event_type,
                d.subject_id or "",
                d.status,
                str(len(d.attempts)),
                answer,
                when.isoformat(timespec="seconds") if when else "",
            ]
        )
    print_table(["id", "event", "subject", "status", "attempts", "last answer", "next/done"], rows)


@webhooks_app.command("rm")
def webhooks_rm(webhook_id: str, url: Url = None, key: Key = None) -> None:
    """Remove an endpoint; nothing more is sent to it, retries included."""
    with session(url, key) as client:
        client.webhooks.delete(webhook_id)
    err.print(f"{webhook_id} deleted")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
