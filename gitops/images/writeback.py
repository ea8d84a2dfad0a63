"""Write image tag updates back to the config repo: one commit on top of the branch head, pushed
without force; when someone else pushed first, the caller's edit is re-applied on the new head.

The work happens in a bare cache clone, with git plumbing: the changed blobs go into a private
index read from the fetched head's tree, and `commit-tree` makes the commit from it. There is no
work tree to get dirty, and the commit is exactly the head's tree plus the changed files. Every
step runs the git CLI, so a push is judged by its porcelain output and exit code.
"""
from __future__ import annotations

import fcntl
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypedDict, Unpack

from ..errors import SettingsError, SourceError
from ..paths import cache_root
from ..source.bare import bare_clone, git_env, read_blobs
from ..text import last_lines
from ..urls import is_remote, redact

Edit = Callable[[str, bytes], bytes | None]
"""Given a file's path and its content at the head, the new content (None or the same: unchanged)."""

_NETWORK_TIMEOUT_S = 60
_LOCAL_TIMEOUT_S = 60
_BACKOFF_FIRST_S = 0.2
_BACKOFF_CAP_S = 3.0
# Push results that mean "the branch moved since we fetched": fetch again and re-apply.
_RACE_REASONS = ("fetch first", "non-fast-forward", "stale info")
_REMOTE_RACE = ("but expected", "cannot lock ref")
_EDITABLE_MODES = ("100644", "100755")  # symlinks and submodules are never edited


class _RunOptions(TypedDict, total=False):
    input: bytes | None
    env: dict[str, str] | None
    timeout: float
    check: bool
    ref: str | None


@dataclass(frozen=True)
class Author:
    """Author and committer of write-back commits."""

    name: str
    email: str

    def __post_init__(self) -> None:
        for field, value in (("name", self.name), ("email", self.email)):
            if not value.strip() or any(c in value for c in "<>\n"):
                raise SettingsError(f"write-back author {field} {value!r} is empty or has <, > or a newline")


