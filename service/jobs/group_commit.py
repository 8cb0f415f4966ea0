"""Group commit for job submissions: the submissions that arrive while a write is in flight
share the next one — one transaction for their rows, then one broker round trip for their
messages — as PostgreSQL's own group commit shares a WAL flush.

Nothing waits to fill a batch: a lone submission is written at once, and batches grow only
under load, when each transaction and each broker hop would otherwise be paid per job. Two
batches may be in flight at once (``WRITERS``), each its own transaction. The
order of rule 1 holds per batch: rows committed, then ids sent. One submission's bad row (an
idempotency key a concurrent request took) never fails the others: such a batch is retried
one submission at a time. A store that fails fails the batch's submissions at once (503)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from service.jobs.submission_store import DuplicateKey, NewRows, SubmissionStore
from service.queue import TrainMessage

# Sends the messages of committed jobs; False for each one the broker refused (the job is
# then failed as ``broker_unavailable``).
Send = Callable[[Sequence[TrainMessage]], Awaitable[list[bool]]]

MAX_BATCH = 64
# Batches in flight at once: one commits while another is being sent, and a slow commit
# (the disk's flush) does not hold every submission behind it.
WRITERS = 2


@dataclass(frozen=True)
class Written:
    position: int  # in its queue, 1: next out
    sent: bool


@dataclass
class _Pending:
    rows: NewRows
    message: TrainMessage
    done: asyncio.Future[Written] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Written | BaseException) -> None:
        if self.done.done():  # the request went away; the job stands
            return
        if isinstance(outcome, BaseException):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)


def _consume(done: asyncio.Future[Written]) -> None:
    if not done.cancelled():
        done.exception()


class GroupCommit:
    def __init__(
        self,
        store: SubmissionStore,
        send: Send,
        max_batch: int = MAX_BATCH,
        writers: int = WRITERS,
    ) -> None:
        self._store = store
        self._send = send
        self._max_batch = max_batch
        self._max_writers = writers
        self._pending: list[_Pending] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.batches = 0  # written so far, for tests and metrics
        self.largest = 0

    async def write(self, rows: NewRows, message: TrainMessage) -> Written:
        """Commits the job's rows, then sends its message; with whatever else is waiting."""
        pending = _Pending(rows, message)
        # Its outcome is consumed even when the request went away (no "never retrieved").
        pending.done.add_done_callback(_consume)
        self._pending.append(pending)
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        # Shielded: a request that goes away does not cancel the batch its job is in.
        return await asyncio.shield(pending.done)

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._write(batch)
            except BaseException as exc:  # settle every waiter, whatever went wrong
                for pending in batch:
                    pending.settle(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            positions = await self._store.insert([p.rows for p in batch])
        except DuplicateKey as exc:
            if len(batch) == 1:
                batch[0].settle(exc)
                return
            for pending in batch:  # find the one whose key is taken; the others are written
                await self._write([pending])
            return
        except Exception as exc:  # the store itself failed (503): every one of them, at once
            for pending in batch:
                pending.settle(exc)
            return
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        sent = await self._send([p.message for p in batch])
        for pending, position, ok in zip(batch, positions, sent, strict=True):
            pending.settle(Written(position, ok))
