"""Supervision of the child processes ``fitq serve`` and ``fitq worker`` start: a child that
dies (a crash, the kernel's OOM killer) is logged and started again, with a growing pause,
while the others keep serving; a child that keeps dying right after it starts stops them
all, with its exit code. SIGTERM or SIGINT stops every child (a worker drains its job)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A child that exits sooner than this after starting counts towards a crash loop.
QUICK_EXIT_SECONDS = 10.0
MAX_RESTART_DELAY = 30.0
POLL_SECONDS = 0.2


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's OOM killer sends it)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


@dataclass
class Child:
    """One supervised process, started by its command."""

    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0  # in a row
    restart_at: float | None = None
    # Called with the dead process's pid before it is started again (a worker's heartbeat
    # row goes at once, so readiness shows the worker gone until it is back).
    on_death: Callable[[int], None] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None


@dataclass
class Supervisor:
    children: list[Child]
    say: Callable[[str], None] = print
    restart_delay: float = 1.0  # doubled for each exit in a row right after starting
    max_quick_exits: int = 5
    _stopping: bool = field(default=False, init=False)

    def run_until_signalled(self) -> int:
        """``run``, stopped by SIGTERM or SIGINT (the main thread of a command)."""
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        return self.run()

    def run(self) -> int:
        """Until ``stop``, or a crash loop; returns the exit code for the parent."""
        for child in self.children:
            child.start()
        code = 0
        while not self._stopping and not code:
            time.sleep(POLL_SECONDS)
            for child in self.children:
                code = code or self._tend(child, time.monotonic())
        self._stop_all()
        return code

    def stop(self) -> None:
        self._stopping = True

    def _tend(self, child: Child, now: float) -> int:
        """Start a child that is due; notice one that died. Non-zero: give up with it."""
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.start()
                self.say(f"fitq: {child.name} started again")
            return 0
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return 0
        if child.on_death is not None:
            try:
                child.on_death(child.process.pid)
            except Exception as exc:  # the store may be what is down; the row ages out anyway
                self.say(f"fitq: could not record that {child.name} died: {exc}")
        quick = now - child.started_at < QUICK_EXIT_SECONDS
        child.quick_exits = child.quick_exits + 1 if quick else 0
        if child.quick_exits >= self.max_quick_exits:
            self.say(
                f"fitq: {child.name} {describe_exit(code)} {child.quick_exits} times in a row "
                "right after starting; stopping"
            )
            return code if code > 0 else 1
        delay = min(self.restart_delay * 2 ** max(child.quick_exits - 1, 0), MAX_RESTART_DELAY)
        self.say(f"fitq: {child.name} {describe_exit(code)}; starting it again in {delay:g} s")
        child.restart_at = now + delay
        return 0

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
