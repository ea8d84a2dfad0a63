"""Find the image fields a manifest marks for automation, and where exactly they are written.

Pure: takes a path and the file's text, returns markers (or raises ManifestError with every
problem at once). Two styles are read:

1. Flux v2 setter comments on any scalar, anywhere (Kubernetes objects, Helm-values-like
   files): `image: ghcr.io/org/app:1.2.3 # {"$imagepolicy": "flux-system:app"}` marks the
   whole image, a `:tag` suffix marks a tag-only field, `:name` a repository-only field. The
   comment must follow the value on its line (a trailing comma in flow style is fine).
2. Flux v1 annotations on workloads: `fluxcd.io/automated: "true"` turns automation on for
   every container and init container; `fluxcd.io/tag.<container>` gives one container's
   filter (`semver:~1.2`, `glob:1.2.*`, `regex:^v1\\.`); `fluxcd.io/locked: "true"` keeps the
   workload as it is (its markers are reported with `locked=True`). The `flux.weave.works/`
   prefix of older Flux v1 releases works too.

   Flux v1 picked the newest image by build time when no tag filter was given. Registries'
   tag lists carry no times, so an automated container without a filter follows the highest
   release version (`semver:*`): a choice that never moves to a pre-release or a `latest`.

Where both styles mark the same scalar, the explicit v2 comment wins.

PyYAML's tree gives each scalar's exact span but drops comments, so the comment is read from
the text after the last node that ends on the value's line.
"""
from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ManifestError, Problem, SettingsError
from .policy import TagPolicy, policy_from_flux_v1
from .reference import parse_image

FIELDS = ("image", "tag", "name")
V1_PREFIXES = ("fluxcd.io/", "flux.weave.works/")
SETTER_KEY = "$imagepolicy"
# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
CONTAINER_LISTS = ("initContainers", "containers")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# YAML's line breaks (PyYAML and libyaml count lines by these), so our line numbers agree.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_BEFORE_COMMENT = re.compile(r"[ \t]*(?:,[ \t]*)?")
_PROPERTY = re.compile(r"[&!]\S*\s+")


