"""What the watcher leaves for people: log lines, the status file, and a record folder per run."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO


def utc(wall: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall if wall is not None else time.time()))


class Log:
    """Text or one JSON object per line, on stderr. Callers pass counts, commits and messages,
    never object bodies, so no secret can reach a log line."""

    def __init__(self, fmt: str = "text", stream: TextIO | None = None):
        self.fmt, self.stream = fmt, stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: str, message: str = "", level: str = "info", **fields: Any) -> None:
        if self.fmt == "json":
            line = json.dumps({"ts": utc(), "level": level, "event": event, "msg": message, **fields}, default=str)
        else:
            extras = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            line = f"{utc()} {level:5} {event}: {message}" + (f" ({extras})" if extras else "")
        with self._lock:
            print(line, file=self.stream, flush=True)


def write_json(path: Path, value: object) -> None:
    # Write aside and rename: a reader (a person, /status, a test) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    os.replace(tmp, path)
