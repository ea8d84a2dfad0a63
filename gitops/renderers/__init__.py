"""Renderers of folders that are not plain manifests: kustomize (as Flux builds it) and Helm."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem, ToolMissingError
from ..paths import bin_dir

# `helm template` assumes Kubernetes v1.20 unless told, and charts that require newer ones refuse
# to render (podinfo: `kubeVersion: >=1.23.0-0`). Argo CD passes the destination cluster's
# version; without a cluster to ask (`gitops render`), the version of the local control plane
# this project pins.
DEFAULT_KUBE_VERSION = "v1.36.3"


@dataclass(frozen=True)
class Capabilities:
    """What a chart sees of the cluster (`.Capabilities`): as Argo CD passes the destination
    cluster's version and served API versions to `helm template`."""

    kube_version: str = DEFAULT_KUBE_VERSION
    api_versions: tuple[str, ...] = ()
    """`group/version` and `group/version/Kind` the cluster serves, beyond Helm's built-in set."""


Ask = Callable[[], Capabilities]
"""Asked only when a chart is rendered, so a repo without one never waits on the cluster."""


def no_cluster() -> Capabilities:
    return Capabilities()


def pinned(tool: str) -> Path:
    """The renderer `tool` as `gitops tools` built it, or ToolMissingError (built then, once)."""
    found = bin_dir() / tool
    if found.is_file():
        return found
    raise ToolMissingError(tool)


@dataclass(frozen=True)
class Built:
    """One folder rendered: the YAML stream a renderer printed, or the problem that stopped it."""

    renderer: str
    """`kustomize` or `helm`."""
    root: str
    output: bytes
    problem: Problem | None
    helm_hooks: str = "refuse"
    """What becomes of Helm hooks (`gitops:helmHooks`)."""
    remote: Any = None
    """The `helm.RemoteChart` rendered, if the chart is not a folder of the repo."""

    @property
    def name(self) -> str:
        """What the stream is called in messages about it as a whole."""
        return f"{self.renderer} output of {self.root or '.'}"
