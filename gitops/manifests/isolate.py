"""Reading a commit's manifests in a child process, so that no file can take gitops down with it.

The parse of untrusted files runs in one child per commit (one per file would cost a process
start each) under an address-space and CPU limit it sets on itself, and a wall-clock deadline the
parent keeps. The child says which file it is on before it reads it, so whatever ends it (a crash
of the C parser, the memory limit, a signal) is reported as a problem of that file, and a hang as
one of the file, or of `.gitopsignore`, whose patterns are matched first. Only JSON crosses back,
a line per message decoded into plain values: never objects (no pickle).

Protocol, on the child's stdin and stdout:
  parent: a JSON line {"cpu", "folder", "ignore", "paths"}: its CPU budget, the candidate files
          and `.gitopsignore`'s text
  child:  ["selected", [index, ...]]: the candidates `.gitopsignore` keeps
  parent: a JSON line [[index, size], ...] for the files it sends (within the limits), then their bytes
  child:  ["file", index] (flushed before the file is read), then ["docs", [[line, field_lines, data],
          ...]] and ["problem", line, message] for it; ...; ["end"] once every file is read (child.py)
"""
from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..deep import recursion_room
from ..errors import Problem
from .limits import (
    CHILD_ADDRESS_SPACE_BYTES,
    IGNORE_TIMEOUT_S,
    MAX_COMMIT_BYTES,
    MAX_COMMIT_JSON_BYTES,
    MAX_DEPTH,
    MAX_OBJECT_JSON_BYTES,
    MIB,
    parse_timeout_s,
)
from .load import Document, file_too_large, manifest_candidates

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# The child finds modules where this process does, this package first, and nowhere else: no
# working directory, no environment (-I), no site hooks (-S; that also saves a third of its start).
_BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
         "from gitops.manifests.child import child_main; child_main()")
_MAX_MESSAGE_BYTES = MAX_OBJECT_JSON_BYTES + 64 * MIB  # a batch of documents, or the selection of a huge tree


def child_command() -> list[str]:
    """How the child is started: this interpreter and this package."""
    path = [_PACKAGE_ROOT, *(p for p in sys.path if p and p != _PACKAGE_ROOT)]
    flags = ["-I", "-S"] + (["-B"] if sys.flags.dont_write_bytecode else [])
    return [sys.executable, *flags, "-c", _BOOT, json.dumps(path)]


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    stderr: IO[bytes]  # a file, read only to say why the child died: a pipe could fill and stall it
    owner: int = field(default_factory=os.getpid)  # a forked copy of this process must leave it alone

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # our own child, by its pid
        self.process.wait()
        for stream in (self.process.stdout, self.process.stdin, self.stderr):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):  # a write still pending into a dead child's pipe
                    stream.close()


def _spawn(command: list[str]) -> _Child:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the child
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                   close_fds=True)
    except OSError:
        stderr.close()
        raise
    return _Child(process, stderr)


# A child started ahead of need: an interpreter takes longer to start and import the parser than
# the benchmark's whole commit takes to parse. It waits, limited, for its first line; unused, it
# ends at this process's exit, when its stdin closes.
_spare: _Child | None = None
_spare_lock = threading.Lock()


def prepare() -> None:
    """Start the child for the next commit now, so that reading it does not wait for the start."""
    global _spare
    with _spare_lock:
        if _spare is not None and _spare.process.poll() is None:
            return
        try:
            _spare = _spawn(child_command())
        except OSError:
            _spare = None  # load_isolated tries again, and reports it


def _take_spare() -> _Child:
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None and child.owner == os.getpid() and child.process.poll() is None:
        return child
    if child is not None and child.owner == os.getpid():
        child.close()
    return _spawn(child_command())


@atexit.register
def _drop_spare() -> None:
    with _spare_lock:
        if _spare is not None and _spare.owner == os.getpid():
            _spare.close()


def load_isolated(files: Mapping[str, bytes], folder: str, ignore: tuple[str, str] | None,
                  command: list[str] | None = None,
                  sizes: Mapping[str, int] | None = None,
                  rendered: Mapping[str, bytes] | None = None) -> tuple[list[Document], list[Problem]]:
    """The documents of the manifest files under `folder` (less what `ignore`, a `.gitopsignore`
    path and text, skips), and every problem, read in one child process (`command`, or the
    prepared one). `sizes` gives the true size of files the source did not read (too large);
    `rendered` streams (a renderer's output, by name) are read too, whatever `ignore` says."""
    extra = dict(rendered or {})
    candidates = manifest_candidates(files, folder) + sorted(extra)
    if not candidates:
        return [], []
    known = dict(sizes or {})
    everything = {**files, **extra}
    budget = min(sum(known.get(p, len(everything[p])) for p in candidates), MAX_COMMIT_BYTES)
    session = _Session(candidates, everything, folder, ignore, known, forced=frozenset(extra))
    try:
        child = _spawn(command) if command is not None else _take_spare()
    except OSError as e:
        return [], [Problem(candidates[0], 1, f"the manifests were not read: the parser process could not start ({e})")]
    try:
        session.run(child, IGNORE_TIMEOUT_S + parse_timeout_s(budget))
    finally:
        child.close()
    if command is None:
        prepare()  # for the next commit: a watcher reads one after another
    return session.documents, session.problems


