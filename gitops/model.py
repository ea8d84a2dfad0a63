"""Values every layer shares: object identity, manifests with their origin, the desired state."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ObjectId:
    """What makes two manifests the same Kubernetes object.

    The version is deliberately absent: an object served at `v1beta1` and then `v1` is one
    object, so identity (and the Pulumi name derived from it) must not change with it.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def subject(self) -> str:
        """`kind/namespace/name` (or `kind/name` when cluster-scoped), as users write it."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def group_kind(self) -> str:
        """`Kind.group` as kubectl prints it (just `Kind` for the core group)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> ("apps", "v1"); `v1` -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True)
class Origin:
    """Where a manifest was written in the config repo, for error messages."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object as the config repo declares it (namespace already defaulted)."""

    id: ObjectId
    api_version: str
    body: Mapping[str, Any] = field(compare=False)
    origin: Origin = field(compare=False)

    @property
    def version(self) -> str:
        return split_api_version(self.api_version)[1]


@dataclass(frozen=True)
class DesiredState:
    """Everything the cluster should hold, read from one commit of the config repo."""

    repo: str
    commit: str
    path: str
    manifests: tuple[Manifest, ...]

    @property
    def subjects(self) -> list[str]:
        return [m.id.subject for m in self.manifests]


# `kubectl apply` (client-side) keeps the whole object it applied in this annotation, so a Secret
# exported from a cluster carries its values a second time, in clear, inside it.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_secret(manifest: Manifest) -> bool:
    """A core Secret: its values are hidden in every output and encrypted in state.

    Validation refuses every other spelling of a Secret (`kind: secret`, `apiVersion: core/v1`),
    but hiding its values must not depend on that: this answers yes for any spelling, in the
    identity or in the body itself, so a manifest made some other way is hidden too.
    """
    oid = manifest.id
    if _is_core_secret(oid.group, oid.kind):
        return True
    api_version, kind = manifest.body.get("apiVersion"), manifest.body.get("kind")
    return (isinstance(api_version, str) and isinstance(kind, str)
            and _is_core_secret(split_api_version(api_version)[0], kind))


def _is_core_secret(group: str, kind: str) -> bool:
    # `core` is Pulumi's name for the core group, in its type tokens.
    return group.strip().lower() in ("", "core") and kind.strip().lower() == "secret"
