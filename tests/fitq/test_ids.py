from __future__ import annotations

from fitq.ids import JOB_PREFIX, is_valid_id, new_id


def test_ids_sort_in_issue_order_even_within_one_millisecond() -> None:
    ids = [new_id(JOB_PREFIX, now_ms=1_700_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000


def test_ids_carry_their_prefix_and_reject_lookalikes() -> None:
    job_id = new_id(JOB_PREFIX)
    assert is_valid_id(job_id, JOB_PREFIX)
    assert len(job_id) == len(JOB_PREFIX) + 26
    for bad in ["", "job_", job_id.lower(), job_id + "0", "ds_" + job_id[4:], job_id[:-1] + "U"]:
        assert not is_valid_id(bad, JOB_PREFIX), bad