class _Stopped(Exception):
    """The child is gone or stuck; `problem` says so, at the file it was on."""

    def __init__(self, problem: Problem):
        self.problem = problem


@dataclass
class _Session:
    """One commit's parse, from the parent's side."""

    candidates: list[str]
    files: Mapping[str, bytes]
    folder: str
    ignore: tuple[str, str] | None
    sizes: Mapping[str, int] = field(default_factory=dict)
    """Sizes of files not read (too large): they are refused by size, never sent."""
    forced: frozenset[str] = frozenset()
    """Candidates read whatever `.gitopsignore` says (rendered streams)."""
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    current: str | None = None  # the file the child said it is on
    ended: bool = False
    stderr: IO[bytes] | None = None

    def run(self, child: _Child, cpu_seconds: float) -> None:
        process = child.process
        assert process.stdin is not None and process.stdout is not None
        self.stderr = child.stderr
        try:
            self._talk(process, process.stdin, _Lines(process.stdout), cpu_seconds)
        except _Stopped as stopped:
            self.problems.append(stopped.problem)

    def _talk(self, process: subprocess.Popen[bytes], stdin: IO[bytes], stream: _Lines, cpu_seconds: float) -> None:
        ignore_text = self.ignore[1] if self.ignore else None
        header = json.dumps({"cpu": cpu_seconds, "folder": self.folder, "ignore": ignore_text,
                             "paths": self.candidates})
        _write_in_background(stdin, [header.encode("ascii") + b"\n"], close=False)
        deadline = time.monotonic() + IGNORE_TIMEOUT_S
        message = self._next(process, stream, deadline, phase="ignore")
        selected = message[1] if isinstance(message, list) and len(message) == 2 and message[0] == "selected" else None
        if not isinstance(selected, list) or not all(isinstance(i, int) and 0 <= i < len(self.candidates)
                                                     for i in selected):
            raise self._stopped(process, "the parser answered out of turn", phase="ignore")
        kept = set(selected) | {i for i, path in enumerate(self.candidates) if path in self.forced}
        chosen, sent = self._within_limits(sorted(kept))
        sizes = json.dumps([[i, len(self.files[self.candidates[i]])] for i in chosen]).encode() + b"\n"
        _write_in_background(stdin, [sizes, *(self.files[self.candidates[i]] for i in chosen)], close=True)
        deadline = time.monotonic() + parse_timeout_s(sent)
        while not self.ended:
            self._handle(self._next(process, stream, deadline, phase="parse"), process)

    def _within_limits(self, selected: list[int]) -> tuple[list[int], int]:
        """The selected files to send, and their bytes: none too large, the commit's total bounded."""
        chosen, total = [], 0
        for index in selected:
            path = self.candidates[index]
            size = self.sizes.get(path, len(self.files[path]))
            too_large = file_too_large(path, size)
            if too_large is not None:
                self.problems.append(too_large)
                continue
            total += size
            if total > MAX_COMMIT_BYTES:
                self.problems.append(Problem(path, 1, f"the manifests add up to more than {MAX_COMMIT_BYTES // MIB} "
                                                      "MiB with this file; it and the files after it were not read"))
                break
            chosen.append(index)
        return chosen, min(total, MAX_COMMIT_BYTES)

    def _handle(self, message: Any, process: subprocess.Popen[bytes]) -> None:
        if not isinstance(message, list) or not message:
            raise self._stopped(process, "the parser sent something that is not a message")
        kind = message[0]
        if kind == "docs" and self.current is not None and len(message) == 2 and isinstance(message[1], list):
            path = self.current
            for item in message[1]:
                if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int)
                        and isinstance(item[1], dict)):
                    raise self._stopped(process, "the parser sent a malformed document")
                self.documents.append(Document(path, item[0], item[2], item[1]))
        elif kind == "problem" and self.current is not None and len(message) == 3 and isinstance(message[1], int):
            self.problems.append(Problem(self.current, message[1], str(message[2])))
        elif kind == "file" and len(message) == 2 and isinstance(message[1], int) \
                and 0 <= message[1] < len(self.candidates):
            self.current = self.candidates[message[1]]
        elif kind == "end":
            self.ended = True
        else:
            raise self._stopped(process, f"the parser sent an unknown message {str(kind)[:40]!r}")

    def _next(self, process: subprocess.Popen[bytes], stream: _Lines, deadline: float, phase: str) -> Any:
        try:
            line = stream.next(deadline)
        except TimeoutError:
            raise self._timed_out(process, phase) from None
        if line is None:
            raise self._stopped(process, None, phase)
        try:
            return json.loads(line)
        except RecursionError:
            with recursion_room(MAX_DEPTH + 100):  # the child checked every document's depth
                return json.loads(line)
        except ValueError:
            raise self._stopped(process, "the parser sent something that is not JSON", phase) from None

    def _timed_out(self, process: subprocess.Popen[bytes], phase: str) -> _Stopped:
        process.kill()
        process.wait()
        if phase == "ignore" and self.ignore is not None:
            path, text = self.ignore
            line = _most_wildcards(text)
            return _Stopped(Problem(path, line, f"matching these patterns took longer than {IGNORE_TIMEOUT_S:.0f} s, "
                                                "so nothing was read: a pattern with many '*' makes the regular "
                                                f"expression behind it backtrack; simplify it (line {line} has the "
                                                "most wildcards)"))
        return _Stopped(Problem(self._blamed(), 1, "reading this file took too long and was stopped, so nothing was "
                                                   "applied; the files after it were not read"))

    def _stopped(self, process: subprocess.Popen[bytes], reason: str | None, phase: str = "parse") -> _Stopped:
        if process.poll() is None:
            process.kill()
        code = process.wait()
        if reason is None:
            if code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                reason = (f"the parser process was ended by {name} (a crash of the C YAML parser, its "
                          f"{CHILD_ADDRESS_SPACE_BYTES // MIB:,} MiB memory limit or its CPU limit)")
            else:
                said = _tail(self.stderr) if self.stderr else ""
                reason = f"the parser process exited ({code}) before it was done{said}"
        where = self._blamed() if phase == "parse" or self.ignore is None else self.ignore[0]
        return _Stopped(Problem(where, 1, f"reading this file failed: {reason}; nothing is applied, and the files "
                                          "after it were not read"))

    def _blamed(self) -> str:
        return self.current or (self.ignore[0] if self.ignore else self.candidates[0])


