"""The raw-bytes JSON measure agrees with a walk of the parsed document, and the API refuses
bodies nested too deeply, with too many items in one array or too many arrays and objects
in all, before parsing them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.json_limits import (
    JsonTooDeep,
    JsonTooManyContainers,
    JsonTooWide,
    check,
    measure,
)

# Strings full of the punctuation the measure counts, escapes included.
_tricky_text = st.text(alphabet=st.sampled_from('[]{},:"\\ab é\n'), max_size=12)
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _tricky_text
documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_tricky_text, inner, max_size=6),
    max_leaves=60,
)


def reference(value: Any) -> tuple[int, int, int]:
    """Depth, widest container (an empty one counting as one item) and containers, by
    walking the value."""
    if isinstance(value, list | dict):
        children = list(value.values()) if isinstance(value, dict) else value
        inner = [reference(child) for child in children]
        depth = 1 + max((d for d, _, _ in inner), default=0)
        widest = max([max(len(children), 1), *(w for _, w, _ in inner)])
        return depth, widest, 1 + sum(c for _, _, c in inner)
    return 0, 0, 0


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_measure_matches_a_walk_of_the_parsed_document(document: Any, spaced: bool) -> None:
    body = json.dumps(document, indent=1 if spaced else None, ensure_ascii=False).encode()
    shape = measure(body)
    assert (shape.depth, shape.widest, shape.containers) == reference(document)


def test_depth_limit_names_the_limit_and_the_depth() -> None:
    body = b"[" * 5000 + b"]" * 5000
    with pytest.raises(JsonTooDeep, match="at most 32 levels deep, received 5,000 levels"):
        check(body, max_depth=32, max_items=10, max_containers=10**6)


def test_width_limit_points_to_datasets() -> None:
    body = json.dumps({"x": [[0.5] * 3] * 1001}).encode()
    with pytest.raises(
        JsonTooWide,
        match=r"at most 1,000 items, received one with 1,001.*"
        r"POST /v1/datasets",
    ):
        check(body, max_depth=32, max_items=1000, max_containers=10**6)
    check(body, max_depth=32, max_items=1001, max_containers=10**6)


def test_many_small_arrays_are_refused_whatever_their_widths() -> None:
    """15 M arrays of one item in 60 MB passed the depth and width limits and cost the
    parser gigabytes; counted before parsing, strings left out."""
    rows = json.dumps({"name": "[[[", "x": [[[0.0]] * 1000] * 101}).encode()
    with pytest.raises(
        JsonTooManyContainers,
        match=r"at most 100,000 arrays and objects in one JSON body, received 101,103 "
        r"\(FITQ_MAX_JSON_CONTAINERS\);.*\.npz",
    ):
        check(rows, max_depth=32, max_items=1000, max_containers=100_000)
    check(rows, max_depth=32, max_items=1000, max_containers=101_103)


def test_depth_beyond_what_is_counted_is_reported_as_over() -> None:
    with pytest.raises(JsonTooDeep, match="received over 32,766 levels"):
        check(b"[" * 100_000, max_depth=32, max_items=10, max_containers=10**6)


def test_punctuation_inside_strings_does_not_count() -> None:
    body = json.dumps({"name": "[" * 100 + "," * 100}).encode()
    check(body, max_depth=2, max_items=2, max_containers=2)


def test_unterminated_string_is_left_to_the_parser() -> None:
    body = b'["' + b'\\"' * 50_000
    assert measure(body).depth == 1
