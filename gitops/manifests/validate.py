"""Documents -> a desired state, all or nothing.

Pure. Every problem in the whole set is collected before anything is returned, so a user fixes
a broken commit in one round and no run ever applies part of a bad commit.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ManifestError, Problem
from ..model import Manifest, ObjectId, Origin, split_api_version
from .load import Document
from .scope import CRD_KIND, Scopes


def validate(documents: Sequence[Document], default_namespace: str, cluster_kinds: Sequence[str] = (),
             problems: Sequence[Problem] = ()) -> tuple[Manifest, ...]:
    """Manifests with identities and defaulted namespaces; raises `ManifestError` with every problem."""
    found = list(problems)
    crd_bodies = [d.data for d in documents if _group_kind(d.data) == CRD_KIND]
    scopes = Scopes(crd_bodies, cluster_kinds)
    manifests: list[Manifest] = []
    seen: dict[ObjectId, Origin] = {}
    for document in documents:
        manifest = _to_manifest(document, default_namespace, scopes, found)
        if manifest is None:
            continue
        first = seen.get(manifest.id)
        if first is not None:
            found.append(Problem(document.path, document.line,
                                 f"{manifest.id.subject} ({manifest.id.group_kind}) is defined twice: also at {first}"))
            continue
        seen[manifest.id] = manifest.origin
        manifests.append(manifest)
    if found:
        raise ManifestError(found)
    return tuple(manifests)


def _group_kind(data: Any) -> tuple[str, str] | None:
    if (not isinstance(data, dict) or not isinstance(data.get("apiVersion"), str)
            or not isinstance(data.get("kind"), str)):
        return None
    return split_api_version(data["apiVersion"])[0], data["kind"]


def _to_manifest(doc: Document, default_namespace: str, scopes: Scopes, problems: list[Problem]) -> Manifest | None:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(Problem(doc.path, doc.line,
                                f"a document must be a mapping (an object), not {_type_name(data)}"))
        return None
    before = len(problems)
    api_version, kind, metadata = data.get("apiVersion"), data.get("kind"), data.get("metadata")
    if not isinstance(api_version, str) or not api_version:
        problems.append(Problem(doc.path, doc.line_of("apiVersion"), "missing apiVersion"))
    elif api_version.count("/") > 1 or not split_api_version(api_version)[1]:
        problems.append(Problem(doc.path, doc.line_of("apiVersion"), f"malformed apiVersion {api_version!r}"))
    if not isinstance(kind, str) or not kind:
        problems.append(Problem(doc.path, doc.line_of("kind"), "missing kind"))
    if not isinstance(metadata, dict):
        problems.append(Problem(doc.path, doc.line_of("metadata"), "missing metadata.name"))
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if "generateName" in metadata:
        problems.append(Problem(doc.path, doc.line_of("metadata.generateName"),
                                "metadata.generateName is not supported: GitOps needs a stable name; "
                                "set metadata.name"))
    elif not isinstance(name, str) or not name:
        problems.append(Problem(doc.path,
                                doc.line_of("metadata.name") if "name" in metadata else doc.line_of("metadata"),
                                "missing metadata.name"))
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        problems.append(Problem(doc.path, doc.line_of("metadata.namespace"),
                                "metadata.namespace must be a non-empty string"))
    if len(problems) > before:
        return None
    assert isinstance(api_version, str) and isinstance(kind, str) and isinstance(name, str)
    group = split_api_version(api_version)[0]
    if scopes.is_cluster_scoped(group, kind):
        if namespace:
            subject = f"{kind}/{name}"
            problems.append(Problem(doc.path, doc.line_of("metadata.namespace"),
                                    f"{subject}: {kind} is cluster-scoped and cannot have metadata.namespace "
                                    f"({namespace!r})"))
            return None
        namespace = ""
    elif not namespace:
        namespace = default_namespace
        data = {**data, "metadata": {**metadata, "namespace": namespace}}
    return Manifest(ObjectId(group, kind, namespace, name), api_version, data, Origin(doc.path, doc.line))


def _type_name(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)
