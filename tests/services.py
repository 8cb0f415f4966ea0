"""Access to the machine's PostgreSQL and Redis for tests: a database and a Redis db index of
the test session's own. Under CI=true a missing service fails the run instead of skipping.
A test (or bench) that stops Redis runs a ``PrivateRedis`` of its own instead."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.processes import free_port, wait_for

PG_ADMIN_URL = os.environ.get(
    "FITQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("FITQ_TEST_REDIS_PORT", "6379"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: tests that need it must run)")
    pytest.skip(message)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database of this test session's own, dropped afterwards."""
    from sqlalchemy import create_engine, text

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"fitq_test_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_db() -> Iterator[str]:
    """A Redis db index of this session's own (flushed before and after); never restarts
    the shared server."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    index = 1 + (os.getpid() + secrets.randbelow(1000)) % 15
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
    client.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{index}"
    finally:
        client.flushdb()
        client.close()


class PrivateRedis:
    """A redis-server on a free port with an append-only file in ``workdir``, fsynced on
    every write: stopped and started again, it keeps its queues."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), 10, 0.05, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean shutdown; AOF is fsynced on every write anyway
            self.process.wait(timeout=30)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
