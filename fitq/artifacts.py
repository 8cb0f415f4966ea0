"""The artifact store: datasets (``.npy`` per array), trained models (``.keras``) and
checkpoints, addressed by keys like ``datasets/ds_…/x.npy``. A local directory by default;
``FITQ_ARTIFACTS_URL=s3://bucket/prefix`` selects S3-compatible storage (``fitq.artifacts_s3``)
behind the same interface, for workers on other hosts."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np

if TYPE_CHECKING:
    from fitq.settings import Settings

_KEY = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*(\.[a-z0-9]+){0,2}$")  # .tar.gz


class ArtifactStore(Protocol):
    def staged(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def put_stream(self, key: str, source: BinaryIO) -> int: ...
    def put_file(self, key: str, source: Path) -> int: ...
    def put_array(self, key: str, array: np.ndarray) -> int: ...
    def open(self, key: str) -> BinaryIO: ...
    def load_array(self, key: str, *, mmap: bool = False) -> np.ndarray: ...
    def local_path(self, key: str) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def children(self, prefix: str) -> dict[str, datetime]: ...


DATASETS_PREFIX = "datasets"


def dataset_key(dataset_id: str, array: str) -> str:
    return f"{dataset_prefix(dataset_id)}/{array}.npy"


def upload_key(dataset_id: str, file_format: str) -> str:
    return f"{dataset_prefix(dataset_id)}/source.{file_format}"


def dataset_prefix(dataset_id: str) -> str:
    return f"{DATASETS_PREFIX}/{dataset_id}"


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def model_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/model.keras"


def checkpoint_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/checkpoint.keras"


def tensorboard_key(job_id: str) -> str:
    """The job's TensorBoard log directory, as a .tar.gz."""
    return f"{job_prefix(job_id)}/tensorboard.tar.gz"


def check_key(key: str) -> str:
    """Keys are built by fitq from ids, never taken from a user; this is the last guard."""
    if not _KEY.match(key) or ".." in key:
        raise ValueError(
            f"expected an artifact key like 'jobs/job_x/model.keras', received {key!r}"
        )
    return key


class LocalArtifactStore:
    """Files under one root. Writes go to a temporary file in the same directory and are
    renamed into place, so a reader never sees half a file and a crash leaves no torn one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        os.close(fd)
        return path, Path(tmp)

    @contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A temporary path to write ``key`` to; renamed into place only if the block ends
        without an error, removed otherwise."""
        path, tmp = self._atomic_target(key)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def put_stream(self, key: str, source: BinaryIO) -> int:
        with self.staged(key) as tmp, open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
        return self._path(key).stat().st_size

    def put_file(self, key: str, source: Path) -> int:
        with self.staged(key) as tmp:
            shutil.copyfile(source, tmp)
        return self._path(key).stat().st_size

    def put_array(self, key: str, array: np.ndarray) -> int:
        with self.staged(key) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        return self._path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def load_array(self, key: str, *, mmap: bool = False) -> np.ndarray:
        # Never unpickle: a stored array is numbers only.
        return np.load(self._path(key), mmap_mode="r" if mmap else None, allow_pickle=False)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no artifact {key!r} under {self.root}")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def children(self, prefix: str) -> dict[str, datetime]:
        """Each name directly under ``prefix``, with the newest change to anything in it
        (half-written temporary files included)."""
        found: dict[str, datetime] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self._path(prefix)) as entries:
            for entry in entries:
                times = (
                    os.stat(os.path.join(folder, name)).st_mtime
                    for folder, _, names in os.walk(entry)
                    for name in names
                )
                newest = max(times, default=entry.stat().st_mtime)
                found[entry.name] = datetime.fromtimestamp(newest, UTC)
        return found


def artifact_store_from_root(root: Path) -> ArtifactStore:
    return LocalArtifactStore(root)


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store the settings name: an S3 bucket for ``FITQ_ARTIFACTS_URL=s3://…``, else the
    local directory (``FITQ_ARTIFACTS_DIR``)."""
    if settings.artifacts_url:
        from fitq.artifacts_s3 import S3ArtifactStore  # boto3 only where S3 is used

        return S3ArtifactStore.from_settings(settings)
    return LocalArtifactStore(settings.resolved_artifacts_dir)
