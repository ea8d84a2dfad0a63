"""Data nested as deep as Kubernetes takes (10,000 levels), handled by code that recurses.

PyYAML's emitter and the JSON encoder and decoder recurse once per level: Python's default
recursion limit (1,000) and the 8 MiB stack of the main thread are sized for programs, not for
hostile data. These run such code with the room it needs, for the call's duration only.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

# Below this many levels, Python's defaults suffice and no thread is started.
_SHALLOW = 200
# C frames of the emitter and the JSON codecs: a few hundred bytes a level, doubled for safety.
_STACK_BYTES_PER_LEVEL = 16 * 1024
_STACK_BYTES_MIN = 32 * 1024 * 1024


def nesting_depth(value: Any) -> int:
    """Levels of dicts and lists in `value` (a scalar is 0, `{}` is 1), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if type(node) is dict:
            members: Any = node.values()
        elif type(node) is list:
            members = node
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((member, depth + 1) for member in members if type(member) is dict or type(member) is list)
    return deepest


@contextmanager
def recursion_room(depth: int) -> Iterator[None]:
    """Let code recurse `depth` levels beyond the usual, for the call's duration (then put back)."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, depth + 2_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def call_deep(function: Callable[[], T], depth: int) -> T:
    """`function()` with room to recurse `depth` levels: in a thread with a stack that large."""
    if depth < _SHALLOW:
        return function()
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with recursion_room(depth * 4):
                result.append(function())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    previous = threading.stack_size(max(_STACK_BYTES_MIN, depth * _STACK_BYTES_PER_LEVEL))
    try:
        worker = threading.Thread(target=run, name="gitops-deep")
        worker.start()
    finally:
        threading.stack_size(previous)
    worker.join()
    if failure:
        raise failure[0]
    return result[0]
