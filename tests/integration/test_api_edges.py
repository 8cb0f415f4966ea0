"""The API at its edges, as uvicorn runs it in a real process: a key sent in a query string
(``?api_key=``, which a client may do though the API reads keys from headers only) is never
written to the access log; a client that stops sending its body is cut off."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.factories import tiny_arrays, tiny_job
from tests.integration.conftest import api_stack
from tests.processes import peak_rss, wait_for


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


def test_a_huge_header_is_431_and_costs_the_api_no_memory(tmp_path: Path) -> None:
    """httptools reads a header of any size into memory (one of 96 MB was accepted)."""
    with api_stack(tmp_path) as stack:
        assert stack.api is not None
        before = peak_rss(stack.api.process.pid)
        address = urlsplit(stack.base_url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(64):  # 64 MB of one header's value, as fast as it goes
                client.sendall(b"a" * 2**20)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        grew = peak_rss(stack.api.process.pid) - before
        assert client.fileno() == -1
        with stack.client() as http:
            assert http.get("/healthz").status_code == 200  # everyone else is served
    text = answer.decode()
    assert text.startswith("HTTP/1.1 431"), text
    assert "FITQ_MAX_HEADER_BYTES" in text and '"type":"payload_too_large"' in text
    assert grew < 16 * 2**20, f"the API's peak memory grew {grew:,} bytes"


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(tmp_path: Path) -> None:
    with api_stack(tmp_path, FITQ_HEADER_SECONDS="1") as stack:
        address = urlsplit(stack.base_url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
    text = answer.decode()
    assert text.startswith("HTTP/1.1 408"), text
    assert "FITQ_HEADER_SECONDS" in text


def test_large_bodies_on_one_keep_alive_connection_are_not_taken_for_headers(
    tmp_path: Path,
) -> None:
    """A request read whole in one chunk (head, a body larger than the head limit, end)
    leaves the connection waiting for the next head: that chunk is not head bytes."""
    body = json.dumps(tiny_job(train=tiny_arrays(rows=2000))).encode()
    assert len(body) > 64 * 2**10
    request = (
        b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with api_stack(tmp_path) as stack:
        address = urlsplit(stack.base_url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as client:
            for _ in range(3):
                client.sendall(request)
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                    answer += client.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
