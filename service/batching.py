"""Calls that arrive while others are in flight share the next round trip.

A ``Batcher`` hands the items waiting (up to ``max_batch``) to one call of its ``run``, which
answers an outcome per item: a result, or an exception for that item alone. Nothing waits to
fill a batch: a lone item runs at once, and batches grow only under load, when a round trip
per item would cost the most. Up to ``runners`` batches are in flight at once. The group
commit of submissions and the group read of their facts are built on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    done: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Result | BaseException) -> None:
        if self.done.done():  # the caller went away
            return
        if isinstance(outcome, BaseException):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)


def _consume(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        max_batch: int,
        runners: int,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_runners = runners
        self._pending: list[_Pending[Item, Result]] = []
        self._runners: set[asyncio.Task[None]] = set()
        self.runs = 0  # batches run so far, for tests and metrics

    async def submit(self, item: Item) -> Result:
        """The item's outcome, from whichever batch it joins."""
        pending: _Pending[Item, Result] = _Pending(item)
        # Its outcome is consumed even when the caller went away (no "never retrieved").
        pending.done.add_done_callback(_consume)
        self._pending.append(pending)
        if len(self._runners) < self._max_runners:
            runner = asyncio.create_task(self._run_all())
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        # Shielded: a caller that goes away does not cancel the batch its item is in.
        return await asyncio.shield(pending.done)

    async def _run_all(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self.runs += 1
            try:
                outcomes = await self._run([p.item for p in batch])
            except BaseException as exc:  # settle every waiter, whatever went wrong
                for pending in batch:
                    pending.settle(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.settle(outcome)
