"""Repository and API locations as text: local path or URL, and URLs safe to print."""
from __future__ import annotations

import posixpath
import re


def is_remote(repo: str) -> bool:
    """A URL (`https://`, `ssh://`, `file://`) or git's scp-like `git@host:org/repo`; else a local path."""
    head = repo.split("/", 1)[0]
    return "://" in repo or (":" in head and "@" in head)


def redact(text: str) -> str:
    """Drop credentials from `https://user:token@host/...` (wherever they appear in `text`)
    before it reaches any message."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def normalized(path: str) -> str:
    """A folder of the repo as written (`./apps/`, `apps/../apps`, `/apps`) -> `apps`; the root is ``.
    `..` cannot climb above the root."""
    clean = posixpath.normpath("/" + path.strip()).lstrip("/")
    return "" if clean == "." else clean
