"""Artifacts in an S3-compatible bucket (AWS, MinIO, a test server), for API and workers on
different hosts: ``FITQ_ARTIFACTS_URL=s3://bucket/prefix`` and, for anything but AWS,
``FITQ_S3_ENDPOINT_URL``; credentials come from the usual ``AWS_*`` variables.

- Writes go to a local temporary file and are uploaded when complete (multipart for large
  files), so an object appears whole or not at all; uploads stream from their source.
- Reads that need a file (memory-mapped datasets, a model to load) download once into the
  host's cache (``FITQ_DATA_DIR/cache``), keyed by the object's ETag: a rewritten object (a
  newer checkpoint) is fetched again, an unchanged one never is."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import ClientError

from fitq.artifacts import check_key

if TYPE_CHECKING:
    from fitq.settings import Settings

_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


class S3ArtifactStore:
    def __init__(self, client: Any, bucket: str, prefix: str, cache: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache

    @classmethod
    def from_settings(cls, settings: Settings) -> S3ArtifactStore:
        assert settings.artifacts_url is not None
        url = urlsplit(settings.artifacts_url)
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        return cls(client, url.netloc, url.path, settings.cache_dir)

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _cached(self, key: str) -> Path:
        return self.cache / check_key(key)

    @contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A temporary local path to write ``key`` to; uploaded only if the block ends
        without an error, and kept as the cached copy."""
        cached = self._cached(key)
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-", suffix=cached.suffix)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            self.client.upload_file(str(tmp), self.bucket, self._object(key))
            self._keep(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def _keep(self, key: str, written: Path) -> None:
        """Make a just-uploaded file the cached copy of ``key`` (no download on next read)."""
        etag = self._etag(key)
        if etag is None:
            return
        cached = self._cached(key)
        os.replace(written, cached)
        _etag_file(cached).write_text(etag)

    def put_stream(self, key: str, source: BinaryIO) -> int:
        self.client.upload_fileobj(source, self.bucket, self._object(key))
        return self.size(key)

    def put_file(self, key: str, source: Path) -> int:
        self.client.upload_file(str(source), self.bucket, self._object(key))
        return self.size(key)

    def put_array(self, key: str, array: np.ndarray) -> int:
        with self.staged(key) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        return self.size(key)

    def open(self, key: str) -> BinaryIO:
        body: BinaryIO = self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"]
        return body

    def load_array(self, key: str, *, mmap: bool = False) -> np.ndarray:
        return np.load(self.local_path(key), mmap_mode="r" if mmap else None, allow_pickle=False)

    def local_path(self, key: str) -> Path:
        """The cached copy of ``key``, downloaded first if missing or stale."""
        etag = self._etag(key)
        cached = self._cached(key)
        if etag is None:
            raise FileNotFoundError(f"no artifact {key!r} in s3://{self.bucket}/{self.prefix}")
        marker = _etag_file(cached)
        if cached.is_file() and marker.is_file() and marker.read_text() == etag:
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-", suffix=cached.suffix)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._object(key), name)
            os.replace(name, cached)
        finally:
            Path(name).unlink(missing_ok=True)
        marker.write_text(etag)
        return cached

    def size(self, key: str) -> int:
        head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self._etag(key) is not None

    def _etag(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(head["ETag"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        self._forget(self._cached(key))

    def delete_prefix(self, prefix: str) -> None:
        listing = self.client.get_paginator("list_objects_v2")
        base = self._object(prefix).rstrip("/") + "/"
        keys = [
            {"Key": item["Key"]}
            for page in listing.paginate(Bucket=self.bucket, Prefix=base)
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        shutil.rmtree(self._cached(prefix), ignore_errors=True)

    def children(self, prefix: str) -> dict[str, datetime]:
        """Each name directly under ``prefix``, with its newest object's time."""
        listing = self.client.get_paginator("list_objects_v2")
        base = self._object(prefix).rstrip("/") + "/"
        found: dict[str, datetime] = {}
        for page in listing.paginate(Bucket=self.bucket, Prefix=base):
            for item in page.get("Contents", []):
                name = item["Key"][len(base) :].split("/", 1)[0]
                found[name] = max(found.get(name, item["LastModified"]), item["LastModified"])
        return found

    @staticmethod
    def _forget(path: Path) -> None:
        path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            _etag_file(path).unlink()


def _etag_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.etag")
