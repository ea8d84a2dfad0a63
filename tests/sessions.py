"""Processes the tests start in sessions of their own, so a SIGKILL can take a whole run (CLI,
language host, provider) at once, as when a pod is killed; and waiting on conditions, not on time."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Every wait below is this many times what an idle machine needs: a wait ends as soon as its
# condition holds, so the slack costs nothing when things work, and a loaded machine (CI beside a
# build, two busy cores) does not turn slowness into failures.
SLACK = 3.0


def wait_for(condition, timeout: float = 120, what: str = "condition", every: float = 0.3):
    deadline = time.monotonic() + timeout * SLACK
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout * SLACK:.0f} s waiting for {what}")


def session_pids(sid: int) -> list[int]:
    """Every process of a session (a process started with start_new_session has sid == its pid)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started. Pulumi puts its plugins in process groups of
    their own, but they stay in the session."""
    for _ in range(3):  # a member may be forking as we go
        for pid in session_pids(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not session_pids(process.pid), 30, "the killed session's processes to go", 0.05)


class Watch:
    """One `gitops watch` subprocess with its log file."""

    def __init__(self, project, log: Path, *args: str, env: dict | None = None):
        self.project, self.log = project, log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gitops", "--project-dir", str(project.root), "watch", "--stack", project.stack,
             "--log-format", "json", *args],
            env={**project.env, **(env or {})}, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def events(self) -> list[dict]:
        lines = [line for line in self.log.read_text().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]  # every line must be one JSON object

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e["event"] == event)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_session()
        return self.process.returncode

    def kill_session(self) -> None:
        kill_session(self.process)
