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

from .errors import Problem
from .manifests.load import IGNORE_FILE, Document, load_documents, select_manifest_files
from .manifests.validate import validate
from .model import DesiredState
from .settings import StackSettings
from .source.git import SourceFile


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
    """Pure: the files of one commit -> a desired state, or `ManifestError` with every problem."""
    folder = "" if path in ("", ".") else path.strip("/")
    by_path = {f.path: f for f in files}
    ignore = by_path.get(posixpath.join(folder, IGNORE_FILE) if folder else IGNORE_FILE)
    chosen = select_manifest_files(by_path, folder, ignore.data.decode("utf-8", "replace") if ignore else None)
    documents: list[Document] = []
    problems: list[Problem] = []
    with _gc_paused():
        for file_path in chosen:
            docs, file_problems = load_documents(file_path, by_path[file_path].data)
            documents.extend(docs)
            problems.extend(file_problems)
        manifests = validate(documents, namespace, cluster_kinds, problems)
    return DesiredState(repo=repo, commit=commit, path=path, manifests=manifests)


class FileSource(Protocol):
    """What reading the desired state needs of a source: a `GitSource`, or a stand-in in the watcher."""

    @property
    def label(self) -> str: ...

    def read(self, commit: str, path: str = ".") -> list[SourceFile]: ...


def read_desired_state(source: FileSource, commit: str, settings: StackSettings,
                       rewrite: Callable[[list[SourceFile]], list[SourceFile]] | None = None) -> DesiredState:
    """`rewrite` changes files before they are parsed: image tags chosen in read-only mode."""
    files = source.read(commit, settings.source.path)
    if rewrite is not None:
        files = rewrite(files)
    return desired_state_from_files(files, repo=source.label, commit=commit, path=settings.source.path,
                                    namespace=settings.program.namespace, cluster_kinds=settings.program.cluster_kinds)
