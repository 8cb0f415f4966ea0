"""Schemathesis against a real fitq: the API under uvicorn, an ingest/inference worker and a
training worker, on PostgreSQL and Redis, with API keys required and one test key.

    python -m tests.fuzz.api [--max-examples N] [--max-time SECONDS] [--seed N]

Passes when schemathesis reports no failure (no 5xx, no response outside the schema, every
check) and generated at least ``--min-cases`` test cases. Reports land in ``--report-dir``."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from fitq.queues import DATASETS_QUEUE, INFERENCE_QUEUE
from tests.integration.conftest import migrate
from tests.processes import REPO_ROOT, Stack, child_env
from tests.services import postgres_database, redis_db

CONFIG = Path(__file__).with_name("schemathesis.toml")


def create_key(env: dict[str, str], tenant: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fitq", "keys", "create", "--tenant", tenant],
        env=child_env(env),
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def run_schemathesis(stack: Stack, key: str, args: argparse.Namespace) -> int:
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{stack.base_url}/openapi.json",
        # No --checks: every check runs by default, and a CLI list would override the
        # per-operation settings in schemathesis.toml.
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(args.max_examples),
        "--max-time",
        str(args.max_time),
        "--seed",
        str(args.seed),
        # One worker: schemathesis 4.32's example phase races with itself on two.
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]
    output = []
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as st:
        assert st.stdout is not None
        for line in st.stdout:
            print(line, end="")
            output.append(line)
    status = st.returncode
    cases = generated_cases("".join(output))
    print(f"fuzz: schemathesis exit {status}, {cases} test cases generated")
    if status == 0 and cases < args.min_cases:
        print(f"fuzz: expected at least {args.min_cases} test cases, received {cases}")
        return 1
    return status


def generated_cases(output: str) -> int:
    """Test cases schemathesis generated, from its summary line ("Test cases: N generated")."""
    found = re.search(r"Test cases:\s+(\d+) generated", output)
    return int(found.group(1)) if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--max-time", type=int, default=240, help="schemathesis's budget")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--min-cases", type=int, default=1000)
    parser.add_argument("--report-dir", default="schemathesis-report")
    args = parser.parse_args()
    with ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fitq-fuzz-")))
        env = {
            "FITQ_DATA_DIR": str(workdir / "fitq"),
            "FITQ_AUTH": "on",
            "FITQ_DATABASE_URL": cleanup.enter_context(postgres_database()),
            "FITQ_BROKER_URL": cleanup.enter_context(redis_db()),
            "FITQ_PREDICT_TIMEOUT_SECONDS": "10",
        }
        migrate(env)
        key = create_key(env, "fuzz")
        stack = Stack(env, workdir)
        cleanup.callback(stack.stop)
        stack.start_api()
        stack.start_worker("service", f"{DATASETS_QUEUE},{INFERENCE_QUEUE}")
        stack.start_worker()
        status = run_schemathesis(stack, key, args)
        if status != 0:
            print((workdir / "api.log").read_text(errors="replace")[-20_000:])
        return status


if __name__ == "__main__":
    sys.exit(main())
