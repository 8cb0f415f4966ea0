"""The API's own logs, as uvicorn writes them in a real process: a key sent in a query string
(``?api_key=``, which a client may do though the API reads keys from headers only) is never
written to the access log."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import FAST_RECOVERY, migrate
from tests.processes import Stack, wait_for


def test_the_access_log_never_holds_a_key_sent_in_the_query_string(tmp_path: Path) -> None:
    env = {"FITQ_DATA_DIR": str(tmp_path / "fitq"), **FAST_RECOVERY}
    migrate(env)
    stack = Stack(env, tmp_path)
    try:
        stack.start_api()
        with stack.client() as client:
            client.get("/v1/jobs", params={"limit": 5, "api_key": "fitq_topsecret123"})
            client.get("/healthz?token=abc&x=1")
        assert stack.api is not None
        wait_for(lambda: "token=REDACTED&x=1" in stack.api.log(), 10, 0.1, "the access line")
    finally:
        stack.stop()
    log = stack.api.log()
    assert "topsecret" not in log and "token=abc" not in log
    assert "api_key=REDACTED" in log and "limit=5" in log
