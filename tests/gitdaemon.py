"""`git daemon` serving a folder of bare repos on 127.0.0.1, for tests that need a network remote
they can take down and bring back. Started by Popen and stopped by its PID, nothing else."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    """`stop()` and `start()` simulate an outage; the port stays the same across restarts.
    With `push=True` the daemon also accepts pushes (receive-pack), with no authentication."""

    def __init__(self, base: Path, push: bool = False, env: dict[str, str] | None = None):
        self.base, self.push, self.port, self.env = base, push, free_port(), env
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 10) -> None:
        args = ["git", "daemon", "--reuseaddr", f"--base-path={self.base}", "--export-all",
                "--listen=127.0.0.1", f"--port={self.port}"]
        if self.push:
            args.append("--enable=receive-pack")
        self.process = subprocess.Popen([*args, str(self.base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"git daemon did not start listening on 127.0.0.1:{self.port}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        self.process = None
