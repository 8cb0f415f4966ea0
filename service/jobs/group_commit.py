"""Group commit for job submissions: the submissions that arrive while a write is in flight
share the next one — one transaction for their rows, then one broker round trip for their
messages — as PostgreSQL's own group commit shares a WAL flush (``service.batching``).

Nothing waits to fill a batch: a lone submission is written at once, and batches grow only
under load, when each transaction and each broker hop would otherwise be paid per job. Two
batches may be in flight at once (``WRITERS``), each its own transaction. The
order of rule 1 holds per batch: rows committed, then ids sent. One submission's bad row (an
idempotency key a concurrent request took) never fails the others: such a batch is retried
one submission at a time. A store that fails fails the batch's submissions at once (503)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from service.batching import Batcher
from service.jobs.submission_store import DuplicateKey, NewRows, SubmissionStore
from service.queue import TrainMessage

# Sends the messages of committed jobs; False for each one the broker refused (the job then
# stays queued and the sweeper re-sends it).
Send = Callable[[Sequence[TrainMessage]], Awaitable[list[bool]]]

MAX_BATCH = 64
# Batches in flight at once: one commits while another is being sent, and a slow commit
# (the disk's flush) does not hold every submission behind it.
WRITERS = 2


@dataclass(frozen=True)
class Written:
    position: int  # in its queue, 1: next out
    sent: bool


Submission = tuple[NewRows, TrainMessage]


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
        self._batcher: Batcher[Submission, Written] = Batcher(self._write, max_batch, writers)
        self.batches = 0  # written so far, for tests and metrics
        self.largest = 0

    async def write(self, rows: NewRows, message: TrainMessage) -> Written:
        """Commits the job's rows, then sends its message; with whatever else is waiting."""
        return await self._batcher.submit((rows, message))

    async def _write(self, batch: Sequence[Submission]) -> list[Written | BaseException]:
        try:
            positions = await self._store.insert([rows for rows, _ in batch])
        except DuplicateKey as exc:
            if len(batch) == 1:
                return [exc]
            outcomes: list[Written | BaseException] = []
            for one in batch:  # find the one whose key is taken; the others are written
                outcomes += await self._write([one])
            return outcomes
        except Exception as exc:  # the store itself failed (503): every one of them, at once
            return [exc] * len(batch)
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        sent = await self._send([message for _, message in batch])
        return [Written(p, ok) for p, ok in zip(positions, sent, strict=True)]
