"""JSON log lines carry the job, dataset and tenant of the work they are about."""

from __future__ import annotations

import json
import logging

from fitq import logs


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("fitq.test", logging.INFO, __file__, 1, message, None, None)


def test_lines_carry_the_bound_ids_and_only_inside_the_block() -> None:
    formatter = logs.JsonFormatter()
    with logs.bound(job_id="job_1", tenant="acme"):
        inside = json.loads(formatter.format(record("epoch 3 done")))
        with logs.bound(dataset_id="ds_2"):
            nested = json.loads(formatter.format(record("nested")))
    outside = json.loads(formatter.format(record("idle")))
    assert inside["message"] == "epoch 3 done" and inside["level"] == "info"
    assert (inside["job_id"], inside["tenant"]) == ("job_1", "acme")
    assert nested["dataset_id"] == "ds_2" and nested["job_id"] == "job_1"
    assert "job_id" not in outside and "tenant" not in outside


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("bad shape")
    except ValueError:
        import sys

        failing = record("failed")
        failing.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(failing)
    assert "\n" not in line
    assert "ValueError: bad shape" in json.loads(line)["exception"]
