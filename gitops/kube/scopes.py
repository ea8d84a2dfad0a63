"""The desired state as the stack's cluster reads it: a custom kind whose CRD is not in the repo is
namespaced or cluster-scoped as the cluster's discovery says, not by a guess. Asked only when the
commit holds such kinds, so a repo of built-in kinds and its own CRDs never waits on discovery.
A chart is rendered for the stack's cluster: its version and API versions, as Argo CD renders."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..desired import FileSource, read_desired_state
from ..manifests.scope import crd_defines, parse_group_kind
from ..model import DesiredState
from ..renderers import Capabilities
from ..settings import StackSettings
from ..source.git import SourceFile
from .api import KubeApi
from .discovery import Discovery, capabilities, discover

Rewrite = Callable[[list[SourceFile]], list[SourceFile]]


def builtin_group(group: str) -> bool:
    """Kubernetes' own API groups: their kinds' scopes are known without asking."""
    return group in ("", "apps", "batch", "autoscaling", "policy", "extensions") or group.endswith(".k8s.io")


def read_against_cluster(source: FileSource, commit: str, settings: StackSettings,
                         rewrite: Rewrite | None = None) -> DesiredState:
    with _Cluster(settings) as cluster:
        state = read_desired_state(source, commit, settings, rewrite=rewrite, capabilities=cluster.capabilities)
        declared = {parse_group_kind(k) for k in settings.program.cluster_kinds}
        for manifest in state.manifests:
            if manifest.id.group == "apiextensions.k8s.io" and manifest.id.kind == "CustomResourceDefinition":
                defined = crd_defines(manifest.body)
                if defined:
                    declared.add((defined[0], defined[1]))
        unknown = {(m.id.group, m.id.kind) for m in state.manifests
                   if not builtin_group(m.id.group) and (m.id.group, m.id.kind) not in declared}
        if not unknown:
            return state
        found = cluster.discovery()
        scoped = sorted(f"{kind}.{group}" for group, kind in unknown if found.namespaced(group, kind) is False)
        if not scoped:
            return state
        # Read again with the cluster's answer: namespaces are defaulted, or refused, as it serves them.
        program = dataclasses.replace(settings.program, cluster_kinds=(*settings.program.cluster_kinds, *scoped))
        return read_desired_state(source, commit, dataclasses.replace(settings, program=program), rewrite=rewrite,
                                  capabilities=cluster.capabilities)


class _Cluster:
    """The stack's cluster, connected to and asked at most once per read, and only if needed."""

    def __init__(self, settings: StackSettings):
        self._settings = settings
        self._api: KubeApi | None = None
        self._discovery: Discovery | None = None
        self._capabilities: Capabilities | None = None

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        if self._api is not None:
            self._api.close()

    def api(self) -> KubeApi:
        if self._api is None:
            self._api = KubeApi(self._settings.cluster.resolved_kubeconfig(), self._settings.cluster.context)
        return self._api

    def discovery(self) -> Discovery:
        if self._discovery is None:
            self._discovery = discover(self.api())
        return self._discovery

    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            self._capabilities = capabilities(self.api(), self.discovery())
        return self._capabilities
