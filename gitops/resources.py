"""Desired state -> one resource spec per object: type, logical name, properties, dependencies.

Pure, so the modelling is tested without an engine; `program.py` only hands these to Pulumi.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .manifests.scope import CRD_KIND, crd_defines
from .model import LAST_APPLIED, DesiredState, Manifest, ObjectId, is_secret
from .settings import StackSettings

# Changing `apiVersion` (v1beta1 -> v1) must update an object in place, not delete and re-create
# it, so each resource aliases its type at the other versions its kind has had: the provider's
# own list for built-in kinds, the CRD's versions for custom kinds defined in the repo, and these
# common ones for custom kinds whose CRD lives elsewhere. Each alias costs the engine a lookup,
# so the lists stay as short as the facts allow.
COMMON_VERSIONS = ("v1alpha1", "v1beta1", "v1beta2", "v1", "v2beta1", "v2")
SECRET_FIELDS = ("data", "stringData")
SKIP_AWAIT = "pulumi.com/skipAwait"


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    type: str
    props: Mapping[str, Any]
    depends_on: tuple[str, ...]
    alias_types: tuple[str, ...]
    secret_fields: tuple[str, ...]
    subject: str


def type_token(group: str, version: str, kind: str) -> str:
    """The provider's own type for a GVK, e.g. `kubernetes:apps/v1:Deployment`."""
    return f"kubernetes:{group or 'core'}/{version}:{kind}"


def logical_name(object_id: ObjectId) -> str:
    """Stable across file moves and apiVersion changes; unique per object by construction."""
    scope = f"{object_id.namespace}/{object_id.name}" if object_id.namespace else object_id.name
    return f"{object_id.group or 'core'}/{object_id.kind}:{scope}"


def resource_specs(state: DesiredState, skip_await: bool = False,
                   builtin_versions: Mapping[tuple[str, str], Sequence[str]] | None = None) -> list[ResourceSpec]:
    """One spec per object. `builtin_versions` maps (group, kind) to every version the provider knows."""
    namespaces = {m.id.name: logical_name(m.id) for m in state.manifests
                  if (m.id.group, m.id.kind) == ("", "Namespace")}
    crds: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for m in state.manifests:
        if (m.id.group, m.id.kind) == CRD_KIND and (defined := crd_defines(m.body)):
            crds[(defined[0], defined[1])] = (logical_name(m.id), defined[3])
    return [_spec(m, namespaces, crds, skip_await, builtin_versions or {}) for m in state.manifests]


def _spec(manifest: Manifest, namespaces: Mapping[str, str], crds: Mapping[tuple[str, str], tuple[str, Sequence[str]]],
          skip_await: bool, builtin_versions: Mapping[tuple[str, str], Sequence[str]]) -> ResourceSpec:
    oid = manifest.id
    depends_on = []
    if oid.namespace and oid.namespace in namespaces:
        depends_on.append(namespaces[oid.namespace])
    crd = crds.get((oid.group, oid.kind))
    if crd is not None:
        depends_on.append(crd[0])
    known = builtin_versions.get((oid.group, oid.kind)) or (crd[1] if crd else COMMON_VERSIONS)
    aliases = tuple(type_token(oid.group, v, oid.kind) for v in dict.fromkeys(known) if v != manifest.version)
    props = dict(manifest.body)
    if skip_await:
        metadata = dict(props.get("metadata") or {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), SKIP_AWAIT: "true"}
        props["metadata"] = metadata
    secret = is_secret(manifest)
    secret_fields = tuple(f for f in SECRET_FIELDS if f in props) if secret else ()
    if secret:
        props["metadata"] = _without_last_applied(props.get("metadata"))
    return ResourceSpec(name=logical_name(oid), type=type_token(oid.group, manifest.version, oid.kind), props=props,
                        depends_on=tuple(depends_on), alias_types=aliases, secret_fields=secret_fields,
                        subject=oid.subject)


def _without_last_applied(metadata: Any) -> Any:
    """A Secret's metadata without model.LAST_APPLIED, which holds its values in clear (annotations
    are no Pulumi secrets): it is kubectl's bookkeeping, of no use to a server-side apply."""
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or not isinstance(annotations, dict) or LAST_APPLIED not in annotations:
        return metadata
    kept = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**metadata, "annotations": kept} if kept else {k: v for k, v in metadata.items() if k != "annotations"}


def urn(stack: str, project: str, type_: str, name: str) -> str:
    """The engine's URN of a resource registered at the top of the stack."""
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def targeted_specs(specs: Sequence[ResourceSpec], urns: Collection[str], stack: str,
                   project: str) -> list[ResourceSpec]:
    """The specs a targeted run registers: the targets, what they depend on (a Namespace, a CRD),
    and what depends on them (the engine takes a target's unregistered dependents for deletes); the
    engine keeps the untargeted ones as they are. Any other resource of the state is left alone by
    a targeted run, registered or not, so its Python registration is skipped."""
    targeted = {spec.name for spec in specs if urn(stack, project, spec.type, spec.name) in urns}
    wanted = targeted | {name for spec in specs if spec.name in targeted for name in spec.depends_on}
    wanted |= {spec.name for spec in specs if targeted.intersection(spec.depends_on)}
    return [spec for spec in specs if spec.name in wanted]


def spec_digests(specs: Sequence[ResourceSpec], stack: str, project: str) -> dict[str, str]:
    """URN -> a digest of what the engine is given for it, so two runs can tell which objects changed.
    Aliases are left out (they change no object). A Secret's digest is empty, meaning "always
    changed": no digest of its values is ever written to disk, where it would let a guess be checked."""
    return {urn(stack, project, spec.type, spec.name): "" if spec.secret_fields
            else _digest({"type": spec.type, "props": spec.props, "dependsOn": spec.depends_on})
            for spec in specs}


def settings_digest(settings: StackSettings) -> str:
    """What of the settings reaches every resource (provider, namespace, prune, awaits): when it
    changes, every object goes through the engine again."""
    return _digest(repr((settings.program, settings.cluster)))


def _digest(value: Any) -> str:
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]
