"""The desired state as the stack's cluster reads it: a custom kind whose CRD is not in the repo is
namespaced or cluster-scoped as the cluster's discovery says, not by a guess. Asked only when the
commit holds such kinds, so a repo of built-in kinds and its own CRDs never waits on discovery."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..desired import FileSource, read_desired_state
from ..manifests.scope import crd_defines, parse_group_kind
from ..model import DesiredState
from ..settings import StackSettings
from ..source.git import SourceFile
from .api import KubeApi
from .discovery import discover

Rewrite = Callable[[list[SourceFile]], list[SourceFile]]


def builtin_group(group: str) -> bool:
    """Kubernetes' own API groups: their kinds' scopes are known without asking."""
    return group in ("", "apps", "batch", "autoscaling", "policy", "extensions") or group.endswith(".k8s.io")


def read_against_cluster(source: FileSource, commit: str, settings: StackSettings,
                         rewrite: Rewrite | None = None) -> DesiredState:
    state = read_desired_state(source, commit, settings, rewrite=rewrite)
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
    api = KubeApi(settings.cluster.resolved_kubeconfig(), settings.cluster.context)
    try:
        found = discover(api)
    finally:
        api.close()
    cluster = sorted(f"{kind}.{group}" for group, kind in unknown if found.namespaced(group, kind) is False)
    if not cluster:
        return state
    # Read again with the cluster's answer: namespaces are defaulted, or refused, as it serves them.
    program = dataclasses.replace(settings.program, cluster_kinds=(*settings.program.cluster_kinds, *cluster))
    return read_desired_state(source, commit, dataclasses.replace(settings, program=program), rewrite=rewrite)