@dataclass(frozen=True)
class WriteBack:
    """Where write-back commits go."""

    repo: str
    """Remote URL or local path of the config repo, as GitSource takes it."""
    branch: str = "HEAD"
    """The branch whose files are edited; `HEAD` is the remote's default branch, resolved to its name."""
    push_branch: str | None = None
    """Push here instead, for review: created from `branch`'s head when missing, else built on its own head."""
    author: Author = Author("gitops", "gitops@localhost")
    max_attempts: int = 5
    """Fetch-edit-push rounds before giving up on a branch that keeps moving."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise SettingsError(f"write-back max attempts must be at least 1, not {self.max_attempts}")


@dataclass(frozen=True)
class WriteResult:
    commit: str | None
    """The pushed commit; None when the edit changed nothing (no empty commits)."""
    branch: str
    """The branch pushed to (or that would have been), by name."""
    attempts: int
    """Rounds used: 1 unless the branch moved between fetch and push."""
    files: tuple[str, ...] = ()
    """Paths the commit changed."""


def write_back(target: WriteBack, paths: Sequence[str], edit: Edit, message: str,
               cache_dir: Path | None = None) -> WriteResult:
    """Apply `edit` to `paths` at the branch head, commit as `target.author` and push.

    `edit` must be pure: after a rejected push it runs again on the newer head, so it should find
    what to change in the content it is given. Paths missing at the head are skipped. Raises
    SourceError when the remote cannot be read or refuses the push, or the branch kept moving
    for `max_attempts` rounds.
    """
    if not message.strip():
        raise ValueError("write_back needs a commit message")
    label = redact(target.repo)
    wanted = _clean_paths(paths, label)
    url = target.repo if is_remote(target.repo) else str(Path(target.repo).resolve())
    git = _Git(bare_clone(url, cache_dir or cache_root() / "writeback"), label)
    with _locked(git.git_dir):
        branch = git.default_branch() if target.branch == "HEAD" else target.branch.removeprefix("refs/heads/")
        push_to = (target.push_branch or branch).removeprefix("refs/heads/")
        reason = ""
        for attempt in range(1, target.max_attempts + 1):
            heads = git.branch_heads({branch, push_to})
            if branch not in heads:
                raise SourceError("write-back needs a branch; this one is not on the remote", repo=label, ref=branch)
            base = push_to if push_to in heads else branch
            head = git.fetch(base)
            changed = {}
            for path, (mode, data) in git.read(head, wanted).items():
                new = edit(path, data)
                if new is not None and new != data:
                    changed[path] = (mode, new)
            if not changed:
                return WriteResult(None, push_to, attempt)
            commit = git.commit(head, changed, message, target.author)
            reason = git.push(commit, push_to)
            if not reason:
                return WriteResult(commit, push_to, attempt, tuple(sorted(changed)))
            if attempt < target.max_attempts:
                time.sleep(min(_BACKOFF_CAP_S, _BACKOFF_FIRST_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        raise SourceError(f"write-back gave up after {target.max_attempts} attempts: the branch moved between "
                          f"every fetch and push (last push rejected: {reason})", repo=label, ref=push_to)


def _clean_paths(paths: Sequence[str], label: str) -> list[str]:
    cleaned = []
    for path in paths:
        pure = PurePosixPath(path.removeprefix("./"))
        if pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
            raise SourceError("write-back paths must be relative to the repo root", repo=label, path=path)
        cleaned.append(str(pure))
    return sorted(set(cleaned))


class _Git:
    """The git CLI on one bare cache clone whose `origin` is the config repo."""

    def __init__(self, git_dir: Path, label: str):
        self.git_dir, self.label = git_dir, label

    def run(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = _LOCAL_TIMEOUT_S, check: bool = True,
            ref: str | None = None) -> subprocess.CompletedProcess[bytes]:
        # LC_ALL=C: push results are recognised by git's English wording.
        full_env = {**os.environ, **git_env(), "LC_ALL": "C", **(env or {})}
        try:
            done = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], input=input, env=full_env,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise SourceError(f"git {args[0]} timed out after {timeout:.0f} s", repo=self.label, ref=ref) from e
        except FileNotFoundError as e:
            raise SourceError("the git command is not installed", repo=self.label) from e
        if check and done.returncode != 0:
            raise SourceError(f"git {args[0]} failed: {_tail(done.stderr)}", repo=self.label, ref=ref)
        return done

    def out(self, *args: str, **kwargs: Unpack[_RunOptions]) -> str:
        return self.run(*args, **kwargs).stdout.decode().strip()

    # -- the remote ------------------------------------------------------------------------------

    def default_branch(self) -> str:
        done = self.run("ls-remote", "--symref", "origin", "HEAD", timeout=_NETWORK_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise SourceError(f"cannot reach the remote: {_tail(done.stderr)}", repo=self.label, ref="HEAD")
        for line in done.stdout.decode().splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
        raise SourceError("the remote names no default branch; set the stack's ref to a branch name",
                          repo=self.label, ref="HEAD")

    def branch_heads(self, names: set[str]) -> dict[str, str]:
        refs = sorted(f"refs/heads/{name}" for name in names)
        done = self.run("ls-remote", "origin", *refs, timeout=_NETWORK_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise SourceError(f"cannot reach the remote: {_tail(done.stderr)}", repo=self.label,
                              ref=", ".join(sorted(names)))
        heads = {}
        for line in done.stdout.decode().splitlines():
            sha, _, ref = line.partition("\t")
            if ref in refs:  # ls-remote patterns also match longer refs ending the same way
                heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    def fetch(self, branch: str) -> str:
        """Fetch `branch` and return the commit it points at now, in our own ref namespace."""
        local = f"refs/writeback/heads/{branch}"
        done = self.run("fetch", "--no-tags", "origin", f"+refs/heads/{branch}:{local}",
                        timeout=_NETWORK_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise SourceError(f"fetch failed: {_tail(done.stderr)}", repo=self.label, ref=branch)
        return self.out("rev-parse", "--verify", f"{local}^{{commit}}", ref=branch)

    def push(self, commit: str, branch: str) -> str:
        """Push `commit` to `branch` without force. Returns "" when pushed, or git's reason when
        the branch moved since the fetch; any other failure raises SourceError."""
        done = self.run("push", "--porcelain", "--no-verify", "origin", f"{commit}:refs/heads/{branch}",
                        timeout=_NETWORK_TIMEOUT_S, check=False)
        if done.returncode == 0:
            return ""
        status = ""
        for line in done.stdout.decode(errors="replace").splitlines():
            if line.startswith("!\t"):
                status = line.split("\t")[-1].strip()
        reason = status[status.find("(") + 1:status.rfind(")")] if "(" in status else status
        if status.startswith("[rejected]") and any(r in reason for r in _RACE_REASONS):
            return reason
        if status.startswith("[remote rejected]") and any(r in reason for r in _REMOTE_RACE):
            return redact(reason)
        if "checked out" in reason:
            raise SourceError(f"write-back needs a bare remote or a URL: branch {branch} is checked out in this "
                              "non-bare repository, and git refuses to push to it", repo=self.label, ref=branch)
        if status:
            raise SourceError(f"push refused: {redact(status)}; {_tail(done.stderr)}", repo=self.label, ref=branch)
        raise SourceError(f"push failed: {_tail(done.stderr)}", repo=self.label, ref=branch)

    # -- reading and committing -----------------------------------------------------------------

    def read(self, commit: str, paths: list[str]) -> dict[str, tuple[str, bytes]]:
        """`path -> (mode, content)` for the regular files among `paths` at `commit`."""
        if not paths:
            return {}
        listing = self.run("ls-tree", "-z", "--full-tree", commit, "--", *paths).stdout.decode()
        wanted, entries = set(paths), []
        for entry in filter(None, listing.split("\0")):
            meta, _, path = entry.partition("\t")
            mode, kind, sha = meta.split()
            if kind == "blob" and mode in _EDITABLE_MODES and path in wanted:
                entries.append((path, mode, sha))
        if not entries:
            return {}
        contents = read_blobs(self.git_dir, [sha for _, _, sha in entries], self.label)
        return {path: (mode, data) for (path, mode, _), data in zip(entries, contents)}

    def commit(self, parent: str, changed: dict[str, tuple[str, bytes]], message: str, author: Author) -> str:
        index = Path(tempfile.mkstemp(prefix="index-", dir=self.git_dir)[1])
        try:
            env = {"GIT_INDEX_FILE": str(index)}
            index.unlink()  # read-tree wants to create it, not to find an empty file
            self.run("read-tree", parent, env=env)
            lines = []
            for path, (mode, data) in changed.items():
                sha = self.out("hash-object", "-w", "--stdin", input=data)
                lines.append(f"{mode} {sha}\t{path}\0")
            self.run("update-index", "-z", "--index-info", input="".join(lines).encode(), env=env)
            tree = self.out("write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)
        who = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
               "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email}
        # --no-gpg-sign: a signing setup in the user's git config must not stall or fail the watcher.
        return self.out("commit-tree", "--no-gpg-sign", tree, "-p", parent, "-F", "-",
                        input=message.encode(), env=who)


@contextmanager
def _locked(git_dir: Path) -> Iterator[None]:
    # Two stacks of one repo share the clone: one write-back at a time keeps refs and index sane.
    with open(git_dir.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(stderr: bytes) -> str:
    return redact(" | ".join(last_lines(stderr, 4))) or "no message from git"
