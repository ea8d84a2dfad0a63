"""`PULUMI_BACKEND_URL`, parsed once, and the file backend's layout for one stack.

The file (diy) backend stores each blob through gocloud's `fileblob`: written to `<name>.<hex>.tmp`
beside it and renamed into place (atomic), plus, unless told otherwise, a metadata side file
`<name>.attrs` that it writes in place (not atomic). A process killed between creating and
filling that side file leaves it empty, and every later command fails to load the stack
("failed to load checkpoint: EOF"). Pulumi reads nothing it needs from the side files, so this
project turns them off with the bucket's own `metadata=skip` option on every file URL.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

FILE_SCHEME = "file://"

# Query options this project adds to a file backend URL that does not set them itself.
FILE_DEFAULT_OPTIONS = {"metadata": "skip"}


@dataclass(frozen=True)
class Backend:
    """A state backend URL. Only the file backend's layout is known here; other backends
    (Pulumi Cloud, buckets, PostgreSQL) keep their locks and files to themselves."""

    url: str

    @property
    def is_file(self) -> bool:
        return self.url.startswith(FILE_SCHEME)

    @property
    def options(self) -> dict[str, str]:
        _, _, query = self.url.partition("?")
        return dict(parse_qsl(query, keep_blank_values=True))

    def root(self, base: Path | None = None) -> Path | None:
        """The file backend's folder, resolved as the Pulumi CLI resolves it (`~`, relative paths
        against the folder the CLI runs in); None for any other backend."""
        if not self.is_file:
            return None
        path = self.url.removeprefix(FILE_SCHEME).partition("?")[0]
        path = os.path.expanduser(path)
        return Path(base or Path.cwd()) / path if not os.path.isabs(path) else Path(path)

    def with_file_defaults(self) -> Backend:
        """The URL with `FILE_DEFAULT_OPTIONS` added where the user set none; other backends as given."""
        if not self.is_file:
            return self
        options = self.options
        missing = {k: v for k, v in FILE_DEFAULT_OPTIONS.items() if k not in options}
        if not missing:
            return self
        base = self.url.partition("?")[0]
        return Backend(f"{base}?{urlencode({**options, **missing})}")

    def gitops_dir(self, project: str, stack: str, *, fallback: Path, base: Path | None = None) -> Path:
        """Where this project keeps its own files of a stack: beside a file backend's state (the
        name predates the run lock: the watcher's files came first), else under `fallback`, one
        folder per backend URL."""
        root = self.root(base)
        if root is not None:
            return root / ".gitops-watch" / project / stack
        return fallback / "watch" / hashlib.sha256(self.url.encode()).hexdigest()[:16] / project / stack

    def stack_files(self, project: str, stack: str, base: Path | None = None) -> StackFiles | None:
        root = self.root(base)
        return StackFiles(root, project, stack) if root is not None else None


# The checkpoint's possible names: plain, and the two compressions the backend can be told to use.
CHECKPOINT_SUFFIXES = (".json", ".json.gz", ".json.zst")


@dataclass(frozen=True)
class StackFiles:
    """Where the file backend keeps one stack (the project-scoped layout Pulumi has written since 3.61)."""

    root: Path
    project: str
    stack: str

    @property
    def bookkeeping(self) -> Path:
        return self.root / ".pulumi"

    @property
    def stacks_dir(self) -> Path:
        return self.bookkeeping / "stacks" / self.project

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        return tuple(self.stacks_dir / f"{self.stack}{suffix}" for suffix in CHECKPOINT_SUFFIXES)

    def checkpoint(self) -> Path | None:
        """The checkpoint the backend would read: the first that exists."""
        return next((path for path in self.checkpoints if path.is_file()), None)

    @property
    def lock_dirs(self) -> tuple[Path, ...]:
        # Project-scoped locks, and the legacy layout's.
        return (self.bookkeeping / "locks" / "organization" / self.project / self.stack,
                self.bookkeeping / "locks" / self.stack)

    @property
    def history_dir(self) -> Path:
        return self.bookkeeping / "history" / self.project / self.stack

    @property
    def backups_dir(self) -> Path:
        return self.bookkeeping / "backups" / self.project / self.stack

    @property
    def meta(self) -> Path:
        return self.bookkeeping / "meta.yaml"

    def outputs(self) -> dict[str, Any] | None:
        """The stack's outputs read straight from its checkpoint: what `pulumi stack output` gives,
        without starting the CLI; a secret output stays its ciphertext (a dict). {}: a stack with no
        checkpoint yet has none. None: this cannot say (compressed, unreadable), ask the CLI."""
        path = self.checkpoint()
        if path is None:
            return {}
        if not path.name.endswith(".json"):
            return None
        try:
            latest = (json.loads(path.read_bytes()).get("checkpoint") or {}).get("latest") or {}
        except (OSError, ValueError, AttributeError):
            return None  # the CLI will say what is wrong with it
        for resource in latest.get("resources") or []:
            if resource.get("type") == "pulumi:pulumi:Stack":
                values = resource.get("outputs") or {}
                return values if isinstance(values, dict) else None
        return {}

    def own_file(self, name: str) -> bool:
        """Whether a file name in `stacks_dir` belongs to this stack (its checkpoint, backup or tags,
        their side files and temporaries), not to another stack of the project (`prod.eu` is not `prod`'s)."""
        return re.fullmatch(rf"{re.escape(self.stack)}{_OWN_FILE}", name) is not None


# A stack's blobs in `stacks_dir`, their backups, and what fileblob writes beside them.
_OWN_FILE = r"(\.json(\.gz|\.zst)?|\.pulumi-tags)(\.bak)?(\.attrs|\.[0-9a-f]+\.tmp)?"
