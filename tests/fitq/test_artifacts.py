"""One contract for both artifact stores, the local directory and S3 (over HTTP to a real
S3-protocol server process): atomic writes, reads, the local cache, deletes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from fitq.artifacts import ArtifactStore, LocalArtifactStore, artifact_store
from fitq.settings import Settings
from tests.s3 import CREDENTIALS, make_bucket, s3_server


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("s3")) as url:
        make_bucket(url, "fitq-artifacts")
        yield url


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        data_dir=tmp_path / "host",
        artifacts_url=f"s3://fitq-artifacts/{tmp_path.name}",
        s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
    )
    return artifact_store(settings)


def test_arrays_round_trip_and_memory_map(store: ArtifactStore) -> None:
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    size = store.put_array("datasets/ds_a/x.npy", array)
    assert size > array.nbytes  # the .npy header too
    assert store.exists("datasets/ds_a/x.npy")
    mapped = store.load_array("datasets/ds_a/x.npy", mmap=True)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, array)


def test_a_failed_write_leaves_nothing(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError), store.staged("jobs/job_a/model.keras") as path:
        path.write_bytes(b"half a model")
        raise RuntimeError("disk full")
    assert not store.exists("jobs/job_a/model.keras")


def test_streams_and_files_are_stored_as_sent(store: ArtifactStore, tmp_path: Path) -> None:
    payload = b"a,y\n" + b"1.5,2.5\n" * 10_000
    assert store.put_stream("datasets/ds_b/upload.csv", io.BytesIO(payload)) == len(payload)
    assert store.local_path("datasets/ds_b/upload.csv").read_bytes() == payload
    with store.open("datasets/ds_b/upload.csv") as stream:
        assert stream.read() == payload
    source = tmp_path / "model.keras"
    source.write_bytes(b"model bytes")
    assert store.put_file("jobs/job_b/model.keras", source) == len(b"model bytes")


def test_a_rewritten_object_is_read_fresh(store: ArtifactStore) -> None:
    for epoch in (1, 2):
        with store.staged("jobs/job_c/checkpoint.keras") as path:
            path.write_bytes(f"epoch {epoch}".encode())
        assert (
            store.local_path("jobs/job_c/checkpoint.keras").read_bytes()
            == f"epoch {epoch}".encode()
        )


def test_deletes(store: ArtifactStore) -> None:
    for name in ("x", "y"):
        store.put_array(f"datasets/ds_d/{name}.npy", np.zeros(3, dtype=np.float32))
    store.put_array("datasets/ds_e/x.npy", np.zeros(3, dtype=np.float32))
    store.delete("datasets/ds_d/y.npy")
    assert not store.exists("datasets/ds_d/y.npy") and store.exists("datasets/ds_d/x.npy")
    store.delete_prefix("datasets/ds_d")
    assert not store.exists("datasets/ds_d/x.npy")
    assert store.exists("datasets/ds_e/x.npy")


def test_a_missing_artifact_is_file_not_found_on_every_store(store: ArtifactStore) -> None:
    """What callers catch to say what is lost (GET /model of a lost volume was a 500)."""
    with pytest.raises(FileNotFoundError, match=re.escape("models/job_gone/model.keras")):
        store.local_path("models/job_gone/model.keras")


def test_keys_are_checked(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="expected an artifact key"):
        store.exists("../etc/passwd")


def test_a_second_host_reads_what_the_first_wrote(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts share no disk: each downloads into its own cache."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    url = f"s3://fitq-artifacts/{tmp_path.name}"
    hosts = [
        artifact_store(
            Settings(data_dir=tmp_path / name, artifacts_url=url, s3_endpoint_url=s3_endpoint)
        )
        for name in ("api", "worker")
    ]
    hosts[0].put_array("datasets/ds_f/x.npy", np.ones((2, 2), dtype=np.float32))
    np.testing.assert_array_equal(hosts[1].load_array("datasets/ds_f/x.npy"), np.ones((2, 2)))
    assert (tmp_path / "worker" / "cache" / "datasets" / "ds_f" / "x.npy").is_file()


def test_children_name_each_entry_with_its_newest_change(store: ArtifactStore) -> None:
    assert store.children("datasets") == {}
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.put_array("datasets/ds_a/x.npy", np.zeros(3, dtype=np.float32))
    store.put_array("datasets/ds_a/y.npy", np.zeros(3, dtype=np.float32))
    store.put_array("datasets/ds_b/x.npy", np.zeros(3, dtype=np.float32))
    store.put_array("jobs/job_c/model.npy", np.zeros(3, dtype=np.float32))
    found = store.children("datasets")
    assert sorted(found) == ["ds_a", "ds_b"]
    assert all(
        before < changed < datetime.now(UTC) + timedelta(seconds=5) for changed in found.values()
    )
