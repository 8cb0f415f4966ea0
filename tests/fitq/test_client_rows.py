"""What the SDK sends as rows: arrays and nested lists as JSON numbers, a dict of them (a
model of several inputs) keyed alike."""

from __future__ import annotations

import json

import numpy as np

from fitq.client import json_rows


def test_rows_of_one_input_or_of_several_by_name_become_json_numbers() -> None:
    single = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert json_rows(single) == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    named = json_rows({"a": single, "b": [[1], [2], [3]]})
    assert named == {"a": json_rows(single), "b": [[1.0], [2.0], [3.0]]}
    assert json.loads(json.dumps(named)) == named
