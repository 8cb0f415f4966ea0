"""Sampling profiles of a running process with py-spy, summarised as the share of samples that
pass through each function (inclusive) and that end in it (self).

Used by the benchmarks' ``--profile`` options: profile before optimising, and say where the
time goes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# py-spy's raw lines: "thread;frame;frame;... count"; a frame is "function (file:line)".
REPO_ROOT = Path(__file__).resolve().parents[1]
OWN_PACKAGES = ("fitq/", "service/", "worker/")
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>.+?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    inclusive: Counter[str]
    self_time: Counter[str]

    def table(self, top: int = 12) -> str:
        """The functions the samples end in (self), then fitq's own functions (inclusive)."""
        lines = ["| function | self | inclusive |", "|---|---|---|"]
        ours = [n for n, _ in self.inclusive.most_common() if n.startswith(OWN_PACKAGES)]
        hottest = [n for n, _ in self.self_time.most_common(top)]
        for name in dict.fromkeys(hottest + ours[:top]):
            own = 100 * self.self_time[name] / self.samples
            share = 100 * self.inclusive[name] / self.samples
            lines.append(f"| `{name}` | {own:.1f} % | {share:.0f} % |")
        return "\n".join(lines)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def start_recording(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy samples ``pid`` for ``seconds`` into ``out`` (raw format): the thread holding the
    GIL, so a sample is Python doing work, not a thread waiting on a socket or a lock."""
    command = [py_spy(), "record", "-p", str(pid), "-d", str(int(seconds)), "-f", "raw",
               "-o", str(out), "--nonblocking", "--rate", "200", "--gil"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(raw: Path, keep: tuple[str, ...] = ()) -> Profile:
    """Per function ``file:function``; ``keep`` limits it to samples whose stack contains one
    of these substrings (e.g. the request threads, not the sweeper)."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if keep and not any(k in stack for k in keep):
            continue
        count = int(count_text)
        names = [_name(frame) for frame in stack.split(";")[1:]]
        samples += count
        for name in set(names):
            inclusive[name] += count
        if names:
            self_time[names[-1]] += count
    return Profile(samples or 1, inclusive, self_time)


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"].removeprefix(str(REPO_ROOT) + "/")
    path = path.rpartition("site-packages/")[2]
    return f"{path}:{match['function']}"
