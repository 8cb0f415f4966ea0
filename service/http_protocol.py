"""uvicorn's httptools protocol with limits on a request's head (its request line and
headers), which httptools itself does not bound: a head larger than
``FITQ_MAX_HEADER_BYTES`` is answered 431, one still incomplete ``FITQ_HEADER_SECONDS`` after
its first byte 408, and the connection is closed. Before, one 96 MB header was read whole
into memory and a client could hold a connection open by sending its head a byte at a time.

The body has its own limits, in the app (``service.request_limits``). ``fitq api`` and
``fitq serve`` run uvicorn with this protocol
(``--http service.http_protocol:LimitedHttpToolsProtocol``)."""

from __future__ import annotations

from asyncio import TimerHandle
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fitq.errors import RequestErrorType
from fitq.settings import Settings
from service.errors import envelope

LINGER_SECONDS = 2.0


@cache
def _settings() -> Settings:
    return Settings()  # the process's environment, as the app reads it


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # the next bytes belong to a request's head
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None
        self._refused = False
        self._heads_read = 0  # requests whose head was read whole, on this connection

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return  # what a refused client still sends is read and dropped
        started_in_head, heads_read = self._head_open, self._heads_read
        if started_in_head and self._head_timer is None:
            seconds = _settings().header_seconds
            self._head_timer = self.loop.call_later(seconds, self._head_too_slow)
        super().data_received(data)
        # Counted only when the whole chunk was head: one where a head ended (a keep-alive
        # request may end, body and all, and the next begin in one read) is not, and is at
        # most one read, so the bound holds within a read's size.
        whole_chunk_was_head = started_in_head and self._heads_read == heads_read
        if whole_chunk_was_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            limit = _settings().max_header_bytes
            if self._head_bytes > limit:
                self._refuse(
                    431,
                    f"expected request headers of at most {limit:,} bytes "
                    "(FITQ_MAX_HEADER_BYTES), received more",
                    RequestErrorType.payload_too_large,
                )

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        self._heads_read += 1
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # a keep-alive connection's next request

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            seconds = _settings().header_seconds
            self._refuse(
                408,
                f"expected the request's headers within {seconds:g} s (FITQ_HEADER_SECONDS), "
                "received only part of them",
                RequestErrorType.timeout,
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str, type_: RequestErrorType) -> None:
        """The API's error envelope, written before any app sees the request. The write side
        closes at once; what the client still sends is dropped for ``LINGER_SECONDS`` before
        the socket closes (closing on unread data would reset the connection, and the
        client could lose the answer)."""
        self.logger.warning("refused a request head: %s", message)
        self._refused = True
        response = envelope(status, type_, message, [])
        head = [STATUS_LINE[status]]
        for name, value in [*response.raw_headers, (b"connection", b"close")]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", response.body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
