"""A real HTTP receiver on loopback for webhook tests: it records each request (headers and
body as received) and answers with the status codes it is given, in turn."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when its body had been read


@dataclass
class Receiver:
    """``answers``: the status code of each request in turn; the last one repeats.
    ``hang``: the requests (by index) that get no answer until the receiver closes."""

    answers: list[int] = field(default_factory=lambda: [200])
    hang: set[int] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    location: str = "/elsewhere"  # where a 3xx answer points

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    index = len(receiver.received)
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                        )
                    )
                if index in receiver.hang:
                    receiver._closing.wait()
                    return
                code = receiver.answers[min(index, len(receiver.answers) - 1)]
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("location", receiver.location)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
