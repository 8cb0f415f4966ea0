"""An S3-protocol server of the tests' own: moto's server as a real process on a free port,
so the S3 artifact store is exercised over HTTP exactly as against MinIO or AWS."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx

from tests.processes import free_port, spawn, wait_for

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "fitq-test",
    "AWS_SECRET_ACCESS_KEY": "fitq-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(workdir: Path) -> Iterator[str]:
    """The endpoint URL of a running moto server (stopped afterwards)."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("moto_server")),
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    server = spawn(command, {**os.environ, **CREDENTIALS}, workdir / "moto.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.process.poll() is None, server.log()
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 60, 0.1, "the S3 server")
        yield url
    finally:
        server.stop()


def make_bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, **_client_credentials()).create_bucket(Bucket=name)


def _client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }
