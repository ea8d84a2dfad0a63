"""Ctrl-C in a terminal must stop the watcher after its current run, not cancel the run.

The terminal sends SIGINT to its whole foreground process group, which includes the Pulumi CLI
the Automation API starts, and the CLI would cancel the `up` itself. So when the watcher has a
controlling terminal it runs in a session of its own, and this process stays in the foreground,
turning SIGINT/SIGTERM into one SIGTERM for the watcher, which finishes the run and then stops.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

DETACHED_ENV = "GITOPS_WATCH_DETACHED"


def has_controlling_terminal() -> bool:
    if os.environ.get(DETACHED_ENV) == "1":
        return False  # already the detached watcher
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
        return True
    except OSError:
        return False


def run_detached(argv: Sequence[str]) -> int:
    """Run `gitops <argv>` in a new session and wait for it; returns its exit code."""
    child = subprocess.Popen([sys.executable, "-m", "gitops", *argv], env={**os.environ, DETACHED_ENV: "1"},
                             start_new_session=True)

    def forward(_signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    return child.wait()
