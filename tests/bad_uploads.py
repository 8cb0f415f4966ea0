"""Uploads that must fail, each with the message that names the problem: used by the unit
tests (in-process ingest) and the integration tests (the real ingest worker)."""

from __future__ import annotations

import io

import numpy as np


def npz(**arrays_: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays_)
    return buffer.getvalue()


HEADER = b"a,b,y\n"
BAD_UPLOADS = [
    ("no header", "d.csv", b"1,2,3\n4,5,6\n", {"target": "3"}, "expected a header row"),
    ("ragged row", "d.csv", HEADER + b"1,2,3\n4,5,6,7\n", {"target": "y"}, "Expected 3 fields in line 3, saw 4"),
    ("short row", "d.csv", HEADER + b"1,2,3\n4,5\n", {"target": "y"}, "row 2 (line 3), column 'y': expected a value, received a missing one"),
    ("non-numeric feature", "d.csv", HEADER + b"1,x,3\n", {"target": "y"}, "row 1 (line 2), column 'b': expected a number, received 'x'"),
    ("NaN", "d.csv", HEADER + b"1,2,3\nNaN,5,6\n", {"target": "y"}, "row 2 (line 3), column 'a': expected a value, received a missing one"),
    ("infinity", "d.csv", HEADER + b"1,inf,3\n", {"target": "y"}, "row 1 (line 2), column 'b': expected a finite number, received inf"),
    ("unknown target", "d.csv", HEADER + b"1,2,3\n", {"target": "price"}, "expected columns among 'a', 'b', 'y', received 'price'"),
    ("no target", "d.csv", HEADER + b"1,2,3\n", {}, "expected a target column"),
    ("header only", "d.csv", HEADER, {"target": "y"}, "expected data rows after the header"),
    ("zip named csv", "d.csv", npz(x=np.ones((2, 2)), y=np.ones(2)), {"target": "y"}, "expected a text .csv file, received binary data"),
    ("csv named npz", "d.npz", HEADER + b"1,2,3\n", {}, "expected a .npz (zip) file"),
    ("wrong npz keys", "d.npz", npz(features=np.ones((2, 2)), labels=np.ones(2)), {}, "expected arrays 'x' and 'y' in the .npz, received 'features', 'labels'"),
    ("pickled npz", "d.npz", npz(x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.ones(2)), {}, "holds Python objects (pickle)"),
    ("x and y lengths", "d.npz", npz(x=np.ones((3, 2)), y=np.ones(2)), {}, "expected as many rows in 'y' as in 'x' (3), received 2"),
    ("NaN in npz", "d.npz", npz(x=np.array([[1.0, np.nan]]), y=np.ones(1)), {}, "row 1, column 'x': expected a finite number"),
    ("truncated npz", "d.npz", npz(x=np.ones((100, 20)), y=np.ones(100))[:2000], {}, "damaged or truncated"),
    ("invalid json line", "d.jsonl", b'{"a": 1, "y": 2}\n{"a": \n', {"target": "y"}, "line 2: expected a JSON object, received invalid JSON"),
    ("ragged json arrays", "d.jsonl", b'{"x": [1, 2], "y": 1}\n{"x": [1], "y": 1}\n', {}, "line 2, column 'x': expected shape [2] like the first line, received [1]"),
]  # fmt: skip
