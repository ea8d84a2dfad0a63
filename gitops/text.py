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


def escape(text: str) -> str:
    """`text` with control and invisible formatting characters shown as escapes, so a hostile file
    name or value cannot start a new line, move the cursor or hide text in a message or a log."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) > 0xFF else f"\\x{ord(char):02x}")
    return "".join(out)
