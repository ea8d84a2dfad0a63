"""The child process that reads a commit's manifests (isolate.py starts it and says why).

Kept apart from isolate.py so that the child imports only what reading needs: its start is
paid on every render.
"""
from __future__ import annotations

import gc
import json
import math
import resource
import sys
import threading
from typing import IO, Any

from .limits import (
    CHILD_ADDRESS_SPACE_BYTES,
    CHILD_STACK_BYTES,
    MAX_COMMIT_JSON_BYTES,
    MAX_DEPTH,
    MAX_DOCUMENTS_PER_COMMIT,
    MAX_OBJECT_JSON_BYTES,
    MIB,
)
from .load import not_ignored, read_file

_BATCH_BYTES = MIB


def _unencodable(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON")


# json.dumps builds a new C encoder on every call; the documents of a commit all share this one
# (compact, UTF-8, no NaN; no cycle check: the loader makes none).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (_c_encoder(None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False)
           if _c_encoder is not None else None)


def _encode(value: object) -> bytes:
    if _ENCODE is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
    else:
        text = "".join(_ENCODE(value, 0))
    return text.encode("utf-8")


def child_main() -> None:
    """Limits first, then the whole exchange in a thread with a deep stack."""
    _limit(resource.RLIMIT_CORE, 0, 0)  # a crash is reported, not dumped
    _limit(resource.RLIMIT_AS, CHILD_ADDRESS_SPACE_BYTES, CHILD_ADDRESS_SPACE_BYTES)
    # The JSON encoder recurses in C once per level of nesting; the documents reaching it are at
    # most MAX_DEPTH deep, and the thread's stack has room for that many frames.
    sys.setrecursionlimit(MAX_DEPTH + 5_000)
    threading.stack_size(CHILD_STACK_BYTES)
    # The values built make no reference cycles, and the cyclic collector rescanning them as they
    # pile up would cost more than the parse itself; the address-space limit bounds them instead.
    gc.disable()
    out = open(1, "wb", buffering=1 << 20, closefd=False)  # noqa: SIM115 - lives as long as the process
    worker = threading.Thread(target=serve, args=(sys.stdin.buffer, out), name="gitops-parse")
    worker.start()
    worker.join()
    out.flush()


def _limit(which: int, soft: int, hard: int) -> None:
    """Lower a limit of this process (never raise it: an unprivileged process cannot)."""
    current = resource.getrlimit(which)[1]
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


def serve(stdin: IO[bytes], out: IO[bytes]) -> None:
    """The child's side of the protocol in isolate.py."""
    line = stdin.readline()
    if not line:
        return  # a child started ahead and never used
    header = json.loads(line)
    # The CPU budget of this commit, counted from now: the child may have waited, started ahead.
    # SIGXCPU at the soft limit, SIGKILL at the hard one should the first be caught or ignored.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(usage.ru_utime + usage.ru_stime + float(header["cpu"]))
    _limit(resource.RLIMIT_CPU, cpu, cpu + 5)
    paths: list[str] = header["paths"]
    kept = set(not_ignored(paths, header["folder"], header["ignore"]))
    _send(out, ["selected", [i for i, p in enumerate(paths) if p in kept]])
    out.flush()
    sizes = json.loads(stdin.readline())
    blobs = [(int(index), stdin.read(int(size))) for index, size in sizes]
    totals = _Totals()
    for index, data in blobs:
        _send(out, ["file", index])
        out.flush()  # so that whatever ends this process now is blamed on this file
        try:
            _file(out, paths[index], data, totals)
        except MemoryError:
            _send(out, ["problem", 1, f"reading this file needs more than the parser's "
                                      f"{CHILD_ADDRESS_SPACE_BYTES // MIB:,} MiB of memory"])
        except Exception as e:  # a bug of gitops, still reported where it happened rather than as a traceback
            _send(out, ["problem", 1, f"gitops could not read this file (an internal error, please report it): "
                                      f"{type(e).__name__}: {e}"])
        if totals.exhausted:
            break
    _send(out, ["end"])
    out.flush()


class _Totals:
    """What the commit has used so far of its limits."""

    def __init__(self) -> None:
        self.documents = 0
        self.json_bytes = 0
        self.exhausted = False


def _file(out: IO[bytes], path: str, data: bytes, totals: _Totals) -> None:
    read = read_file(path, data)
    for problem in read.problems:
        _send(out, ["problem", problem.line, problem.message])
    totals.documents += read.count
    if totals.documents > MAX_DOCUMENTS_PER_COMMIT:
        _send(out, ["problem", 1, f"the commit has more than {MAX_DOCUMENTS_PER_COMMIT:,} documents with this file; "
                                  "the files after it were not read"])
        totals.exhausted = True
        return
    encoded: list[bytes] = []
    size = 0
    for document in read.documents:
        try:
            body = _encode(document.data)
        except (ValueError, TypeError, RecursionError) as e:
            _send(out, ["problem", document.line, f"the document cannot be written as JSON: {e}"])
            continue
        totals.json_bytes += len(body)
        if totals.json_bytes > MAX_COMMIT_JSON_BYTES:
            _send(out, ["problem", document.line, f"the commit's objects add up to more than "
                                                  f"{MAX_COMMIT_JSON_BYTES // MIB} MiB as JSON here; the rest was "
                                                  "not read"])
            totals.exhausted = True
            break
        if len(body) > MAX_OBJECT_JSON_BYTES:
            _send(out, ["problem", document.line, f"the object is {len(body) / MIB:.1f} MiB as JSON; the API server "
                                                  f"accepts at most {MAX_OBJECT_JSON_BYTES // MIB} MiB"])
            continue
        encoded.append(b"[%d,%s,%s]" % (document.line, json.dumps(document.field_lines).encode("ascii"), body))
        size += len(encoded[-1])
        if size > _BATCH_BYTES:
            _send_documents(out, encoded)
            encoded, size = [], 0
    _send_documents(out, encoded)


def _send_documents(out: IO[bytes], encoded: list[bytes]) -> None:
    # Documents go in batches: each message costs the parent a decode call, and a bounded batch
    # keeps every message small enough for the parent to hold.
    if encoded:
        out.write(b'["docs",[')
        out.write(b",".join(encoded))
        out.write(b"]]\n")


def _send(out: IO[bytes], message: list[Any]) -> None:
    out.write(json.dumps(message).encode("ascii") + b"\n")