def _tail(stderr: IO[bytes]) -> str:
    """The last line the child wrote to stderr (a traceback's last line says what it was)."""
    try:
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - 300))
        tail = stderr.read().decode("utf-8", "replace").strip().splitlines()
    except (OSError, ValueError):
        return ""
    return f": {tail[-1][:200]}" if tail else ""


def _most_wildcards(text: str) -> int:
    lines = text.splitlines() or [""]
    counts = [sum(line.count(c) for c in "*?[") for line in lines]
    return counts.index(max(counts)) + 1


def _write_in_background(stdin: IO[bytes], chunks: list[bytes], close: bool) -> None:
    """Feed the child without blocking the parent, which keeps the deadline while reading."""
    def write() -> None:
        try:
            for chunk in chunks:
                stdin.write(chunk)
            stdin.flush()
            if close:
                stdin.close()
        except (OSError, ValueError):
            pass  # the child is gone: its reader reports why

    threading.Thread(target=write, name="gitops-parse-feed", daemon=True).start()


class _Lines:
    """Lines of the child's stdout, each waited for until a deadline."""

    def __init__(self, stdout: IO[bytes]):
        self.fd = stdout.fileno()
        self.poll = select.poll()
        self.poll.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.buffer = bytearray()
        self.ready: Iterator[bytes] = iter(())
        self.eof = False
        self.total = 0

    def next(self, deadline: float) -> bytes | None:
        """The next line; None at the end of the stream; TimeoutError past `deadline`."""
        while True:
            line = next(self.ready, None)
            if line is not None:
                return line
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.poll.poll(math.ceil(remaining * 1000)):
                raise TimeoutError
            chunk = os.read(self.fd, 1 << 20)
            self.total += len(chunk)
            if not chunk or self.total > MAX_COMMIT_JSON_BYTES + _MAX_MESSAGE_BYTES:
                self.eof = True
                continue
            self.buffer += chunk
            end = self.buffer.rfind(b"\n")
            if end >= 0:
                self.ready = iter(bytes(self.buffer[:end]).split(b"\n"))
                del self.buffer[:end + 1]
            elif len(self.buffer) > _MAX_MESSAGE_BYTES:
                self.eof = True
