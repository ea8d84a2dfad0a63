"""What the watcher leaves for people: log lines, the status file, and a record folder per run."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from ..engine import event_json
from .status import utc


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


class Record:
    """`runs/<time>-<action>-<commit>/`: the engine's events as they come, and a summary at the end."""

    def __init__(self, runs: Path, action: str, commit: str):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
        self.path = runs / f"{stamp}-{action}-{commit[:12]}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.started_at, self.started_epoch = utc(), time.time()
        self._events = (self.path / "events.jsonl").open("w")

    def engine_event(self, event: Any) -> None:
        """One of the engine's typed events, as a JSON line (secrets come masked from the engine)."""
        self._events.write(json.dumps(event_json(event), default=str) + "\n")

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        self._events.close()
        done = {**summary, "started_at": self.started_at, "started_epoch": self.started_epoch,
                "finished_at": utc(), "finished_epoch": time.time()}
        write_json(self.path / "summary.json", done)
        return {**done, "record": str(self.path)}
