"""Dataset uploads over the in-process API, ingested by the ingest logic without Celery: good
files become arrays and statistics, bad ones fail with the row and column, nothing half
written stays behind."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import worker.parsers
from fitq.settings import Settings
from tests.bad_uploads import BAD_UPLOADS, npz
from worker.ingest import DatasetIngestor

Api = tuple[TestClient, Settings]


def upload(client: TestClient, name: str, content: bytes, **form: str) -> dict:
    response = client.post("/v1/datasets", files={"file": (name, content)}, data=form)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "processing"
    return response.json()


def ingest(api: Api, ingestor: DatasetIngestor, name: str, content: bytes, **form: str) -> dict:
    client, _ = api
    dataset = upload(client, name, content, **form)
    ingestor.run(dataset["id"])
    return client.get(f"/v1/datasets/{dataset['id']}").json()


def arrays(api: Api, dataset: dict) -> tuple[np.ndarray, np.ndarray]:
    root = api[1].resolved_artifacts_dir / "datasets" / dataset["id"]
    return np.load(root / "x.npy"), np.load(root / "y.npy")


def files_of(api: Api, dataset_id: str) -> list[Path]:
    root = api[1].resolved_artifacts_dir / "datasets" / dataset_id
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---- good files ---------------------------------------------------------------------------


def test_csv_becomes_arrays_with_column_statistics(api: Api, ingestor: DatasetIngestor) -> None:
    csv = b"a,b,c,target\n1,2,3,0.5\n4,5,6,1.5\n7,8,9,2.5\n"
    dataset = ingest(api, ingestor, "data.csv", csv, target="target")
    assert dataset["status"] == "ready", dataset["error"]
    assert (dataset["rows"], dataset["x_shape"], dataset["y_shape"]) == (3, [3, 3], [3])
    assert (dataset["x_dtype"], dataset["y_dtype"]) == ("float32", "float32")
    assert dataset["feature_names"] == ["a", "b", "c"]
    assert dataset["columns"][0] == {
        "name": "a", "min": 1.0, "max": 7.0, "mean": 4.0, "std": pytest.approx(np.std([1, 4, 7])),
        "missing": 0,
    }  # fmt: skip
    x, y = arrays(api, dataset)
    assert x.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert y.tolist() == [0.5, 1.5, 2.5]
    assert [p.name for p in files_of(api, dataset["id"])] == ["x.npy", "y.npy"]  # upload removed


def test_csv_feature_subset_and_two_targets(api: Api, ingestor: DatasetIngestor) -> None:
    csv = b"id,a,b,t1,t2\n1,1,2,3,4\n2,5,6,7,8\n"
    dataset = ingest(api, ingestor, "d.csv", csv, target="t1, t2", features="a,b")
    assert dataset["status"] == "ready", dataset["error"]
    assert (dataset["x_shape"], dataset["y_shape"]) == ([2, 2], [2, 2])
    assert dataset["target_names"] == ["t1", "t2"]


def test_string_labels_are_encoded_in_sorted_order(api: Api, ingestor: DatasetIngestor) -> None:
    csv = b"f,animal\n1,dog\n2,cat\n3,emu\n4,cat\n"
    dataset = ingest(api, ingestor, "d.csv", csv, target="animal")
    assert dataset["labels"] == ["cat", "dog", "emu"]
    assert arrays(api, dataset)[1].tolist() == [1, 0, 2, 0]


def test_chunks_are_stitched_and_rows_named_across_them(
    api: Api, ingestor: DatasetIngestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.parsers, "CHUNK_ROWS", 7)
    rows = [f"{i},{i * 2},{i % 3}" for i in range(50)]
    dataset = ingest(api, ingestor, "d.csv", ("x1,x2,y\n" + "\n".join(rows)).encode(), target="y")
    x, y = arrays(api, dataset)
    assert x[:, 0].tolist() == list(range(50)) and y.tolist() == [i % 3 for i in range(50)]
    rows[40] = "40,oops,1"
    bad = ingest(api, ingestor, "d.csv", ("x1,x2,y\n" + "\n".join(rows)).encode(), target="y")
    assert bad["error"]["message"] == (
        "row 41 (line 42), column 'x2': expected a number, received 'oops'"
    )


def test_npz_images_and_compressed(api: Api, ingestor: DatasetIngestor) -> None:
    x = np.random.default_rng(0).random((10, 8, 8, 1)).astype(np.float32)
    y = np.arange(10) % 3
    dataset = ingest(api, ingestor, "images.npz", npz(x=x, y=y))
    assert dataset["status"] == "ready", dataset["error"]
    assert (dataset["x_shape"], dataset["y_shape"]) == ([10, 8, 8, 1], [10])
    stored_x, stored_y = arrays(api, dataset)
    assert np.array_equal(stored_x, x) and stored_y.tolist() == y.tolist()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    assert ingest(api, ingestor, "c.npz", buffer.getvalue())["status"] == "ready"


def test_json_lines_as_columns_and_as_arrays(api: Api, ingestor: DatasetIngestor) -> None:
    lines = [{"a": 1, "b": 2.5, "label": "yes"}, {"a": 3, "b": 4.5, "label": "no"}]
    text = "\n".join(json.dumps(r) for r in lines).encode()
    dataset = ingest(api, ingestor, "d.jsonl", text, target="label")
    assert (dataset["status"], dataset["labels"]) == ("ready", ["no", "yes"])
    arrays_lines = [{"x": [[1, 2], [3, 4]], "y": [1]}, {"x": [[5, 6], [7, 8]], "y": [0]}]
    text = "\n".join(json.dumps(r) for r in arrays_lines).encode()
    dataset = ingest(api, ingestor, "d.ndjson", text)
    assert (dataset["x_shape"], dataset["y_shape"]) == ([2, 2, 2], [2, 1])


# ---- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "form", "message"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_bad_files_fail_naming_the_problem_and_leave_nothing(
    api: Api, ingestor: DatasetIngestor, name: str, content: bytes, form: dict, message: str
) -> None:
    dataset = ingest(api, ingestor, name, content, **form)
    assert dataset["status"] == "failed"
    assert message in dataset["error"]["message"]
    assert files_of(api, dataset["id"]) == []


@pytest.mark.parametrize(
    ("name", "content", "loc", "message"),
    [
        ("d.csv", b"", "file", "expected data, received an empty file"),
        ("d.xlsx", b"x", "file", "expected a .csv, .npz or .jsonl file"),
        ("d.csv", b"a,b\n1,2\n", "target", "expected distinct comma-separated column names"),
    ],
)
def test_refused_at_upload(api: Api, name: str, content: bytes, loc: str, message: str) -> None:
    client, _ = api
    form = {"target": "b,,b"} if loc == "target" else {"target": "b"}
    response = client.post("/v1/datasets", files={"file": (name, content)}, data=form)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert (detail["loc"], message in detail["message"]) == (loc, True)
    assert client.get("/v1/datasets").json()["data"] == []


def test_upload_over_the_limit_is_413(api: Api, embedded_settings: Settings) -> None:
    from fitq.store.migrate import upgrade
    from service.main import create_app

    settings = embedded_settings.model_copy(update={"max_upload_bytes": 1000})
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        declared = client.post("/v1/datasets", files={"file": ("d.csv", b"a,b\n" + b"1,2\n" * 500)})
        assert declared.status_code == 413
        assert declared.json()["error"]["type"] == "payload_too_large"

        def chunks():
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n'
            for _ in range(100):
                yield b"1,2\n" * 50

        streamed = client.post(
            "/v1/datasets",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["type"] == "payload_too_large"
        assert client.get("/v1/datasets").json()["data"] == []


def test_filenames_are_shown_never_used_as_paths(api: Api, ingestor: DatasetIngestor) -> None:
    dataset = ingest(api, ingestor, "../../etc/passwd.csv", b"a,y\n1,2\n", target="y")
    assert dataset["filename"] == "passwd.csv"
    assert dataset["status"] == "ready"


# ---- list and delete ----------------------------------------------------------------------


def test_list_pages_newest_first(api: Api) -> None:
    client, _ = api
    ids = [upload(client, "d.csv", b"a,y\n1,2\n", target="y")["id"] for _ in range(3)]
    page = client.get("/v1/datasets", params={"limit": 2}).json()
    assert [d["id"] for d in page["data"]] == ids[::-1][:2]
    rest = client.get("/v1/datasets", params={"after": page["next_after"]}).json()
    assert [d["id"] for d in rest["data"]] == ids[:1] and not rest["has_more"]


def test_delete_rules(api: Api, ingestor: DatasetIngestor) -> None:
    client, _ = api
    processing = upload(client, "d.csv", b"a,y\n1,2\n", target="y")
    assert client.delete(f"/v1/datasets/{processing['id']}").status_code == 409
    ingestor.run(processing["id"])

    job = {
        "model": {"layers": [{"type": "Dense", "units": 1, "input_shape": [1]}]},
        "compile": {"loss": "mse"},
        "data": {"train": {"dataset_id": processing["id"]}},
    }
    job_id = client.post("/v1/jobs", json=job).json()["id"]
    conflict = client.delete(f"/v1/datasets/{processing['id']}")
    assert conflict.status_code == 409
    assert job_id in conflict.json()["error"]["message"]

    unused = ingest(api, ingestor, "d.csv", b"a,y\n1,2\n", target="y")
    assert client.delete(f"/v1/datasets/{unused['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{unused['id']}").status_code == 404
    assert files_of(api, unused["id"]) == []
    assert client.delete("/v1/datasets/ds_nope").status_code == 404


def test_a_pickle_is_never_loaded(api: Api, ingestor: DatasetIngestor, tmp_path: Path) -> None:
    """A .npz whose member is a raw pickle, not an .npy: refused without unpickling."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.touch, ())

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", pickle.dumps(Exploit()))
        archive.writestr("y.npy", pickle.dumps(Exploit()))
    dataset = ingest(api, ingestor, "evil.npz", buffer.getvalue())
    assert dataset["status"] == "failed"
    assert not marker.exists()


