"""Which kinds are cluster-scoped: built-ins, CRDs declared in the repo, and the stack's extras.

Pure. Needed before any cluster is contacted, to default namespaces and to reject a namespace
on a cluster-scoped object, which the API server would otherwise silently drop.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# (group, kind) of every cluster-scoped built-in kind of Kubernetes 1.36.
BUILTIN_CLUSTER_KINDS: frozenset[tuple[str, str]] = frozenset({
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"), ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"), ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"), ("storage.k8s.io", "VolumeAttributesClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"), ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("certificates.k8s.io", "CertificateSigningRequest"), ("certificates.k8s.io", "ClusterTrustBundle"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("resource.k8s.io", "DeviceClass"), ("resource.k8s.io", "ResourceSlice"),
    ("resource.k8s.io", "DeviceTaintRule"),
    ("internal.apiserver.k8s.io", "StorageVersion"),
    ("storagemigration.k8s.io", "StorageVersionMigration"),
    ("authentication.k8s.io", "SelfSubjectReview"), ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"), ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
})

CRD_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")


def parse_group_kind(text: str) -> tuple[str, str]:
    """`Kind.group.example.com` -> (group, Kind); a bare `Kind` is in the core group."""
    kind, _, group = text.partition(".")
    return group, kind


def crd_defines(body: Any) -> tuple[str, str, str, tuple[str, ...]] | None:
    """(group, kind, scope, versions) a CRD manifest declares, or None if it is malformed."""
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        return None
    names = spec.get("names")
    group, scope = spec.get("group"), spec.get("scope", "Namespaced")
    kind = names.get("kind") if isinstance(names, dict) else None
    if not (isinstance(group, str) and isinstance(kind, str)):
        return None
    versions = tuple(v["name"] for v in spec.get("versions") or []
                     if isinstance(v, dict) and isinstance(v.get("name"), str))
    return group, kind, str(scope), versions


class Scopes:
    """Answers "is this kind cluster-scoped?" for one desired state."""

    def __init__(self, crd_bodies: Iterable[Any], extra_cluster_kinds: Iterable[str] = ()):
        self._cluster = set(BUILTIN_CLUSTER_KINDS)
        self._cluster.update(parse_group_kind(k) for k in extra_cluster_kinds)
        for body in crd_bodies:
            defined = crd_defines(body)
            if defined and defined[2] == "Cluster":
                self._cluster.add((defined[0], defined[1]))

    def is_cluster_scoped(self, group: str, kind: str) -> bool:
        # Unknown custom kinds count as namespaced, like most CRDs; `gitops:clusterKinds` says otherwise.
        return (group, kind) in self._cluster
