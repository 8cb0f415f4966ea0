"""Sending committed jobs' ids to their queues: a submission batch's send from the event
loop, and the sweeper's re-send. A send the broker refuses leaves the job queued, marked
unsent, for the next re-send; it never fails the job."""

from __future__ import annotations

from collections.abc import Sequence

from anyio import to_thread

from fitq.queues import hard_time_limit
from fitq.store import repository as repo
from fitq.store.db import transaction
from fitq.store.types import utcnow
from service.context import ServiceContext
from service.queue import BrokerUnavailable, TrainMessage


def resend_job(ctx: ServiceContext, job_id: str, queue: str, max_runtime: float | None) -> bool:
    """Send the job's id (a re-send: the sweeper's). The send is counted (``sends``,
    ``last_sent_at``, for the re-send backoff) whether or not the broker took it; a job it
    refused stays queued for the next re-send (``unsent_since``)."""
    if not _send_one(ctx, job_id, queue, max_runtime, counted=False):
        return False
    with transaction(ctx.sessions) as session:
        repo.mark_sent(session, job_id, utcnow())
    return True


async def send_new_jobs(ctx: ServiceContext, messages: Sequence[TrainMessage]) -> list[bool]:
    """Send committed jobs' ids, in one broker round trip. New jobs were counted as sent in
    the rows committed; those the broker refused stay queued and the sweeper re-sends them."""
    try:
        await ctx.queue.send_train_async(messages)
    except BrokerUnavailable as exc:
        reason = str(exc)
        await to_thread.run_sync(lambda: _keep_unsent(ctx, messages, reason, counted=True))
        return [False] * len(messages)
    return [True] * len(messages)


def _keep_unsent(
    ctx: ServiceContext, messages: Sequence[TrainMessage], reason: str, *, counted: bool
) -> None:
    now = utcnow()
    with transaction(ctx.sessions) as session:
        for message in messages:
            repo.mark_unsent(session, message.job_id, now, reason, counted=counted)


def send_committed_job(
    ctx: ServiceContext, job_id: str, queue: str, max_runtime: float | None
) -> None:
    """Send a job committed as sent (a sweep's new trial). One the broker refuses stays
    queued, marked unsent, for the sweeper's re-send."""
    _send_one(ctx, job_id, queue, max_runtime, counted=True)


def _send_one(
    ctx: ServiceContext, job_id: str, queue: str, max_runtime: float | None, *, counted: bool
) -> bool:
    """Whether the broker took the job's message; one it refused is marked unsent
    (``counted``: the send was already counted in the job's row)."""
    message = TrainMessage(job_id, queue, hard_time_limit(ctx.settings, max_runtime))
    try:
        ctx.queue.send_train_many([message])
    except BrokerUnavailable as exc:
        _keep_unsent(ctx, [message], str(exc), counted=counted)
        return False
    return True
