"""A fitq stack for benchmarks: the API under uvicorn on a database and a Redis db index of its
own (the machine's PostgreSQL and Redis), migrated, torn down with the ``ExitStack``."""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.conftest import migrate
from tests.processes import Stack
from tests.services import postgres_database, redis_db


def redis_postgres_stack(
    cleanup: ExitStack, uvicorn_args: tuple[str, ...] = (), **env: str
) -> Stack:
    """Started API; the caller starts the workers it needs. ``env`` adds FITQ_ settings,
    ``uvicorn_args`` flags to the API's uvicorn command."""
    workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
    settings = {
        "FITQ_DATA_DIR": str(workdir / "fitq"),
        "FITQ_DATABASE_URL": cleanup.enter_context(postgres_database()),
        "FITQ_BROKER_URL": cleanup.enter_context(redis_db()),
        "FITQ_AUTH": "off",
        **env,
    }
    migrate(settings)
    stack = Stack(settings, workdir)
    cleanup.callback(stack.stop)
    stack.start_api(*uvicorn_args)
    return stack
