"""Source files at a commit -> the validated desired state.

The one function both the CLI (`render`, before any engine run) and the Pulumi program call,
so what `render` prints is exactly what `up` applies.
"""
from __future__ import annotations

import gc
import posixpath
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from .errors import ManifestError, Problem
from .manifests.isolate import load_isolated, prepare
from .manifests.load import IGNORE_FILE, Document
from .manifests.validate import validate
from .model import DesiredState
from .renderers import Ask, Built, helm, kustomize, no_cluster
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
                             namespace: str, cluster_kinds: Sequence[str] = (),
                             built: Sequence[Built] = ()) -> DesiredState:
    """Pure: the files of one commit -> a desired state, or `ManifestError` with every problem.

    The files are untrusted: they are parsed (and `.gitopsignore` matched) in a child process with
    limits, so no commit can crash, exhaust or hang this one (manifests/isolate.py). `built` are
    kustomize builds of folders below `path`, whose own files are then not read as manifests.
    """
    roots = [b.root for b in built]
    if roots:
        files = [f for f in files if not kustomize.under(f.path, roots)]
    problems_before = [b.problem for b in built if b.problem is not None]
    streams = {b.name: b.output for b in built if b.problem is None}
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
            sizes=unread, rendered=streams)
        by_name = {b.name: b for b in built}
        templates = {b.name: helm.sources(b.output) for b in built if b.renderer == "helm"}
        documents = [_placed(d, by_name[d.path], templates.get(d.path, ())) if d.path in by_name else d
                     for d in documents]
        for chart in (b for b in built if b.renderer == "helm"):
            documents, refused = helm.without_hooks(documents, chart.helm_hooks)
            problems += refused
        manifests = validate(documents, namespace, cluster_kinds, problems_before + problems)
    return DesiredState(repo=repo, commit=commit, path=path, manifests=manifests)


class FileSource(Protocol):
    """What reading the desired state needs of a source: a `GitSource`, or a stand-in in the watcher."""

    @property
    def label(self) -> str: ...

    def read(self, commit: str, path: str = ".") -> list[SourceFile]: ...

    def tree(self, commit: str) -> AbstractContextManager[Path]: ...


def _build(source: FileSource, commit: str, files: Sequence[SourceFile], roots: Sequence[str],
           settings: StackSettings, chart: bool, capabilities: Ask) -> list[Built]:
    """Each kustomize folder, or the chart, rendered on a scratch copy of the commit; the files
    read (rewritten by image automation, perhaps) are what the renderer sees."""
    binary = helm.binary() if chart else kustomize.binary()
    with source.tree(commit) as tree:
        for file in files:
            if file.unread_size is None and kustomize.under(file.path, roots):
                target = tree / file.path
                if target.is_file() and not target.is_symlink():
                    target.write_bytes(file.data)
        if chart:
            (root,) = roots
            return [helm.render_chart(binary, tree, root, settings.render, settings.program.namespace,
                                      capabilities())]
        remote_bases = settings.render.kustomize_remote_bases
        inflate = (helm.binary(), capabilities()) if settings.render.kustomize_helm else None
        return [Built("kustomize", root, *kustomize.build(binary, tree, root, remote_bases, inflate))
                for root in roots]


def _placed(document: Document, built: Built, templates: Sequence[tuple[int, str]]) -> Document:
    """A rendered object at the file it came from, as its renderer tells (Helm: `templates`, its
    `# Source:` lines)."""
    if built.renderer == "helm":
        return helm.relocate(document, built.root, templates, built.remote)
    return kustomize.relocate(document, built.root)


def read_desired_state(source: FileSource, commit: str, settings: StackSettings,
                       rewrite: Callable[[list[SourceFile]], list[SourceFile]] | None = None,
                       capabilities: Ask = no_cluster) -> DesiredState:
    """`rewrite` changes files before they are parsed: image tags chosen in read-only mode. It reads
    the files in this process, so the commit as written is read (bounded, in a child) first: a
    commit that is refused as it is never reaches the rewrite. `capabilities` is what a chart
    sees of the cluster, asked only if one is rendered."""
    files = source.read(commit, settings.source.path)
    folder = "" if settings.source.path in ("", ".") else settings.source.path.strip("/")
    chart = bool(settings.render.helm_chart) or helm.is_chart((f.path for f in files), folder)
    roots = [folder] if chart else kustomize.kustomize_roots((f.path for f in files), folder)

    def read(files: Sequence[SourceFile]) -> DesiredState:
        built = _build(source, commit, files, roots, settings, chart, capabilities) if roots else ()
        return desired_state_from_files(files, repo=source.label, commit=commit, path=settings.source.path,
                                        namespace=settings.program.namespace,
                                        cluster_kinds=settings.program.cluster_kinds, built=built)

    if rewrite is None:
        return read(files)
    read(files)
    return read(rewrite(files))