@dataclass(frozen=True)
class Marker:
    """One scalar that follows an image policy, located precisely enough to rewrite it."""

    path: str
    line: int
    """1-based line of the value."""
    column: int
    """0-based character offset of the value's first character (its quote, if quoted)."""
    source: str
    """The scalar exactly as written, quotes included: what a rewrite expects to find."""
    field: str
    """`image` (name and tag), `tag` or `name`."""
    value: str
    """The scalar's value, unquoted."""
    policy_ref: str
    """v2: the comment's policy (`ns:name` or `name`, no `:tag`/`:name` suffix).
    v1: `v1:<kind>/<namespace>/<name>/<container>` (namespace empty when not written)."""
    inline_policy: TagPolicy | None = None
    """v1 only: the policy the annotations give."""
    locked: bool = False
    subject: str = ""
    """`kind/namespace/name` of the object (`kind/name` without a namespace); empty outside one."""
    container: str | None = None

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts, with YAML's notion of a line break."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def find_markers(path: str, text: str | bytes) -> tuple[Marker, ...]:
    """Every marked image field of one file, in file order; ManifestError lists all problems."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError([Problem(path, 1, f"not UTF-8 text: {e.reason} at byte {e.start}")]) from e
    if "$imagepolicy" not in text and not any(p in text for p in V1_PREFIXES):
        return ()  # the common case: nothing to look for, so skip parsing
    return _Scanner(path, text).scan()


@dataclass
class _Object:
    """The Kubernetes object a node belongs to, as far as the manifest says."""

    subject: str = ""
    locked: bool = False


@dataclass
class _Scalar:
    node: yaml.ScalarNode
    obj: _Object
    container: str | None
    is_value: bool  # mapping keys are never marked


@dataclass
class _Scanner:
    path: str
    text: str
    problems: list[Problem] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)
    _offset: int = 0

    def scan(self) -> tuple[Marker, ...]:
        self._starts = line_starts(self.text)
        body = self.text
        if body.startswith("\ufeff"):
            # libyaml drops a byte-order mark from its offsets; parse without it and shift.
            body, self._offset = body[1:], 1
        if self.path.endswith(".json"):
            body = body.replace("\t", " ")  # JSON may indent with tabs, YAML may not; same length
        try:
            documents = [d for d in yaml.compose_all(body, Loader=_Loader) if d is not None]
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise ManifestError([Problem(self.path, line, f"invalid YAML: {getattr(e, 'problem', None) or e}")]) from e

        markers: list[Marker] = []
        for document in documents:
            for root, obj in self._objects(document):
                scalars: list[_Scalar] = []
                last_on_line: dict[int, tuple[int, _Scalar | None]] = {}
                self._walk(root, obj, None, None, scalars, last_on_line, set())
                v2 = self._setter_markers(last_on_line)
                markers.extend(v2)
                taken = {self._starts[m.line - 1] + m.column for m in v2}
                markers.extend(self._annotation_markers(root, obj, taken))
        if self.problems:
            raise ManifestError(self.problems)
        return tuple(sorted(markers, key=lambda m: (m.line, m.column)))

    # --- positions ---

    def _start(self, node: yaml.Node) -> int:
        start = int(node.start_mark.index) + self._offset
        if isinstance(node, yaml.ScalarNode):
            # A scalar's span starts at its anchor or tag (`&img`, `!!str`); the value follows.
            end = self._end(node)
            while start < end and self.text[start] in "&!":
                m = _PROPERTY.match(self.text, start, end)
                if m is None:
                    break
                start = m.end()
        return start

    def _end(self, node: yaml.Node) -> int:
        return int(node.end_mark.index) + self._offset

    def _line_of(self, offset: int) -> int:
        """0-based line holding `offset`."""
        return bisect.bisect_right(self._starts, offset) - 1

    def _rest_of_line(self, offset: int) -> str:
        m = _LINE_BREAK.search(self.text, offset)
        return self.text[offset:m.start() if m else len(self.text)]

    def _problem(self, node_or_offset: yaml.Node | int, message: str) -> None:
        offset = node_or_offset if isinstance(node_or_offset, int) else self._start(node_or_offset)
        self.problems.append(Problem(self.path, self._line_of(offset) + 1, message))

    # --- the tree ---

    def _objects(self, document: yaml.Node) -> Iterator[tuple[yaml.Node, _Object]]:
        """The document, or each item of a `...List` document, with what it is."""
        kind = _scalar(_get(document, "kind"))
        items = _get(document, "items")
        if kind and kind.endswith("List") and isinstance(items, yaml.SequenceNode):
            for item in items.value:
                yield item, self._object(item)
        else:
            yield document, self._object(document)

    def _object(self, node: yaml.Node) -> _Object:
        kind = _scalar(_get(node, "kind"))
        metadata = _get(node, "metadata")
        name = _scalar(_get(metadata, "name"))
        if not (kind and name):
            return _Object()
        namespace = _scalar(_get(metadata, "namespace")) or ""
        subject = f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"
        return _Object(subject=subject, locked=self._flag(metadata, "locked"))

    def _flag(self, metadata: yaml.Node | None, suffix: str) -> bool:
        annotations = _get(metadata, "annotations")
        return any((_scalar(_get(annotations, prefix + suffix)) or "").lower() == "true"
                   for prefix in V1_PREFIXES)

    def _walk(self, node: yaml.Node, obj: _Object, key: str | None, container: str | None,
              scalars: list[_Scalar], last_on_line: dict[int, tuple[int, _Scalar | None]],
              seen: set[int], *, is_value: bool = True) -> None:
        if id(node) in seen:  # an alias: the anchored node was (or will be) visited
            return
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            entry = _Scalar(node, obj, container, is_value)
            scalars.append(entry)
            self._note_end(last_on_line, node, entry)
        elif isinstance(node, yaml.MappingNode):
            if node.flow_style:
                self._note_end(last_on_line, node, None)
            for k, v in node.value:
                self._walk(k, obj, None, container, scalars, last_on_line, seen, is_value=False)
                self._walk(v, obj, _scalar(k), container, scalars, last_on_line, seen)
        elif isinstance(node, yaml.SequenceNode):
            if node.flow_style:
                self._note_end(last_on_line, node, None)
            for item in node.value:
                name = _scalar(_get(item, "name")) if key in CONTAINER_LISTS else None
                self._walk(item, obj, None, name or container, scalars, last_on_line, seen)

    def _note_end(self, last_on_line: dict[int, tuple[int, _Scalar | None]], node: yaml.Node,
                  entry: _Scalar | None) -> None:
        end = self._end(node)
        line = self._line_of(end)
        if line not in last_on_line or end >= last_on_line[line][0]:
            last_on_line[line] = (end, entry)

    # --- Flux v2 setter comments ---

    def _setter_markers(self, last_on_line: dict[int, tuple[int, _Scalar | None]]) -> list[Marker]:
        found = []
        for line, (end, entry) in sorted(last_on_line.items()):
            rest = self._rest_of_line(end)
            hash_at = rest.find("#")
            if hash_at < 0 or SETTER_KEY not in rest:
                continue
            comment = rest[hash_at + 1:].strip()
            node = entry.node if entry is not None else None
            directly_after = _BEFORE_COMMENT.fullmatch(rest[:hash_at]) is not None
            if (entry is None or not entry.is_value or not directly_after or node is None
                    or node.style not in (None, "", '"', "'") or self._start(node) == end
                    or self._line_of(self._start(node)) != line):
                self._problem(end, f"the {SETTER_KEY} comment must directly follow the one-line "
                                   f"scalar value it marks, e.g. "
                                   f"`image: repo:1.2.3 # {{\"{SETTER_KEY}\": \"ns:name\"}}`")
                continue
            ref = self._setter_ref(node, comment)
            if ref is None:
                continue
            policy_ref, kind = ref
            if kind in ("image", "name"):
                try:
                    parse_image(node.value)
                except SettingsError as e:
                    self._problem(node, f"{SETTER_KEY} {policy_ref}: {e}")
                    continue
            found.append(self._marker(node, entry, kind, policy_ref))
        return found

    def _setter_ref(self, node: yaml.ScalarNode, comment: str) -> tuple[str, str] | None:
        try:
            data = json.loads(comment)
        except ValueError as e:
            self._problem(node, f"malformed {SETTER_KEY} comment {comment!r}: not JSON ({e})")
            return None
        ref = data.get(SETTER_KEY) if isinstance(data, dict) else None
        if not isinstance(ref, str):
            self._problem(node, f"malformed {SETTER_KEY} comment {comment!r}: expected "
                                f"{{\"{SETTER_KEY}\": \"<namespace>:<policy>[:tag|:name]\"}}")
            return None
        parts = ref.split(":")
        kind = "image"
        if len(parts) >= 2 and parts[-1] in ("tag", "name"):
            kind = parts.pop()
        if len(parts) > 2 or any(not p or p != p.strip() or " " in p for p in parts):
            self._problem(node, f"malformed {SETTER_KEY} reference {ref!r}: expected "
                                "`<namespace>:<policy>` or `<policy>`, optionally followed by `:tag` or `:name`")
            return None
        return ":".join(parts), kind

    def _marker(self, node: yaml.ScalarNode, entry: _Scalar, kind: str, policy_ref: str,
                inline_policy: TagPolicy | None = None) -> Marker:
        start, end = self._start(node), self._end(node)
        line = self._line_of(start)
        return Marker(path=self.path, line=line + 1, column=start - self._starts[line],
                      source=self.text[start:end], field=kind, value=node.value, policy_ref=policy_ref,
                      inline_policy=inline_policy, locked=entry.obj.locked, subject=entry.obj.subject,
                      container=entry.container)

    # --- Flux v1 annotations ---

    def _annotation_markers(self, root: yaml.Node, obj: _Object, taken: set[int]) -> list[Marker]:
        kind = _scalar(_get(root, "kind")) or ""
        metadata = _get(root, "metadata")
        if kind not in POD_SPEC_PATHS or not self._flag(metadata, "automated"):
            return []
        pod_spec: yaml.Node | None = root
        for step in POD_SPEC_PATHS[kind]:
            pod_spec = _get(pod_spec, step)
        name = _scalar(_get(metadata, "name")) or ""
        namespace = _scalar(_get(metadata, "namespace")) or ""

        filters: dict[str, yaml.Node] = {}
        for key, value in _items(_get(metadata, "annotations")):
            for prefix in V1_PREFIXES:
                if key.startswith(prefix + "tag."):
                    filters[key[len(prefix) + 4:]] = value

        found = []
        seen_containers = []
        for list_name in CONTAINER_LISTS:
            containers = _get(pod_spec, list_name)
            for item in containers.value if isinstance(containers, yaml.SequenceNode) else []:
                container = _scalar(_get(item, "name"))
                image = _get(item, "image")
                if container is None or not isinstance(image, yaml.ScalarNode):
                    continue
                seen_containers.append(container)
                if self._start(image) in taken:
                    continue
                ref = f"v1:{kind}/{namespace}/{name}/{container}"
                spec_node = filters.get(container)
                spec = _scalar(spec_node) if spec_node is not None else "semver:*"
                where: yaml.Node = spec_node if spec_node is not None else image
                if spec is None:
                    self._problem(where, f"{obj.subject}: the tag filter for container {container} must be a string")
                    continue
                try:
                    policy = policy_from_flux_v1(image.value, spec, name=ref)
                except SettingsError as e:
                    self._problem(where, f"{obj.subject}: container {container}: {e}")
                    continue
                if (image.style not in (None, "", '"', "'")
                        or self._line_of(self._start(image)) != self._line_of(self._end(image))):
                    self._problem(image, f"{obj.subject}: container {container}: "
                                         f"the image must be a one-line scalar to be updated")
                    continue
                found.append(self._marker(image, _Scalar(image, obj, container, True), "image", ref, policy))
        for container, node in filters.items():
            if container not in seen_containers:
                known = ", ".join(seen_containers) or "none"
                self._problem(node, f"{obj.subject}: tag filter for container {container!r}, which this "
                                    f"workload does not have (containers: {known})")
        return found


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    pairs: list[tuple[yaml.Node, yaml.Node]] = node.value  # the stubs leave a node's value untyped
    for k, v in pairs:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _items(node: yaml.Node | None) -> Iterator[tuple[str, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                yield k.value, v


def _scalar(node: Any) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None
