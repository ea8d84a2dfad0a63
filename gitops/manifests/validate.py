"""Documents -> a desired state, all or nothing.

Pure. Every problem in the whole set is collected before anything is returned, so a user fixes
a broken commit in one round and no run ever applies part of a bad commit. Kubernetes' own rules
(rules.py) are held here, before any cluster is asked, for the same reason: an object the API
server refuses would otherwise fail in the middle of an apply, after others were changed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ManifestError, Problem
from ..model import Manifest, ObjectId, Origin, split_api_version
from . import rules
from .limits import MAX_APPLIED_DEPTH
from .load import Document
from .rules import show, type_name
from .scope import CRD_KIND, Scopes, crd_defines

# (group, kind, namespace, name) as the API server tells objects apart: kinds and DNS names in
# any case, and `core/v1` as `v1`, so two spellings of one object are reported as a duplicate.
_Key = tuple[str, str, str, str]


def validate(documents: Sequence[Document], default_namespace: str, cluster_kinds: Sequence[str] = (),
             problems: Sequence[Problem] = ()) -> tuple[Manifest, ...]:
    """Manifests with identities and defaulted namespaces; raises `ManifestError` with every problem."""
    found = list(problems)
    crd_bodies = [d.data for d in documents if _is_crd(d.data)]
    checker = _Checker(default_namespace, Scopes(crd_bodies, cluster_kinds),
                       rules.Kinds((d[0], d[1]) for body in crd_bodies if (d := crd_defines(body))), found)
    manifests: list[Manifest] = []
    seen: dict[_Key, Origin] = {}
    for document in documents:
        checked = checker.check(document)
        if checked is None:
            continue
        object_id, key, manifest = checked
        first = seen.get(key)
        if first is not None:
            found.append(Problem(document.path, document.line,
                                 f"{object_id.subject} ({object_id.group_kind}) is defined twice: also at {first}"))
            continue
        seen[key] = Origin(document.path, document.line)
        if manifest is not None:
            manifests.append(manifest)
    if found:
        raise ManifestError(found)
    return tuple(manifests)


def _is_crd(data: Any) -> bool:
    # The kind first: this runs for every document, and few are CRDs.
    return (isinstance(data, dict) and data.get("kind") == CRD_KIND[1] and isinstance(data.get("apiVersion"), str)
            and split_api_version(data["apiVersion"])[0] == CRD_KIND[0])


class _Checker:
    """Holds one desired state's context while each document is checked; the answers that repeat
    across thousands of documents (an apiVersion, a kind, a namespace) are worked out once."""

    def __init__(self, default_namespace: str, scopes: Scopes, kinds: rules.Kinds, problems: list[Problem]):
        self.default_namespace, self.scopes, self.kinds, self.problems = default_namespace, scopes, kinds, problems
        self._api_versions: dict[str, rules.ApiVersion] = {}
        self._kinds: dict[tuple[str, str], tuple[str | None, str | None, rules.NameRule]] = {}
        self._namespaces: dict[str, str | None] = {}

    def check(self, doc: Document) -> tuple[ObjectId, _Key, Manifest | None] | None:
        """The object's identity, its duplicate key, and the manifest if it has no problem; None
        when the document does not say which object it is."""
        data = doc.data
        if not isinstance(data, dict):
            self.problems.append(Problem(doc.path, doc.line,
                                         f"a document must be a mapping (an object), not {type_name(data)}"))
            return None
        before = len(self.problems)

        def add(field: str | None, message: str) -> None:
            self.problems.append(Problem(doc.path, doc.line_of(field) if field else doc.line, message))

        group, kind, rule = self._type(data, add)
        metadata = data.get("metadata")
        if metadata is None:
            add("metadata", "missing metadata.name")
            return None
        if not isinstance(metadata, dict):
            add("metadata", f"metadata must be a mapping, not {type_name(metadata)}")
            return None
        name = self._name(metadata, kind, rule, add)
        namespace = self._namespace(metadata, add)
        if (group, kind) not in rules.UNCHECKED_METADATA:
            for message in rules.label_problems(metadata.get("labels")):
                add("metadata.labels", message)
            for message in rules.annotation_problems(metadata.get("annotations")):
                add("metadata.annotations", message)
        size = self._size(data, add)
        if group is not None and kind is not None:
            self._kind_rules(data, group, kind, name, size, add)
        if group is None or kind is None or name is None:
            return None
        if self.scopes.is_cluster_scoped(group, kind):
            if namespace:
                add("metadata.namespace", f"{kind}/{name}: {kind} is cluster-scoped and cannot have "
                                          f"metadata.namespace ({show(namespace)})")
            namespace = ""
        elif not namespace:
            namespace = self.default_namespace
            data = {**data, "metadata": {**metadata, "namespace": namespace}}
        object_id = ObjectId(group, kind, namespace, name)
        key = (group, kind.lower(), namespace.lower(), name if rule.case_sensitive else name.lower())
        valid = len(self.problems) == before
        return object_id, key, (Manifest(object_id, data["apiVersion"], data, Origin(doc.path, doc.line))
                                if valid else None)

    def _type(self, data: dict[Any, Any],
              add: Callable[[str | None, str], None]) -> tuple[str | None, str | None, rules.NameRule]:
        """(group, kind) as the API server reads them, whatever the problems (None where unknown), and
        the rule for the kind's names."""
        api_version, kind = data.get("apiVersion"), data.get("kind")
        group: str | None = None
        if not isinstance(api_version, str) or not api_version:
            add("apiVersion", "missing apiVersion")
        else:
            parsed = self._api_versions.get(api_version)
            if parsed is None:
                parsed = self._api_versions[api_version] = rules.api_version(api_version)
            if parsed.problem:
                add("apiVersion", parsed.problem)
            group = parsed.group
        if not isinstance(kind, str) or not kind:
            add("kind", "missing kind")
            return group, None, rules.SEGMENT_NAME
        if group is None:
            if problem := rules.kind_syntax(kind):
                add("kind", f"kind {show(kind)} {problem}")
            return None, kind, rules.SEGMENT_NAME
        known = self._kinds.get((group, kind))
        if known is None:
            if problem := rules.kind_syntax(kind):
                known = (None, f"kind {show(kind)} {problem}", rules.SEGMENT_NAME)
            else:
                right = self.kinds.spelling(group, kind)
                known = (right, self.kinds.problem(group, kind), self.kinds.name_rule(group, right))
            self._kinds[(group, kind)] = known
        if known[1]:
            add("kind", known[1])
        return group, known[0], known[2]

    @staticmethod
    def _name(metadata: dict[Any, Any], kind: str | None, rule: rules.NameRule,
              add: Callable[[str | None, str], None]) -> str | None:
        name = metadata.get("name")
        if "generateName" in metadata:
            add("metadata.generateName", "metadata.generateName is not supported: GitOps needs a stable name; "
                                         "set metadata.name")
            return None
        if name is None or name == "":
            add("metadata.name" if "name" in metadata else "metadata", "missing metadata.name")
            return None
        if not isinstance(name, str):
            add("metadata.name", rules.not_a_string("metadata.name", name))
            return None
        if problem := rule.check(name):
            add("metadata.name", f"metadata.name {show(name)}{f' of this {kind}' if kind else ''} {problem}")
        return name

    def _namespace(self, metadata: dict[Any, Any], add: Callable[[str | None, str], None]) -> str | None:
        namespace = metadata.get("namespace")
        if namespace is None:
            return None
        if not isinstance(namespace, str) or not namespace:
            add("metadata.namespace", "metadata.namespace must be a non-empty string")
            return None
        if namespace not in self._namespaces:
            self._namespaces[namespace] = rules.dns1123_label(namespace)
        if problem := self._namespaces[namespace]:
            add("metadata.namespace", f"metadata.namespace {show(namespace)} {problem}")
        return namespace

    @staticmethod
    def _kind_rules(data: dict[Any, Any], group: str, kind: str, name: str | None, size: int | None,
                    add: Callable[[str | None, str], None]) -> None:
        """Rules of single kinds: the data of Secrets and ConfigMaps, the name of a CRD."""
        if group == "" and kind in ("Secret", "ConfigMap"):
            encoded, plain = ("data", "stringData") if kind == "Secret" else ("binaryData", "data")
            messages = [(f, m) for f, is_encoded in ((encoded, True), (plain, False))
                        for m in rules.data_problems(f, data.get(f), encoded=is_encoded)]
            for field, message in messages:
                add(field, message)
            if not messages:
                if kind == "ConfigMap" and data.get("data") and data.get("binaryData"):
                    for key in sorted(set(map(str, data["data"])) & set(map(str, data["binaryData"]))):
                        add("binaryData", f"binaryData key {show(key)} is also in data")
                # The data is never more bytes than the object's JSON: most objects need no count.
                counted = size is None or size > rules.DATA_MAX
                held = rules.data_size(data.get(encoded), data.get(plain)) if counted else 0
                if held > rules.DATA_MAX:
                    add(encoded if encoded in data else plain,
                        f"{kind} data is {held} bytes; Kubernetes allows at most {rules.DATA_MAX} (1 MiB)")
        elif (group, kind) == CRD_KIND and name is not None and (problem := rules.crd_name(name, data.get("spec"))):
            add("metadata.name", f"metadata.name {show(name)} of this CustomResourceDefinition {problem}")

    @staticmethod
    def _size(data: dict[Any, Any], add: Callable[[str | None, str], None]) -> int | None:
        """The object's bytes as JSON; None when it has no JSON form."""
        try:
            size, depth = rules.json_shape(data)
        except ValueError:
            add(None, "the object contains itself (a YAML alias inside its own anchor): it has no JSON form")
            return None
        if depth > MAX_APPLIED_DEPTH:
            add(None, f"the object is nested {depth:,} levels deep; the Pulumi engine applies at most "
                      f"{MAX_APPLIED_DEPTH} (its Python SDK serializes objects by recursion)")
        if size > rules.OBJECT_MAX:
            add(None, f"the object is {size} bytes as JSON; at most {rules.OBJECT_MAX} (1 MiB) is applied, to leave "
                      f"room for what the API server adds within etcd's 1.5 MiB per object")
        return size
