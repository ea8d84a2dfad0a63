"""Source files at a commit -> the validated desired state.

The one function both the CLI (`render`, before any engine run) and the Pulumi program call,
so what `render` prints is exactly what `up` applies.
"""
from __future__ import annotations

import gc
import posixpath
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from .errors import ManifestError, Problem
from .manifests.isolate import load_isolated, prepare
from .manifests.load import IGNORE_FILE
from .manifests.validate import validate
from .model import DesiredState
from .settings import StackSettings
from .source.git import SourceFile

# Whoever imports this reads a commit soon: the parser's process starts now, while git is read.
prepare()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing creates hundreds of thousands of objects that all stay alive; the cyclic
    collector would rescan them again and again (3x the parse time at 10,000 objects)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def desired_state_from_files(files: Sequence[SourceFile], *, repo: str, commit: str, path: str,
                             namespace: str, cluster_kinds: Sequence[str] = ()) -> DesiredState:
    """Pure: the files of one commit -> a desired state, or `ManifestError` with every problem.

    The files are untrusted: they are parsed (and `.gitopsignore` matched) in a child process with
    limits, so no commit can crash, exhaust or hang this one (manifests/isolate.py).
    """
    folder = "" if path in ("", ".") else path.strip("/")
    by_path = {f.path: f.data for f in files}
    unread = {f.path: f.unread_size for f in files if f.unread_size is not None}
    ignore_path = posixpath.join(folder, IGNORE_FILE) if folder else IGNORE_FILE
    if ignore_path in unread:
        raise ManifestError([Problem(ignore_path, 1, f"{unread[ignore_path]:,} bytes: too large to be a list of "
                                                     "patterns, and not read")])
    ignore = by_path.get(ignore_path)
    with _gc_paused():
        documents, problems = load_isolated(
            by_path, folder, (ignore_path, ignore.decode("utf-8", "replace")) if ignore is not None else None,
            sizes=unread)
        manifests = validate(documents, namespace, cluster_kinds, problems)
    return DesiredState(repo=repo, commit=commit, path=path, manifests=manifests)


class FileSource(Protocol):
    """What reading the desired state needs of a source: a `GitSource`, or a stand-in in the watcher."""

    @property
    def label(self) -> str: ...

    def read(self, commit: str, path: str = ".") -> list[SourceFile]: ...


def read_desired_state(source: FileSource, commit: str, settings: StackSettings,
                       rewrite: Callable[[list[SourceFile]], list[SourceFile]] | None = None) -> DesiredState:
    """`rewrite` changes files before they are parsed: image tags chosen in read-only mode. It reads
    the files in this process, so the commit as written is read (bounded, in a child) first: a
    commit that is refused as it is never reaches the rewrite."""
    files = source.read(commit, settings.source.path)

    def read(files: Sequence[SourceFile]) -> DesiredState:
        return desired_state_from_files(files, repo=source.label, commit=commit, path=settings.source.path,
                                        namespace=settings.program.namespace,
                                        cluster_kinds=settings.program.cluster_kinds)

    if rewrite is None:
        return read(files)
    read(files)
    return read(rewrite(files))
