"""Where the project keeps things outside any checkout, each overridable, and the environment
that puts the pinned binaries first. Pure path arithmetic on the environment: nothing is created."""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def cache_root() -> Path:
    """Built tools, cached clones, the local control plane: `$GITOPS_CACHE` or `~/.cache/gitops`."""
    return Path(os.environ.get("GITOPS_CACHE") or Path.home() / ".cache" / "gitops").expanduser()


def state_root() -> Path:
    """Default Pulumi state backend folder: `$GITOPS_STATE` or `~/.local/share/gitops/state`."""
    return Path(os.environ.get("GITOPS_STATE") or Path.home() / ".local" / "share" / "gitops" / "state").expanduser()


def cluster_root() -> Path:
    """The local control plane's data, certificates, logs and kubeconfig: `$GITOPS_CLUSTER_DIR`,
    else `cluster/` in the cache root."""
    given = os.environ.get("GITOPS_CLUSTER_DIR")
    return Path(given).expanduser() if given else cache_root() / "cluster"


def bin_dir() -> Path:
    """One folder with every pinned binary. Named "bin" so that the Automation API's
    `PulumiCommand(root=bin_dir().parent)` finds `bin/pulumi`."""
    return cache_root() / "bin"


def tool_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the pinned binaries first on PATH."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join(p for p in (str(bin_dir()), env.get("PATH", "")) if p)
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    # Fail fast rather than try a download that cannot succeed here.
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    # Without a `virtualenv` option in Pulumi.yaml the language host runs $PULUMI_PYTHON_CMD,
    # else python3 from PATH, which need not have the SDK; the interpreter running gitops has it.
    env.setdefault("PULUMI_PYTHON_CMD", sys.executable)
    return env
