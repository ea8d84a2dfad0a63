"""Who holds a stack: this project's own locks, and Pulumi's lock files.

This project's locks are `fcntl.flock`s on files keyed by the stack: `watch.lock` (one watcher per
stack, held for its life) and `run.lock` (one engine run at a time, held by `gitops up` and by the
watcher around each run). The kernel drops a flock when its owner dies, however it dies, so
these can never be stale and need no expiry.

Pulumi's file backend has its own lock: a JSON file per running update under
`<backend>/.pulumi/locks/organization/<project>/<stack>/`, naming the owner's pid and host. A
SIGKILLed `pulumi up` leaves it behind, and every later `up` fails until someone runs `pulumi
cancel`. Such a file counts as a leftover only when its owner is provably gone (same host, pid not
alive); a live owner's or another host's lock is only reported.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LockError
from ..procs import pid_alive
from .backend import StackFiles


@dataclass(frozen=True)
class PulumiLock:
    path: Path
    pid: int | None
    hostname: str | None

    def owner_gone(self) -> bool:
        if self.hostname != socket.gethostname() or self.pid is None:
            return False  # cannot prove anything about another machine's process
        return not pid_alive(self.pid)


class StackLock:
    """`with StackLock(path).acquire(wait=...)`: held until released or the process dies."""

    def __init__(self, path: Path, what: str = "the stack is being watched"):
        self.path = path
        self.what = what
        """What holding it means, for the message a refused caller gets."""
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False, timeout: float | None = None, poll: float = 0.2,
                on_wait: Callable[[dict[str, Any]], None] | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> StackLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            holder = self.holder()
            if not wait or cancelled() or (deadline is not None and time.monotonic() >= deadline):
                os.close(fd)
                raise LockError(f"{self.what} by another process ({_describe(holder)}); lock file {self.path}")
            if on_wait and not told:
                on_wait(holder)
                told = True
            time.sleep(poll)
        # Who holds it, for the next one to report; the content is informative, the flock is the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "hostname": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> dict[str, Any]:
        """Who holds the lock, as its holder wrote it (informative only)."""
        try:
            value = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StackLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(holder: dict[str, Any]) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('hostname', '?')} since {holder.get('since', '?')}"


def pulumi_locks(files: StackFiles) -> list[PulumiLock]:
    """The file backend's lock files for one stack."""
    found = []
    for folder in files.lock_dirs:
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            pid = data.get("pid") if isinstance(data, dict) else None
            host = data.get("hostname") if isinstance(data, dict) else None
            found.append(PulumiLock(path, pid if isinstance(pid, int) else None,
                                    host if isinstance(host, str) else None))
    return found