def test_a_label_column_that_starts_numeric_in_a_later_chunk(
    api: Api, ingestor: DatasetIngestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.parsers, "CHUNK_ROWS", 2)
    dataset = ingest(api, ingestor, "d.csv", b"f,grade\n1,A\n2,B\n3,1\n4,2\n5,A\n", target="grade")
    assert dataset["labels"] == ["1", "2", "A", "B"]
    assert arrays(api, dataset)[1].tolist() == [2, 3, 0, 1, 2]
    numbers_first = ingest(api, ingestor, "d.csv", b"f,grade\n1,1\n2,2\n3,A\n", target="grade")
    assert numbers_first["error"]["message"] == (
        "row 3 (line 4), column 'grade': expected a number like the rows before, received 'A'"
    )


# ---- uploads that would grow past what they may take ----------------------------------------


def test_a_zip_bomb_fails_before_it_fills_the_disk(api: Api, ingestor: DatasetIngestor) -> None:
    """A .npz of zeros compresses 1,000 to 1: 200 KB inflating to 200 MB. The tenant's quota
    (FITQ_MAX_DATASET_BYTES, here 20 MB) is checked against the sizes the zip declares
    before a byte is inflated (it was checked against the upload: 22 GB filled the disk)."""
    ingestor.settings = ingestor.settings.model_copy(update={"max_dataset_bytes": 20 * 2**20})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((25_000, 1_000)), y=np.zeros(25_000))
    assert len(buffer.getvalue()) < 2**20
    dataset = ingest(api, ingestor, "bomb.npz", buffer.getvalue())
    assert dataset["status"] == "failed"
    message = dataset["error"]["message"]
    assert "inflate to 200,200,256 bytes" in message and "FITQ_MAX_DATASET_BYTES" in message
    assert files_of(api, dataset["id"]) == []
    leftovers = [p for p in api[1].resolved_artifacts_dir.rglob("*.npy") if p.stat().st_size]
    assert leftovers == []


