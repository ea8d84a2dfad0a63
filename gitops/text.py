"""Small text helpers every layer uses for what it shows people."""
from __future__ import annotations

from pathlib import Path


def last_lines(text: str | bytes, count: int) -> list[str]:
    """The last `count` lines of a program's output that are not blank, stripped: where CLIs
    put the reason they failed."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()][-count:]


def log_tail(log: Path, lines: int = 20) -> str:
    """The end of a server's log file, for the error that says it did not start."""
    try:
        tail = last_lines(log.read_text(errors="replace"), lines) or ["(empty)"]
    except OSError:
        tail = ["(no log)"]
    return f"last lines of {log}:\n" + "\n".join(tail)
