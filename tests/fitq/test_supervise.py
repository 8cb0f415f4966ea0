"""The supervisor of ``fitq serve`` and ``fitq worker``, on real child processes: a child
that dies is started again while the others run on; one that dies right after every start
stops them all; SIGTERM stops every child."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from fitq.supervise import Child, Supervisor
from tests.processes import wait_for


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def counting(path: Path, then: str) -> list[str]:
    """A child that appends a line to ``path`` each time it starts, then runs ``then``."""
    return python(f"open({str(path)!r}, 'a').write('start\\n'); {then}")


def starts(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_killed_child_is_started_again_and_the_others_keep_running(tmp_path: Path) -> None:
    said: list[str] = []
    died: list[int] = []
    steady, victim = tmp_path / "steady", tmp_path / "victim"
    sleep = "import time; time.sleep(60)"
    children = [
        Child("steady", counting(steady, sleep), dict(os.environ)),
        Child("victim", counting(victim, sleep), dict(os.environ), on_death=died.append),
    ]
    supervisor = Supervisor(children, say=said.append, restart_delay=0.1)
    runner = threading.Thread(target=lambda: said.append(f"code {supervisor.run()}"))
    runner.start()
    try:
        wait_for(lambda: starts(steady) == 1 and starts(victim) == 1, 20, 0.05, "both started")
        first = children[1].process
        assert first is not None
        first.kill()  # as the OOM killer would
        wait_for(lambda: starts(victim) == 2, 20, 0.05, "the victim started again")
        assert children[1].process is not first and children[0].process.poll() is None
        assert starts(steady) == 1
        assert died == [first.pid]  # told before it started again, with the dead one's pid
        assert any("victim was killed by SIGKILL" in line for line in said), said
    finally:
        supervisor.stop()
        runner.join(timeout=60)
    assert said[-1] == "code 0"
    assert all(child.process.poll() is not None for child in children)  # all stopped


def test_a_child_that_dies_on_every_start_stops_them_all(tmp_path: Path) -> None:
    said: list[str] = []
    broken = tmp_path / "broken"
    children = [
        Child("steady", python("import time; time.sleep(60)"), dict(os.environ)),
        Child("broken", counting(broken, "raise SystemExit(3)"), dict(os.environ)),
    ]
    supervisor = Supervisor(children, say=said.append, restart_delay=0.05, max_quick_exits=3)
    started = time.monotonic()
    assert supervisor.run() == 3
    assert time.monotonic() - started < 30
    assert starts(broken) == 3
    assert "broken exited with code 3 3 times in a row right after starting; stopping" in said[-1]
    assert children[0].process is not None and children[0].process.poll() is not None