def test_the_copy_out_of_a_zip_stops_at_the_limit_whatever_its_headers_say(
    tmp_path: Path,
) -> None:
    """Python's zipfile stops at the size a member declares; the copy keeps its own count
    as well, so a member is never written past the room left."""
    from worker.parsers import IngestError, IngestLimits, _extract

    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((1_000, 100)), y=np.zeros(1_000))
    limits = IngestLimits(max_columns=10, max_bytes=100_000, bytes_limit="the test's limit")
    target = tmp_path / "x.npy"
    with pytest.raises(IngestError, match="within the test's limit, received one that inflates"):
        _extract(zipfile.ZipFile(path), "x", target, [100_000], limits)
    assert target.stat().st_size <= 100_000


@pytest.mark.parametrize("name", ["wide.csv", "wide.jsonl"])
def test_a_file_wider_than_the_column_limit_fails_before_it_is_parsed(
    api: Api, ingestor: DatasetIngestor, name: str
) -> None:
    """A 9 MB CSV of 1,000,000 columns took the ingest worker 135 s and 3 GB; the header is
    counted first against FITQ_MAX_COLUMNS (here 100)."""
    ingestor.settings = ingestor.settings.model_copy(update={"max_columns": 100})
    names = [f"c{i}" for i in range(101)]
    if name.endswith(".csv"):
        content = (",".join(names) + "\n" + ",".join("1" * 101) + "\n").encode()
    else:
        content = (json.dumps(dict.fromkeys(names, 1)) + "\n").encode()
    dataset = ingest(api, ingestor, name, content, target="c0")
    assert dataset["status"] == "failed"
    assert dataset["error"]["message"] == (
        "expected at most 100 columns (FITQ_MAX_COLUMNS), received 101"
    )


