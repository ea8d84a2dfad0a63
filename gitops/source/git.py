"""Read a config repository at a commit, with GitPython, never touching anyone's work tree.

Local paths are read straight from their object database. Remote URLs get one bare cache
repo each under the cache root; a ref is resolved with `ls-remote` and fetched only when its
commit is not already cached, so a reconcile whose ref has not moved makes no fetch.
"""
from __future__ import annotations

import contextlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import git

from ..errors import ManifestError, Problem, SourceError
from ..paths import cache_root
from ..text import escape, last_lines
from ..urls import is_remote, normalized, redact
from .bare import bare_clone, blob_sizes, git_env, read_blobs
from .checkout import scratch_tree

_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_NETWORK_TIMEOUT_S = 60


# Files larger than this are not read into memory. No manifest can be that large (the parse reads
# at most 32 MiB a file: manifests/limits.py MAX_FILE_BYTES), and a config repo's other large files
# (archives, images) are never needed: a commit holding a gigabyte costs no gigabyte here.
READ_LIMIT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """A file of the config repo at one commit; `path` is relative to the repo root."""

    path: str
    data: bytes
    unread_size: int | None = None
    """Set (to its size) for a file over READ_LIMIT_BYTES, which was not read: `data` is empty."""

    @property
    def size(self) -> int:
        return len(self.data) if self.unread_size is None else self.unread_size


