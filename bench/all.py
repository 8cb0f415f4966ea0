"""Every issue-9 target in one run: each measured side by side with its baseline, written into
BENCHMARKS.md (between the ``bench.all`` markers) with the machine and the commands.

    .venv/bin/python -m bench.all [--quick] [--profile] [--no-write]

Starts what it needs on loopback (API and workers on the machine's PostgreSQL and Redis;
wrk from Debian's package, installed when missing). ``--quick`` runs smaller versions (for
trying the command, not for the table); ``--profile`` adds py-spy profiles of the API under
wrk. About ten minutes on a 2-core machine."""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import api_throughput, job_list, service_vs_keras, worker_throughput

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO_ROOT / "BENCHMARKS.md"
START, END = "<!-- bench.all: start -->", "<!-- bench.all: end -->"


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())
        memory = f", {int(found.group(1)) / 2**20:.0f} GiB" if found else ""
    import keras
    import tensorflow as tf

    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, no GPU in use; Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def table(results: dict[str, Any]) -> str:
    keras_rows, cold = results["keras"]["rows"], results["keras"]["cold"]
    seed, tiny = keras_rows
    api = results["api"]
    base = api["baseline"]["rate"]
    get, post = api["get"]["rate"] / base, api["post"]["rate"] / base
    cpu = {
        name: f", API CPU {api[name]['api_cpu_ms']:.2f} ms/request"
        if "api_cpu_ms" in api[name] else ""
        for name in ("get", "post")
    }  # fmt: skip
    t, m = results["workers"]["throughput"], results["workers"]["many_jobs"]
    listing = results["list"]["first"]
    same = "bit-identical" if seed["identical"] and tiny["identical"] else "**differ**"
    rows = [
        ("1. seed job, warm worker, Redis + PostgreSQL",
         f"{seed['hand_s']:.3f} s by hand (warm)", f"{seed['service_s']:.3f} s",
         f"{seed['ratio']:.2f}x", "≤ 0.9x", _met(seed["ratio"] <= 0.9) + f"; numbers {same}",
         "bench.service_vs_keras"),
        ("2. one-epoch 32-row job", f"{tiny['hand_s']:.3f} s by hand (warm)",
         f"{tiny['service_s']:.3f} s", f"{tiny['ratio']:.2f}x", "≤ 0.5x",
         _met(tiny["ratio"] <= 0.5), "bench.service_vs_keras"),
        ("3. seed job vs the cold script", f"{cold['seconds']:.3f} s (`python "
         "examples/seed_example.py`)", f"{seed['service_s']:.3f} s", f"{cold['ratio']:.2f}x",
         "≤ 0.35x", _met(cold["ratio"] <= 0.35) + ("; same numbers" if cold["same_numbers"]
                                                    else "; **numbers differ**"),
         "bench.service_vs_keras"),
        ("4a. `GET /v1/jobs/{id}` under wrk", f"{base:,.0f} req/s (minimal FastAPI)",
         f"{api['get']['rate']:,.0f} req/s, p99 {api['get']['p99_ms']:.0f} ms{cpu['get']}",
         f"{get:.2f}x",
         "≥ 0.5x", _met(get >= 0.5), "bench.api_throughput"),
        ("4b. `POST /v1/jobs` by dataset id under wrk", f"{base:,.0f} req/s (minimal FastAPI)",
         f"{api['post']['rate']:,.0f} req/s, p99 {api['post']['p99_ms']:.0f} ms{cpu['post']}",
         f"{post:.2f}x", "≥ 0.3x", _met(post >= 0.3), "bench.api_throughput"),
        (f"5. training throughput, {t['rows']:,} x 784, {t['epochs']} epochs",
         f"{t['bare_samples_per_s']:,.0f} samples/s (bare `model.fit`)",
         f"{t['fitq_samples_per_s']:,.0f} samples/s (steps/execution "
         f"{t['steps_per_execution']})", f"{t['ratio']:.2f}x", "≥ 0.97x",
         _met(t["ratio"] >= 0.97), "bench.worker_throughput"),
        ("6. first page of `GET /v1/jobs`, 10,000 jobs", "", f"p50 {listing['p50_ms']:.1f} ms, "
         f"p99 {listing['p99_ms']:.1f} ms", "", "p50 ≤ 20 ms", _met(listing["p50_ms"] <= 20),
         "bench.job_list"),
        (f"7. {m['jobs']} one-epoch jobs, 2 worker processes",
         f"{m['bare_jobs_per_min']:,.1f} jobs/min (one bare process, in a row)",
         f"{m['fitq_jobs_per_min']:,.1f} jobs/min", f"{m['ratio']:.2f}x", "(reported)", "",
         "bench.worker_throughput"),
    ]  # fmt: skip
    lines = [
        "| target | baseline | fitq | ratio | goal | | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        *cells, module = row
        lines.append("| " + " | ".join(cells) + f" | `python -m {module}` |")
    if "baseline_async" in api:
        reference = api["baseline_async"]["rate"]
        lines += [
            "",
            f"The baseline is a plain `def` endpoint, which FastAPI runs in its thread pool. The "
            f"same endpoint as `async def` served {reference:,.0f} req/s in this run; against "
            f"it, GET is {api['get']['rate'] / reference:.2f}x and POST "
            f"{api['post']['rate'] / reference:.2f}x.",
        ]
    return "\n".join(lines)


def profiles(results: dict[str, Any]) -> str:
    found = results["api"].get("profiles", {})
    parts = []
    for name, profile in found.items():
        label = api_throughput.LABELS[name]
        parts.append(
            f"Where the API process spends {label} (py-spy, {profile.samples} samples of the "
            "thread holding the GIL; self = where a sample ended):"
        )
        parts.append("")
        parts.append(profile.table())
        parts.append("")
    return "\n".join(parts)


def section(results: dict[str, Any], command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            START,
            "## Issue 9's targets, one run",
            "",
            f"`{command}` — {when}; {machine()}.",
            "Written by the command; every ratio is measured against its baseline in the same run.",
            "",
            table(results),
            "",
            profiles(results),
            END,
        ]
    )


def write(text: str) -> None:
    current = BENCHMARKS.read_text()
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        BENCHMARKS.write_text(before + text + after)
        return
    title, _, body = current.partition("\n\n")
    BENCHMARKS.write_text(f"{title}\n\n{text}\n\n{body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs, to try the command")
    parser.add_argument("--profile", action="store_true", help="py-spy the API under wrk")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    quick = args.quick
    results = {
        "keras": service_vs_keras.run(repeats=2 if quick else 5),
        "api": api_throughput.run(seconds=3 if quick else 10, connections=32,
                                  profile=args.profile),
        "workers": worker_throughput.run(rows=20_000 if quick else 100_000, epochs=2,
                                         jobs=10 if quick else 200, repeats=1 if quick else 3),
        "list": job_list.run(jobs=1_000 if quick else 10_000, requests=50 if quick else 200),
    }  # fmt: skip
    command = "python -m bench.all" + " --quick" * quick + " --profile" * args.profile
    text = section(results, command)
    print(text)
    if not args.no_write:
        write(text)
        print(f"\nwrote {BENCHMARKS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