@pytest.mark.parametrize(
    ("header", "columns"),
    [
        ("a,b,c\n1,2,3\n", 3),
        ('"a,b",c\n1,2\n', 2),  # a quoted comma is not a separator
        ('"say ""hi"", then",c,d\r\n1,2,3\n', 3),  # nor is one after doubled quotes
        ('"two\nlines",b\n1,2\n', 2),  # a quoted newline does not end the header
    ],
)
def test_the_header_is_counted_as_csv_reads_it(tmp_path: Path, header: str, columns: int) -> None:
    path = tmp_path / "h.csv"
    path.write_text(header)
    assert worker.parsers._header_width(path, 100) == columns


def test_counting_a_huge_header_stops_past_the_limit(tmp_path: Path) -> None:
    """The csv module held a whole header row: millions of columns, or a line of gigabytes,
    cost the worker gigabytes. The count stops at the limit, one read at a time."""
    path = tmp_path / "wide.csv"
    path.write_text(",".join("1" * 3_000_000) + "\n")
    assert worker.parsers._header_width(path, 10_000) == 10_001


def test_a_json_line_longer_than_the_limit_fails_before_it_is_held(
    api: Api, ingestor: DatasetIngestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.parsers, "MAX_LINE_CHARS", 1_000)
    record = json.dumps({"x": 1, "y": 2})
    content = f"{record}\n{json.dumps({'x': 1, 'y': 'a' * 2_000})}\n".encode()
    dataset = ingest(api, ingestor, "long.jsonl", content, target="y")
    assert dataset["status"] == "failed"
    assert dataset["error"]["message"] == (
        "line 2: expected a record of at most 1,000 characters, received a longer one"
    )
