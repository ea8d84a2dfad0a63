"""A commit's whole tree as files on disk, for renderers that read a folder (kustomize, Helm).

The tree is untrusted: `git archive` gives it as a tar stream, and only what stays inside the
scratch folder is written. Links that lead outside it are left out (a renderer then finds the
file missing, and says so), as are files too large for any manifest and anything past the
total limit. Nothing is ever checked out into anyone's work tree.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from ..text import last_lines

# A config repo's whole tree, as a renderer may need it (an overlay's bases live anywhere in it).
# Flux's source-controller artifacts are bounded the same way (its default is 50 MiB; a
# monorepo with charts and docs is larger), far above the commit's manifests limit.
MAX_TREE_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 32 * 1024 * 1024  # source.git.READ_LIMIT_BYTES: never more than any manifest


@contextlib.contextmanager
def scratch_tree(git_dir: str, commit: str, label: str, parent: Path | None = None) -> Iterator[Path]:
    """The tree of `commit` in a temporary folder, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="gitops-tree-", dir=parent))
    try:
        _extract(git_dir, commit, label, root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _extract(git_dir: str, commit: str, label: str, root: Path) -> None:
    process = subprocess.Popen(["git", "--git-dir", git_dir, "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    total = 0
    try:
        with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
            for member in archive:
                if member.isfile():
                    if member.size > MAX_FILE_BYTES:
                        continue
                    total += member.size
                    if total > MAX_TREE_BYTES:
                        raise SourceError(f"commit {commit[:12]} holds more than {MAX_TREE_BYTES // 2**20} MiB "
                                          "of files: too large to render", repo=label)
                try:
                    archive.extract(member, root, filter="data")
                except tarfile.FilterError:
                    continue  # a link out of the tree, or a device: not part of what may be rendered
    except tarfile.TarError as e:
        raise SourceError(f"cannot read commit {commit[:12]}: {e}", repo=label) from e
    finally:
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
        code = process.wait()
    if code != 0:
        raise SourceError(f"git archive failed: {' | '.join(last_lines(stderr, 3))}", repo=label)
