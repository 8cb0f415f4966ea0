"""The API at its edges, as uvicorn runs it in a real process: a key sent in a query string
(``?api_key=``, which a client may do though the API reads keys from headers only) is never
written to the access log; a client that stops sending its body is cut off."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.conftest import api_stack
from tests.processes import wait_for


def test_the_access_log_never_holds_a_key_sent_in_the_query_string(tmp_path: Path) -> None:
    with api_stack(tmp_path) as stack, stack.client() as client:
        client.get("/v1/jobs", params={"limit": 5, "api_key": "fitq_topsecret123"})
        client.get("/healthz?token=abc&x=1")
        assert stack.api is not None
        wait_for(lambda: "token=REDACTED&x=1" in stack.api.log(), 10, 0.1, "the access line")
    log = stack.api.log()
    assert "topsecret" not in log and "token=abc" not in log
    assert "api_key=REDACTED" in log and "limit=5" in log


def test_a_body_that_stops_arriving_is_cut_off_with_408(tmp_path: Path) -> None:
    """A Content-Length larger than what the client sends held the connection forever."""
    with api_stack(tmp_path, FITQ_BODY_IDLE_SECONDS="1") as stack:
        address = urlsplit(stack.base_url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as client:
            client.sendall(
                b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"model": '
            )
            started = time.monotonic()
            answer = client.recv(65536).decode()
            waited = time.monotonic() - started
            while chunk := client.recv(65536):  # the rest, until the server closes
                answer += chunk.decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "FITQ_BODY_IDLE_SECONDS" in answer and waited < 10
