"""Bare cache clones and batch reads, the git plumbing the source and the image write-back share."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import SourceError
from ..text import last_lines
from ..urls import redact


def git_env() -> dict[str, str]:
    # Never wait on a password prompt: a watcher has no terminal.
    return {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GCM_INTERACTIVE": "never"}


def bare_clone(url: str, cache_dir: Path) -> Path:
    """One bare repository per remote URL under `cache_dir`, with `origin` set and nothing fetched yet."""
    target = cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Built aside and renamed, so a concurrent reader never sees a half-made clone.
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=cache_dir))
    env = {**os.environ, **git_env()}
    for args in (["init", "-q", "--bare", str(staging)], ["--git-dir", str(staging), "remote", "add", "origin", url]):
        done = subprocess.run(["git", *args], env=env, capture_output=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise SourceError(f"cannot make a cache clone: {' | '.join(last_lines(done.stderr, 4))}", repo=redact(url))
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target


def blob_sizes(git_dir: str | os.PathLike[str], shas: list[str], label: str) -> list[int]:
    """Sizes of blobs by id, in one `git cat-file --batch-check` round trip, reading none of them."""
    sizes = []
    lines = _cat_file(git_dir, "--batch-check", shas, label).splitlines()
    for sha, line in zip(shas, lines, strict=False):
        sizes.append(_blob_size(line.split(), sha, label))
    if len(sizes) != len(shas):
        raise SourceError("git cat-file answered for fewer objects than asked", repo=label)
    return sizes


def _cat_file(git_dir: str | os.PathLike[str], mode: str, shas: list[str], label: str) -> bytes:
    if not shas:
        return b""
    done = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", mode],
                          input="".join(f"{sha}\n" for sha in shas).encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise SourceError(f"cannot read files: {' | '.join(last_lines(done.stderr, 4))}", repo=label)
    return done.stdout


def _blob_size(header: list[bytes], sha: str, label: str) -> int:
    if len(header) != 3 or header[1] != b"blob":
        raise SourceError(f"object {sha} is missing from the repository", repo=label)
    return int(header[2])


def read_blobs(git_dir: str | os.PathLike[str], shas: list[str], label: str) -> list[bytes]:
    """Blobs by id in one `git cat-file --batch` round trip: a repo of thousands of files would
    otherwise pay one request and response per file."""
    out, position, contents = _cat_file(git_dir, "--batch", shas, label), 0, []
    for sha in shas:
        header_end = out.index(b"\n", position)
        size = _blob_size(out[position:header_end].split(), sha, label)
        contents.append(out[header_end + 1:header_end + 1 + size])
        position = header_end + 1 + size + 1  # each content is followed by a newline
    return contents
