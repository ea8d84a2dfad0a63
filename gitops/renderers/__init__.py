"""Renderers of folders that are not plain manifests: kustomize (as Flux builds it) and Helm."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Problem


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
