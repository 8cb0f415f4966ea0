"""API throughput with wrk against a minimal FastAPI JSON endpoint served the same way, in
the same run: ``GET /v1/jobs/{id}`` (a finished seed-size job with its 10-epoch history) and
``POST /v1/jobs`` referencing a stored dataset, each as a ratio of the baseline's req/s.

    .venv/bin/python -m bench.api_throughput [--seconds 10] [--connections 32] [--profile]

wrk comes from Debian's package (``apt-get install wrk``; this command installs it when it
can). Every server is one uvicorn process on loopback; fitq's runs on PostgreSQL + Redis."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.profiling import Profile, start_recording, summarise
from bench.stack import redis_postgres_stack
from tests.factories import tiny_job
from tests.processes import child_env, finished, free_port, poll_job, spawn, wait_for

BASELINE_APP = """
from fastapi import FastAPI
app = FastAPI()
JOB = {"id": "job_x", "status": "succeeded", "history": [{"loss": 0.5, "mae": 0.4}] * 10}
@app.get("/job")
def job() -> dict:
    return JOB
@app.get("/job-async")
async def job_async() -> dict:
    return JOB
"""


# Both servers alike: one process, no access log (a line per request would measure logging).
UVICORN_ARGS = ("--log-level", "warning", "--no-access-log")


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    return found


def wrk(binary: str, url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    command = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rate": rate,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def run(seconds: int, connections: int, profile: bool = False) -> dict[str, Any]:
    """wrk's rate, p99 and non-2xx count per request (``baseline``, ``get``, ``post``), with
    py-spy profiles of the API (``profiles``) when ``profile``."""
    binary = ensure_wrk()
    with ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        (workdir / "baseline_app.py").write_text(BASELINE_APP)
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--port", str(port),
                   *UVICORN_ARGS, "--app-dir", str(workdir)]  # fmt: skip
        baseline_server = spawn(command, child_env({}), workdir / "baseline.log")
        cleanup.callback(baseline_server.stop)
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base_url + "/job"), 30, 0.1, "the baseline app")

        stack = redis_postgres_stack(
            cleanup, UVICORN_ARGS, FITQ_MAX_ACTIVE_JOBS="1000000", FITQ_SWEEPER_ENABLED="false",
        )  # fmt: skip
        worker = stack.start_worker()
        with stack.client() as client:
            first = client.post("/v1/jobs", json=tiny_job(epochs=10)).json()
            job, _ = poll_job(client, first["id"], finished, 120)
        # The API alone is measured: the jobs the POSTs create stay queued, not trained on
        # the cores the API, PostgreSQL, Redis and wrk share.
        worker.stop()
        dataset = job["spec"]["data"]["train"]["dataset_id"]
        body = tiny_job(epochs=1)
        body["data"] = {"train": {"dataset_id": dataset}}
        script = workdir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        measured: dict[str, Any] = {
            "baseline": wrk(binary, base_url + "/job", seconds, connections),
            # For reference, not the ratios' base: a plain ``def`` runs in FastAPI's thread
            # pool, whose hop costs more on some machines than others.
            "baseline_async": wrk(binary, base_url + "/job-async", seconds, connections),
            "profiles": {},
        }
        api_pid = stack.api.process.pid if stack.api else 0
        with profiled(api_pid, seconds, workdir / "get.txt", profile) as get_profile:
            measured["get"] = with_cpu(
                api_pid, lambda: wrk(binary, f"{stack.base_url}/v1/jobs/{job['id']}", seconds, connections)
            )  # fmt: skip
        with profiled(api_pid, seconds, workdir / "post.txt", profile) as post_profile:
            measured["post"] = with_cpu(
                api_pid, lambda: wrk(binary, f"{stack.base_url}/v1/jobs", seconds, connections, script)
            )  # fmt: skip
    for name, found in (("get", get_profile), ("post", post_profile)):
        if found:
            measured["profiles"][name] = found[0]
    return measured


def with_cpu(api_pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """wrk's figures, with the CPU the API process and PostgreSQL's processes used meanwhile:
    ``api_cpu_ms`` per request, and each one's share of a core (``api_cores``, ``pg_cores``)."""
    before_api, before_pg, started = _cpu(api_pid), _postgres_cpu(), time.monotonic()
    result = run()
    elapsed = time.monotonic() - started
    api, pg = _cpu(api_pid) - before_api, _postgres_cpu() - before_pg
    requests = result["rate"] * elapsed
    return result | {
        "api_cpu_ms": 1000 * api / requests if requests else float("nan"),
        "api_cores": api / elapsed,
        "pg_cores": pg / elapsed,
    }


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process alive now (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu(int(entry.name))
            except OSError:
                continue
    return total


LABELS = {
    "baseline": "minimal FastAPI JSON endpoint (baseline)",
    "baseline_async": "the same endpoint as `async def` (reference)",
    "get": "GET /v1/jobs/{id} (seed-size job, 10-epoch history)",
    "post": "POST /v1/jobs (data by dataset id)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the API process under each fitq route"
    )
    args = parser.parse_args()
    measured = run(args.seconds, args.connections, args.profile)
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, one uvicorn process each, loopback")
    print("| request | req/s | p99 (ms) | / baseline | non-2xx | API CPU/request | PostgreSQL |")
    print("|---|---|---|---|---|---|---|")
    for name, label in LABELS.items():
        result = measured[name]
        ratio = result["rate"] / measured["baseline"]["rate"]
        cpu = (
            f"{result['api_cpu_ms']:.2f} ms ({result['api_cores']:.2f} cores) "
            f"| {result['pg_cores']:.2f} cores"
            if "api_cpu_ms" in result
            else "| "
        )
        print(
            f"| {label} | {result['rate']:,.0f} | {result['p99_ms']:.1f} | {ratio:.2f}x "
            f"| {result['non_2xx']} | {cpu} |"
        )
    for name, profile in measured["profiles"].items():
        print(f"\nWhere the API process spends {LABELS[name]} (py-spy, {profile.samples} samples)")
        print(profile.table())


@contextmanager
def profiled(pid: int, seconds: int, out: Path, enabled: bool) -> Iterator[list[Profile]]:
    """Yields a list that holds the profile of the block once it is done (empty if not
    ``enabled``); the recording covers the block's first ``seconds``."""
    found: list[Profile] = []
    recorder = start_recording(pid, seconds, out) if enabled else None
    yield found
    if recorder is not None:
        recorder.wait(timeout=seconds + 60)
        found.append(summarise(out))


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
