"""Which kinds a cluster serves, at which versions, under which resource name, and whether they are
namespaced: the API server's aggregated discovery (two requests for the whole cluster)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterError
from ..renderers import Capabilities
from .api import KubeApi

# Aggregated discovery (GA in Kubernetes 1.30): every group, version and resource in one answer.
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str, name: str) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        scoped = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{base}{scoped}/{self.plural}/{name}"


@dataclass(frozen=True)
class Discovery:
    resources: Mapping[tuple[str, str, str], Resource]
    """(group, version, kind) -> how the cluster serves it."""

    def find(self, group: str, version: str, kind: str) -> Resource | None:
        return self.resources.get((group, version, kind))

    def namespaced(self, group: str, kind: str) -> bool | None:
        """Whether the cluster serves `kind` of `group` namespaced; None when it does not serve it."""
        for (g, _, k), resource in self.resources.items():
            if g == group and k == kind:
                return resource.namespaced
        return None


def discover(api: KubeApi) -> Discovery:
    resources: dict[tuple[str, str, str], Resource] = {}
    for path in ("/api", "/apis"):
        response = api.request("GET", path, accept=AGGREGATED)
        if response.status != 200 or not isinstance(response.body, dict):
            raise ClusterError(f"discovery of {api.server}{path} failed: {response.message}")
        if response.body.get("kind") != "APIGroupDiscoveryList":
            raise ClusterError(f"{api.server} does not serve aggregated discovery (Kubernetes 1.30 or newer needed)")
        for group in response.body.get("items") or []:
            _group(group, resources)
    return Discovery(resources)


def _group(item: Any, into: dict[tuple[str, str, str], Resource]) -> None:
    if not isinstance(item, dict):
        return
    group = str((item.get("metadata") or {}).get("name") or "")
    for version in item.get("versions") or []:
        name = str(version.get("version") or "") if isinstance(version, dict) else ""
        for resource in (version.get("resources") or []) if isinstance(version, dict) else []:
            kind = (resource.get("responseKind") or {}).get("kind") if isinstance(resource, dict) else None
            plural = resource.get("resource") if isinstance(resource, dict) else None
            if isinstance(kind, str) and isinstance(plural, str) and "/" not in plural:  # not subresources
                into[(group, name, kind)] = Resource(group, name, kind, plural, resource.get("scope") != "Cluster")


def capabilities(api: KubeApi, found: Discovery) -> Capabilities:
    """What a chart sees of this cluster: its version and every API version it serves, with and
    without the kind (`.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget"`), as Argo CD
    passes them to `helm template`."""
    response = api.request("GET", "/version")
    version = response.body.get("gitVersion") if isinstance(response.body, dict) else None
    if response.status != 200 or not isinstance(version, str) or not version.startswith("v"):
        raise ClusterError(f"{api.server}/version did not say the cluster's version: {response.message}")
    served = set()
    for group, api_version, kind in found.resources:
        prefix = f"{group}/{api_version}" if group else api_version
        served |= {prefix, f"{prefix}/{kind}"}
    return Capabilities(version, tuple(sorted(served)))
