"""Read a config repository at a commit, with GitPython, never touching anyone's work tree.

Local paths are read straight from their object database. Remote URLs get one bare cache
repo each under the cache root; a ref is resolved with `ls-remote` and fetched only when its
commit is not already cached, so a reconcile whose ref has not moved makes no fetch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import git

from ..errors import SourceError
from ..paths import cache_root
from ..text import last_lines
from ..urls import is_remote, redact
from .bare import bare_clone, git_env, read_blobs

_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_NETWORK_TIMEOUT_S = 60


@dataclass(frozen=True)
class SourceFile:
    """A file of the config repo at one commit; `path` is relative to the repo root."""

    path: str
    data: bytes


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

    def read(self, commit: str, path: str = ".") -> list[SourceFile]:
        """Every file under `path` at `commit`, in path order."""
        folder = "" if path in ("", ".") else path.strip("/")
        repo = self._git_repo
        try:
            listing = str(repo.git.ls_tree("-r", "-z", "--full-tree", commit, "--", folder or "."))
        except git.GitCommandError as e:
            raise SourceError(f"cannot read commit: {_last_line(e)}", repo=self.label, ref=commit, path=path) from e
        blobs: list[tuple[str, str]] = []
        for entry in filter(None, listing.split("\0")):
            meta, _, file_path = entry.partition("\t")
            _mode, kind, sha = meta.split()
            if kind == "blob":  # submodules are not part of the desired state
                blobs.append((file_path, sha))
        contents = read_blobs(self._git_repo.git_dir, [sha for _, sha in blobs], self.label)
        files = [SourceFile(file_path, data) for (file_path, _), data in zip(blobs, contents)]
        if not files and folder and not self._is_tree(commit, folder):
            raise SourceError("path not found in the commit", repo=self.label, ref=commit, path=path)
        files.sort(key=lambda f: f.path)
        return files

    def _is_tree(self, commit: str, folder: str) -> bool:
        try:
            return str(self._git_repo.git.cat_file("-t", f"{commit}:{folder}")) == "tree"
        except git.GitCommandError:
            return False

    # -- the cache ------------------------------------------------------------------------------


def _last_line(error: git.GitCommandError) -> str:
    text = last_lines(str(error.stderr or error), 1)
    return redact(text[0].removeprefix("stderr: ").strip("'")) if text else "git failed"
