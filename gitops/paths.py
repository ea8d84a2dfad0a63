"""Where the project keeps things outside any checkout (caches, state), each overridable."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Built tools, cached clones, the local control plane: `$GITOPS_CACHE` or `~/.cache/gitops`."""
    return Path(os.environ.get("GITOPS_CACHE") or Path.home() / ".cache" / "gitops")


def state_root() -> Path:
    """Default Pulumi state backend folder: `$GITOPS_STATE` or `~/.local/share/gitops/state`."""
    return Path(os.environ.get("GITOPS_STATE") or Path.home() / ".local" / "share" / "gitops" / "state")