class GitSource:
    """One config repository. Cheap to create; all state lives in git itself."""

    def __init__(self, repo: str, cache_dir: Path | None = None):
        self.repo = repo
        self.label = redact(repo)
        if is_remote(repo):
            self._git_repo = git.Repo(bare_clone(repo, cache_dir or cache_root() / "repos"))
            self._remote = True
        else:
            try:
                self._git_repo = git.Repo(repo)
            except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
                raise SourceError("not a git repository", repo=self.label) from e
            self._remote = False

    # -- resolving refs -------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The commit SHA that `ref` (branch, tag, commit, `HEAD`) points at now."""
        if not self._remote:
            return self._required_commit(ref)
        if _SHORT_SHA.match(ref) and (cached := self._local_commit(ref)):
            return cached  # commits never move: no network at all
        sha = self._ls_remote(ref)
        if sha is None:
            if not _SHORT_SHA.match(ref):
                raise SourceError("ref not found on the remote", repo=self.label, ref=ref)
            self._fetch(ref, all_refs=True)  # a commit no branch or tag names directly
            return self._required_commit(ref)
        if self._local_commit(sha) is None:
            self._fetch(ref)
            if self._local_commit(sha) is None:
                raise SourceError(f"fetched, but commit {sha[:12]} is still missing", repo=self.label, ref=ref)
        return sha

    def _required_commit(self, ref: str) -> str:
        commit = self._local_commit(ref)
        if commit is None:
            raise SourceError("ref not found", repo=self.label, ref=ref)
        return commit

    def _local_commit(self, ref: str) -> str | None:
        try:
            return str(self._git_repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
        except git.GitCommandError:
            return None

    def _ls_remote(self, ref: str) -> str | None:
        try:
            out = str(self._git_repo.git.ls_remote("origin", env=git_env(), kill_after_timeout=_NETWORK_TIMEOUT_S))
        except git.GitCommandError as e:
            raise SourceError(f"cannot reach the remote: {_last_line(e)}", repo=self.label, ref=ref) from e
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        # An annotated tag's commit is its peeled entry (`^{}`); a branch wins over a tag of the same name.
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
            if candidate in refs:
                return refs[candidate]
        return None

    def _fetch(self, ref: str, all_refs: bool = False) -> None:
        # Fetched commits are kept under refs/gitops/ so git's gc never drops them.
        specs = (["+refs/heads/*:refs/gitops/heads/*", "+refs/tags/*:refs/gitops/tags/*"] if all_refs
                 else [f"+{ref}:refs/gitops/{ref.removeprefix('refs/')}"])
        try:
            self._git_repo.git.fetch("--no-tags", "origin", *specs,
                                     env=git_env(), kill_after_timeout=_NETWORK_TIMEOUT_S)
        except git.GitCommandError as e:
            raise SourceError(f"fetch failed: {_last_line(e)}", repo=self.label, ref=ref) from e

    # -- reading files --------------------------------------------------------------------------

    def tree(self, commit: str) -> contextlib.AbstractContextManager[Path]:
        """The whole tree of `commit` in a scratch folder, for renderers that read folders."""
        return scratch_tree(str(self._git_repo.git_dir), commit, self.label)

    def read(self, commit: str, path: str = ".") -> list[SourceFile]:
        """Every file under the folder `path` at `commit`, in path order. Symlinks inside the repo are
        followed, to files and folders, with the link's path kept; one that leads outside the repo,
        dangles or loops is a problem at the link, and a `path` that is no folder is one too."""
        folder = normalized(path)
        tree = _Tree(self, commit)
        real = tree.resolve(folder, shown=folder or ".") if folder else ""
        if folder and (tree.entry(real) or ("", "", ""))[1] != "tree":
            raise ManifestError([Problem(folder, 1, f"gitops:path {path!r} is not a folder at commit {commit[:12]}")])
        blobs: list[tuple[str, str]] = []
        tree.collect(real, folder, blobs, seen=set())
        sizes = blob_sizes(self._git_repo.git_dir, [sha for _, sha in blobs], self.label)
        wanted = [sha for (_, sha), size in zip(blobs, sizes) if size <= READ_LIMIT_BYTES]
        contents = iter(read_blobs(self._git_repo.git_dir, wanted, self.label))
        files = [SourceFile(file_path, next(contents)) if size <= READ_LIMIT_BYTES
                 else SourceFile(file_path, b"", unread_size=size) for (file_path, _), size in zip(blobs, sizes)]
        files.sort(key=lambda f: f.path)
        return files

    def _ls_tree(self, commit: str, *args: str) -> list[tuple[str, str, str, str]]:
        """(mode, type, sha, path) entries of `git ls-tree`."""
        try:
            listing = str(self._git_repo.git.ls_tree("-z", "--full-tree", commit, *args))
        except git.GitCommandError as e:
            raise SourceError(f"cannot read commit: {_last_line(e)}", repo=self.label, ref=commit) from e
        entries = []
        for entry in filter(None, listing.split("\0")):
            meta, _, entry_path = entry.partition("\t")
            mode, kind, sha = meta.split()
            entries.append((mode, kind, sha, entry_path))
        return entries


SYMLINK = "120000"
# Links followed in a row before giving up, as Linux's MAXSYMLINKS.
MAX_SYMLINK_HOPS = 40


class _Tree:
    """One commit's tree, looked up path by path, following symlinks the way a checkout would."""

    def __init__(self, source: GitSource, commit: str):
        self.source, self.commit = source, commit
        self._entries: dict[str, tuple[str, str, str] | None] = {}

    def entry(self, path: str) -> tuple[str, str, str] | None:
        """(mode, type, sha) of `path`, or None when the commit has nothing there."""
        if path not in self._entries:
            found = self.source._ls_tree(self.commit, "--", path) if path else []
            self._entries[path] = next(((m, k, s) for m, k, s, p in found if p == path), None)
        return self._entries[path] if path else ("040000", "tree", "")

    def resolve(self, path: str, shown: str, hops: int = 0) -> str:
        """The real path behind `path`, with every symlink along it followed."""
        real = ""
        for part in path.split("/"):
            candidate = posixpath.join(real, part) if real else part
            found = self.entry(candidate)
            if found is None:
                raise ManifestError([Problem(shown, 1, f"{candidate!r} does not exist at commit {self.commit[:12]}")])
            mode, _, sha = found
            if mode != SYMLINK:
                real = candidate
                continue
            if hops >= MAX_SYMLINK_HOPS:
                raise ManifestError([Problem(shown, 1, f"more than {MAX_SYMLINK_HOPS} symlinks in a row (a loop?)")])
            target = read_blobs(self.source._git_repo.git_dir, [sha], self.source.label)[0].decode(errors="replace")
            joined = posixpath.normpath(posixpath.join(real, target)) if not target.startswith("/") else target
            if joined.startswith("/") or joined == ".." or joined.startswith("../"):
                raise ManifestError([Problem(shown, 1, f"symlink {candidate!r} points outside the repository "
                                                       f"({escape(target)!r}); it is not followed")])
            real = self.resolve("" if joined == "." else joined, shown, hops + 1)
        return real

    def collect(self, real: str, shown: str, into: list[tuple[str, str]], seen: set[str]) -> None:
        """Every file below the real folder `real`, named as below `shown` (the path as the user wrote it)."""
        if real in seen:
            raise ManifestError([Problem(shown or ".", 1, "a symlink leads back into a folder it is in (a loop)")])
        seen = seen | {real}
        for mode, kind, sha, entry_path in self.source._ls_tree(self.commit, "-r", "--", real or "."):
            relative = entry_path[len(real) + 1:] if real else entry_path
            named = posixpath.join(shown, relative) if shown else relative
            if kind != "blob":
                continue  # submodules are not part of the desired state
            if mode != SYMLINK:
                into.append((named, sha))
                continue
            target = self.resolve(entry_path, shown=named)
            found = self.entry(target)
            if found is not None and found[1] == "tree":
                self.collect(target, named, into, seen)
            elif found is not None:
                into.append((named, found[2]))


    # -- the cache ------------------------------------------------------------------------------


def _last_line(error: git.GitCommandError) -> str:
    text = last_lines(str(error.stderr or error), 1)
    return redact(text[0].removeprefix("stderr: ").strip("'")) if text else "git failed"
