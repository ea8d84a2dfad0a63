"""Kubernetes' own rules for an object, checked before any cluster is asked.

Pure. Each rule takes a value and says why the API server would refuse it (None: it would not),
so a commit the cluster would refuse halfway through an apply is refused here, whole. Each rule
names its source in k8s.io/kubernetes (`pkg/apis/<group>/validation`) or k8s.io/apimachinery
(`pkg/util/validation`, `pkg/api/validation`), as of Kubernetes 1.36. Where the source is not
certain, a rule is looser than the API server: refusing an object the cluster would take is worse
than letting the cluster refuse it.

Python's `re` is not Go's RE2: a pattern is only ever run on a value already within its length
limit (no hostile megabyte reaches a backtracking match), and always with `fullmatch` (`$` would
let a trailing newline through).
"""
from __future__ import annotations

import binascii
import functools
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
TOTAL_ANNOTATIONS_MAX = 256 * 1024  # apimachinery TotalAnnotationSizeLimitB
DATA_MAX = 1024 * 1024  # core.MaxSecretSize, for Secret and ConfigMap data alike
CRONJOB_NAME_MAX = 52  # 63 - 11: the CronJob controller names each Job `<name>-<minutes>`
# The API server refuses a request body over 3 MiB and etcd a value over 1.5 MiB (its default
# --max-request-bytes), and the stored object is larger than what was sent: managedFields of
# server-side apply, status, other metadata. Those failures come from the cluster one object at a
# time, in the middle of an apply; 1 MiB of JSON, the limit Kubernetes itself sets on Secret and
# ConfigMap data, leaves that room and refuses the whole commit before anything is applied.
OBJECT_MAX = 1024 * 1024

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Kubernetes has no pattern for built-in kinds (they are Go type names); a CRD's kind must be a
# DNS-1035 label once lowercased. This is looser than both and still keeps a kind one word.
_KIND = re.compile(r"[A-Za-z][-A-Za-z0-9_]*")

LABEL_TEXT = "a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)"
SUBDOMAIN_TEXT = ("a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', each part between dots "
                  "starting and ending with a letter or digit)")
QUALIFIED_TEXT = ("letters, digits, '-', '_' and '.', starting and ending with a letter or digit, "
                  "optionally after a DNS-1123 subdomain prefix and '/' (example.com/my-key)")


def show(value: str, limit: int = 80) -> str:
    """A value quoted for a message, cut short: a hostile megabyte must not fill the screen."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def _too_long(value: str, limit: int) -> str | None:
    return f"must be at most {limit} characters (it has {len(value)})" if len(value) > limit else None


def dns1123_label(value: str) -> str | None:
    """validation.IsDNS1123Label: namespaces, Services, StatefulSets."""
    if too_long := _too_long(value, DNS1123_LABEL_MAX):
        return too_long
    return None if _DNS1123_LABEL.fullmatch(value) else f"must be {LABEL_TEXT}"


def dns1123_subdomain(value: str) -> str | None:
    """validation.IsDNS1123Subdomain: the names of most kinds, API groups, label key prefixes."""
    if too_long := _too_long(value, DNS1123_SUBDOMAIN_MAX):
        return too_long
    return None if _DNS1123_SUBDOMAIN.fullmatch(value) else f"must be {SUBDOMAIN_TEXT}"


def path_segment_name(value: str) -> str | None:
    """api/validation/path.IsValidPathSegmentName: what every name must be, as it is a URL path segment."""
    if value in (".", ".."):
        return f"may not be {value!r}"
    bad = [c for c in ("/", "%") if c in value]
    return f"may not contain {' or '.join(repr(c) for c in bad)}" if bad else None


def qualified_name(key: str) -> str | None:
    """validation.IsQualifiedName: label keys (and annotation keys, lowercased first)."""
    # The same few keys (app, app.kubernetes.io/name) are on thousands of objects: answers are
    # cached, for keys short enough to be valid, so that no hostile megabyte is kept.
    return _qualified_name(key) if len(key) <= _QUALIFIED_MAX else _qualified_name.__wrapped__(key)


_QUALIFIED_MAX = DNS1123_SUBDOMAIN_MAX + 1 + QUALIFIED_NAME_MAX


@functools.lru_cache(maxsize=4096)
def _qualified_name(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if prefix.count("/"):
        return f"must be {QUALIFIED_TEXT}, with at most one '/'"
    if slash:
        if not prefix:
            return "must not start with '/': the prefix before it is empty"
        if problem := dns1123_subdomain(prefix):
            return f"prefix {show(prefix)} {problem}"
    if not name:
        return "must have a name after the prefix" if slash else "must not be empty"
    if too_long := _too_long(name, QUALIFIED_NAME_MAX):
        return f"name part {too_long}" if slash else too_long
    return None if _QUALIFIED_NAME.fullmatch(name) else f"must be {QUALIFIED_TEXT}"


def annotation_key(key: str) -> str | None:
    """api/validation.ValidateAnnotations: a qualified name, except that case does not matter."""
    return qualified_name(key.lower())


def label_value(value: str) -> str | None:
    """validation.IsValidLabelValue: may be empty."""
    if too_long := _too_long(value, LABEL_VALUE_MAX):
        return too_long
    if not value or _QUALIFIED_NAME.fullmatch(value):
        return None
    return "must be empty or letters, digits, '-', '_' and '.', starting and ending with a letter or digit"


def config_key(key: str) -> str | None:
    """validation.IsConfigMapKey: the keys of Secret and ConfigMap data (they become file names)."""
    if too_long := _too_long(key, DNS1123_SUBDOMAIN_MAX):
        return too_long
    if not _CONFIG_KEY.fullmatch(key):
        return "must be letters, digits, '-', '_' and '.'"
    if key in (".", "..") or key.startswith(".."):
        return "must not be '.' or '..' or start with '..'"
    return None


def base64_value(text: str) -> str | None:
    """What Go's encoding/json accepts for []byte (Secret `data`, ConfigMap `binaryData`):
    standard base64 with padding; line breaks are ignored, anything else is refused."""
    data = text.replace("\r", "").replace("\n", "")
    if not data.isascii():
        return "is not base64: it has characters outside A-Z, a-z, 0-9, '+', '/' and '='"
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error as e:
        return f"is not base64: {str(e).lower()}"
    return None


def base64_decoded_length(text: str) -> int:
    """Bytes that valid base64 `text` stands for."""
    data = text.replace("\r", "").replace("\n", "")
    return len(data) // 4 * 3 - data[-2:].count("=")


@dataclass(frozen=True)
class ApiVersion:
    """An `apiVersion` as written, its group and version, and what is wrong with it."""

    group: str
    version: str
    problem: str | None = None


def api_version(text: str) -> ApiVersion:
    """`v1` (the core group) or `group/version`: the group a DNS-1123 subdomain, the version a
    DNS-1035 label (as CRD and APIService validation require), and the core group has only `v1`.
    The group comes back as the API server would read it, so that a misspelt document is still
    recognised as a duplicate of a well-spelt one in the same round."""
    group, slash, version = text.rpartition("/")
    if group.count("/") or (slash and not group) or not version:
        return ApiVersion(group, version, f"malformed apiVersion {show(text)}")
    if group.lower() == "core":
        # Pulumi's type tokens say `core/v1`; Kubernetes has no group named `core`.
        right = version.lower() if not _version(version.lower()) else version
        return ApiVersion("", version, f"apiVersion {show(text)} is not valid: the core group is written "
                                       f"without a group; write {right}")
    lower = text.lower()
    hint = f"; write {lower}" if lower != text and not api_version(lower).problem else ""
    if problem := _version(version):
        return ApiVersion(group.lower(), version, f"malformed apiVersion {show(text)}: the version {problem}{hint}")
    if not group and version != "v1":
        return ApiVersion(group, version, f"malformed apiVersion {show(text)}: the core group has only v1; "
                                          f"{version} needs its group (group/{version})")
    if group and (problem := dns1123_subdomain(group)):
        return ApiVersion(group.lower(), version, f"malformed apiVersion {show(text)}: the group {problem}{hint}")
    return ApiVersion(group, version)


def _version(version: str) -> str | None:
    if too_long := _too_long(version, DNS1123_LABEL_MAX):
        return too_long
    if _DNS1035_LABEL.fullmatch(version):
        return None
    return "must be lowercase letters, digits and '-', starting with a letter (v1, v1beta1)"


def kind_syntax(kind: str) -> str | None:
    """One word: a kind is a Go type name or a CRD's names.kind. No length limit is held, as the
    API server has none for the kinds of aggregated APIs."""
    return None if _KIND.fullmatch(kind) else "must be one word of letters, digits, '-' and '_', starting with a letter"


# Every kind of every built-in API group of Kubernetes 1.36 that a config repo may hold (the
# provider SDK's types, plus kinds it lacks), by group. Kinds are case-sensitive to the API server
# and to the provider: `secret` is no kind at all, so a wrong case is refused with the spelling.
BUILTIN_KINDS: Mapping[str, frozenset[str]] = {
    "": frozenset({"Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace",
                   "Node", "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate",
                   "ReplicationController", "ResourceQuota", "Secret", "Service", "ServiceAccount"}),
    "admissionregistration.k8s.io": frozenset({
        "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration"}),
    "apiextensions.k8s.io": frozenset({"CustomResourceDefinition"}),
    "apiregistration.k8s.io": frozenset({"APIService"}),
    "apps": frozenset({"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"}),
    "authentication.k8s.io": frozenset({"SelfSubjectReview", "TokenReview"}),
    "authorization.k8s.io": frozenset({"LocalSubjectAccessReview", "SelfSubjectAccessReview",
                                       "SelfSubjectRulesReview", "SubjectAccessReview"}),
    "autoscaling": frozenset({"HorizontalPodAutoscaler"}),
    "batch": frozenset({"CronJob", "Job"}),
    "certificates.k8s.io": frozenset({"CertificateSigningRequest", "ClusterTrustBundle"}),
    "coordination.k8s.io": frozenset({"Lease", "LeaseCandidate"}),
    "discovery.k8s.io": frozenset({"EndpointSlice"}),
    "events.k8s.io": frozenset({"Event"}),
    "flowcontrol.apiserver.k8s.io": frozenset({"FlowSchema", "PriorityLevelConfiguration"}),
    "internal.apiserver.k8s.io": frozenset({"StorageVersion"}),
    "networking.k8s.io": frozenset({"IPAddress", "Ingress", "IngressClass", "NetworkPolicy", "ServiceCIDR"}),
    "node.k8s.io": frozenset({"RuntimeClass"}),
    "policy": frozenset({"PodDisruptionBudget"}),
    "rbac.authorization.k8s.io": frozenset({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}),
    "resource.k8s.io": frozenset({"DeviceClass", "DeviceTaintRule", "ResourceClaim", "ResourceClaimTemplate",
                                  "ResourceSlice"}),
    "scheduling.k8s.io": frozenset({"PriorityClass"}),
    "storage.k8s.io": frozenset({"CSIDriver", "CSINode", "CSIStorageCapacity", "StorageClass", "VolumeAttachment",
                                 "VolumeAttributesClass"}),
    "storagemigration.k8s.io": frozenset({"StorageVersionMigration"}),
}
_BUILTIN_SPELLING: Mapping[tuple[str, str], str] = {
    (group, kind.lower()): kind for group, kinds in BUILTIN_KINDS.items() for kind in kinds}
# The kinds of the other built-in groups (each in one only), for a core-group object that names one.
_NOT_CORE: Mapping[str, tuple[str, str]] = {
    kind.lower(): (group, kind) for group, kinds in BUILTIN_KINDS.items() if group
    for kind in kinds if kind not in BUILTIN_KINDS[""]}


@dataclass(frozen=True)
class NameRule:
    """What metadata.name of a kind must be: `label`, `subdomain` or (the API server's minimum) `segment`."""

    format: str
    max_length: int | None = None

    @property
    def case_sensitive(self) -> bool:
        """Names differing only in case are different objects only where uppercase is allowed."""
        return self.format == "segment"

    def check(self, name: str) -> str | None:
        if self.max_length is not None and (too_long := _too_long(name, self.max_length)):
            return too_long
        return _NAME_CHECKS[self.format](name)


_NAME_CHECKS = {"label": dns1123_label, "subdomain": dns1123_subdomain, "segment": path_segment_name}
LABEL_NAME, SUBDOMAIN_NAME, SEGMENT_NAME = NameRule("label"), NameRule("subdomain"), NameRule("segment")
# Built-in kinds whose name rule is not the DNS-1123 subdomain most kinds have.
_NAME_RULES: Mapping[tuple[str, str], NameRule] = {
    ("", "Namespace"): LABEL_NAME,  # ValidateNamespaceName
    # ValidateServiceName: a DNS-1035 label until the RelaxedServiceNameValidation gate, default on
    # since 1.36, made it a DNS-1123 label; the looser rule is the one held here.
    ("", "Service"): LABEL_NAME,
    ("apps", "StatefulSet"): LABEL_NAME,  # ValidateStatefulSetName: its Pods' hostnames
    ("batch", "CronJob"): NameRule("subdomain", CRONJOB_NAME_MAX),  # ValidateCronJob
    # ValidateRBACName is path.IsValidPathSegmentName: `system:aggregate-to-admin` and uppercase are fine.
    ("rbac.authorization.k8s.io", "Role"): SEGMENT_NAME,
    ("rbac.authorization.k8s.io", "ClusterRole"): SEGMENT_NAME,
    ("rbac.authorization.k8s.io", "RoleBinding"): SEGMENT_NAME,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): SEGMENT_NAME,
    # Names with rules of their own (an IP address, `version.group`, `signer:name`, anything at all)
    # that are not checked beyond the minimum here.
    ("certificates.k8s.io", "CertificateSigningRequest"): SEGMENT_NAME,
    ("certificates.k8s.io", "ClusterTrustBundle"): SEGMENT_NAME,
    ("storage.k8s.io", "CSIDriver"): SEGMENT_NAME,
    ("networking.k8s.io", "IPAddress"): SEGMENT_NAME,
    ("apiregistration.k8s.io", "APIService"): SEGMENT_NAME,
    ("internal.apiserver.k8s.io", "StorageVersion"): SEGMENT_NAME,
    ("", "Event"): SEGMENT_NAME,  # see UNCHECKED_METADATA
    **{("authentication.k8s.io", k): SEGMENT_NAME for k in BUILTIN_KINDS["authentication.k8s.io"]},
    **{("authorization.k8s.io", k): SEGMENT_NAME for k in BUILTIN_KINDS["authorization.k8s.io"]},
}


# ValidateEventCreate: an Event sent to v1 (not events.k8s.io/v1) gets only legacy validation,
# "for backwards compatibility": neither its name nor its labels and annotations are checked.
UNCHECKED_METADATA = frozenset({("", "Event")})


class Kinds:
    """The kinds one desired state may use: the built-in ones and those its CRDs define."""

    def __init__(self, custom: Iterable[tuple[str, str]] = ()):
        self.custom = frozenset(custom)
        self._spelling = {(group, kind.lower()): kind for group, kind in self.custom}
        self._spelling.update(_BUILTIN_SPELLING)

    def known(self, group: str, kind: str) -> bool:
        return kind in BUILTIN_KINDS.get(group, ()) or (group, kind) in self.custom

    def spelling(self, group: str, kind: str) -> str:
        """`kind` as its group spells it, when it is a known kind written in another case."""
        return self._spelling.get((group, kind.lower()), kind)

    def problem(self, group: str, kind: str) -> str | None:
        """Why `kind` is no kind of `group`: a known kind in the wrong case (the API server and the
        provider match kinds exactly: `secret` is no kind at all), or a kind of another group put
        in the core group, which no CRD or API server can add kinds to."""
        if self.known(group, kind):
            return None
        right = self.spelling(group, kind)
        if right != kind:
            return f"kind {show(kind)} is not a kind of {group or 'v1'}: kinds are case-sensitive; write {right}"
        if not group and (elsewhere := _NOT_CORE.get(kind.lower())):
            return (f"kind {show(kind)} is not in the core group (apiVersion v1): {elsewhere[1]} is in the "
                    f"{elsewhere[0]} group (apiVersion {elsewhere[0]}/...)")
        return None

    def name_rule(self, group: str, kind: str) -> NameRule:
        """Built-in kinds have their own rules, custom resources a DNS-1123 subdomain (the CRD
        handler's NameIsDNSSubdomain). A kind known neither way may be served by an aggregated API
        server with rules of its own, so it is held only to the path-segment minimum."""
        rule = _NAME_RULES.get((group, kind))
        if rule is not None:
            return rule
        return SUBDOMAIN_NAME if self.known(group, kind) else SEGMENT_NAME


# A list's members paired with this, so one loop counts the members of lists and of mappings.
_NO_KEY = object()
_NO_KEYS = itertools.repeat(_NO_KEY)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (see `json_shape`)."""
    return json_shape(value)[0]


def json_shape(value: Any) -> tuple[int, int]:
    """Bytes of `value` as compact JSON, what the API server is sent whatever YAML it came from;
    and its depth, levels of mappings and lists (a scalar is 0).

    A YAML alias is the same Python object each time it is used, and JSON writes it out each time:
    a file of a few kilobytes can stand for gigabytes. Each container's size and height are
    computed once and reused, so the time taken grows with the file, never with what it expands
    to, and an alias used deeper than its anchor still counts at its full depth. Escapes inside
    strings are not counted: the size is never more than `json.dumps` gives. Raises ValueError for
    a value that contains itself (an alias inside its own anchor), which no JSON can hold.
    """
    if type(value) is not dict and type(value) is not list:
        return _scalar_size(value), 0
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    try:
        return _size(value, sizes, heights), heights[id(value)]
    except RecursionError:
        # Deeper than Python's stack allows (the API server takes 10,000 levels): the same count,
        # without recursion, at half the speed. Sizes already known are kept.
        return _container_size_deep(value, sizes, heights), heights[id(value)]


def _size(node: Any, sizes: dict[int, int], heights: dict[int, int]) -> int:
    # The common case: recursive, members counted inline (this runs for every object of every
    # commit; a function call per member would double the time validation takes). No closure:
    # a recursive one is a reference cycle, and the collector is paused while a commit is read.
    key = id(node)
    known = sizes.get(key)
    if known is not None:
        if known < 0:
            raise ValueError("a value contains itself")
        return known
    sizes[key] = -1  # being counted: met again inside itself, it is a cycle
    own = 1 + len(node) if node else 2  # brackets and commas
    below = 0
    pairs = node.items() if type(node) is dict else zip(_NO_KEYS, node)
    for name, member in pairs:
        if name is not _NO_KEY:
            text = name if type(name) is str else str(name)  # JSON keys are strings
            own += (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 3
        kind = type(member)
        if kind is str:
            own += (len(member) if member.isascii() else len(member.encode("utf-8", "surrogatepass"))) + 2
        elif kind is dict or kind is list:
            own += _size(member, sizes, heights)
            height = heights[id(member)]
            if height > below:
                below = height
        elif member is None or member is True:
            own += 4
        else:
            own += 5 if member is False else len(str(member))
    sizes[key] = own
    heights[key] = below + 1
    return own


def _container_size_deep(value: dict[Any, Any] | list[Any], sizes: dict[int, int], heights: dict[int, int]) -> int:
    # Sizes the recursive count finished are kept; those it left open are counted again.
    for key in [key for key, size in sizes.items() if size < 0]:
        del sizes[key]
    # Each entry is a container and, once its own members are counted, their bytes and how many
    # of its members are containers, whose sizes and heights are then on `done`.
    todo: list[tuple[Any, int, int]] = [(value, -1, 0)]
    done: list[tuple[int, int]] = []
    while todo:
        node, own, nested = todo.pop()
        key = id(node)
        if own >= 0:
            below = 0
            if nested:
                members = done[-nested:]
                del done[-nested:]
                own += sum(size for size, _ in members)
                below = max(height for _, height in members)
            sizes[key] = own
            heights[key] = below + 1
            done.append((own, below + 1))
            continue
        known = sizes.get(key)
        if known is not None:
            if known < 0:
                raise ValueError("a value contains itself")
            done.append((known, heights[key]))
            continue
        sizes[key] = -1
        own, children = _own_size(node)
        todo.append((node, own, len(children)))
        todo.extend((child, -1, 0) for child in children)
    return done[0][0]


def _own_size(node: dict[Any, Any] | list[Any]) -> tuple[int, list[Any]]:
    """A container's brackets, commas, colons, keys and scalar members, and its container members."""
    own = 2 + max(len(node) - 1, 0)
    children: list[Any] = []
    members = node.values() if type(node) is dict else node
    if type(node) is dict:
        for key in node:
            # JSON keys are strings: a YAML `1:` key is sent as "1"; a colon follows each.
            text = key if type(key) is str else str(key)
            own += (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 3
    for member in members:
        kind = type(member)
        if kind is str:
            own += (len(member) if member.isascii() else len(member.encode("utf-8", "surrogatepass"))) + 2
        elif kind is dict or kind is list:
            children.append(member)
        else:
            own += _scalar_size(member)
    return own, children


def _scalar_size(value: Any) -> int:
    if type(value) is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))) + 2
    if value is None or value is True:
        return 4
    return 5 if value is False else len(str(value))


def type_name(value: Any) -> str:
    names = {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number",
             bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def not_a_string(what: str, value: Any) -> str:
    """`what` holds `value` where Kubernetes takes only a string (its Go type is string or []byte)."""
    quote = ": quote it" if isinstance(value, (int, float)) else ""  # YAML read 8080, 1.0 or true
    return f"{what} must be a string, not {type_name(value)}{quote}"


def data_problems(field: str, value: Any, *, encoded: bool) -> list[str]:
    """Secret `data`/`stringData`, ConfigMap `data`/`binaryData`: a mapping of config keys to strings,
    base64 when `encoded` (Go decodes []byte from base64). No message ever shows a value."""
    if value is None:
        return []
    what = "base64 strings" if encoded else "strings"
    if not isinstance(value, dict):
        return [f"{field} must be a mapping of keys to {what}, not {type_name(value)}"]
    problems = []
    for key, item in value.items():
        # A key that is no string (a YAML `1:`) is sent as one; only its text can be judged.
        shown = key if isinstance(key, str) else str(key)
        if problem := config_key(shown):
            problems.append(f"{field} key {show(shown)} {problem}")
        if item is None:
            continue  # JSON null: an empty value, as the API server reads it
        if not isinstance(item, str):
            problems.append(not_a_string(f"{field}.{shown}", item))
        elif encoded and (problem := base64_value(item)):
            problems.append(f"{field}.{shown} {problem}")
    return problems


def data_size(encoded: Any, plain: Any) -> int:
    """Bytes of data a Secret (`data`, `stringData`) or ConfigMap (`binaryData`, `data`) holds, as
    the API server counts them after merging `stringData` into `data`. Valid input only."""
    sizes: dict[str, int] = {}
    for key, item in (encoded or {}).items():
        sizes[str(key)] = base64_decoded_length(item) if isinstance(item, str) else 0
    for key, item in (plain or {}).items():
        sizes[str(key)] = len(item.encode("utf-8", "surrogatepass")) if isinstance(item, str) else 0
    return sum(sizes.values())


def crd_name(name: str, spec: Any) -> str | None:
    """ValidateCustomResourceDefinition: a CRD is named `<spec.names.plural>.<spec.group>`."""
    names = spec.get("names") if isinstance(spec, dict) else None
    plural = names.get("plural") if isinstance(names, dict) else None
    group = spec.get("group") if isinstance(spec, dict) else None
    if not (isinstance(plural, str) and isinstance(group, str)):
        return None  # the API server says what is missing; the name cannot be judged without them
    required = f"{plural}.{group}"
    return None if name == required else f"must be spec.names.plural + '.' + spec.group: {show(required)}"


def label_problems(labels: Any) -> list[str]:
    """v1validation.ValidateLabels: qualified-name keys, label values, all strings."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [f"metadata.labels must be a mapping of keys to strings, not {type_name(labels)}"]
    problems = []
    for key, value in labels.items():
        text = key if isinstance(key, str) else str(key)  # JSON keys are strings: YAML `1:` is sent as "1"
        if problem := qualified_name(text):
            problems.append(f"label key {show(text)} {problem}")
        if value is None:
            continue  # JSON null: an empty value, as the API server reads it
        if not isinstance(value, str):
            problems.append(not_a_string(f"label {show(text)}", value))
        elif problem := label_value(value):
            problems.append(f"label {show(text)}: value {show(value)} {problem}")
    return problems


def annotation_problems(annotations: Any) -> list[str]:
    """ValidateAnnotations: keys as label keys but of any case, string values, 256 KiB in all."""
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [f"metadata.annotations must be a mapping of keys to strings, not {type_name(annotations)}"]
    problems = []
    total = 0
    for key, value in annotations.items():
        text = key if isinstance(key, str) else str(key)
        if problem := annotation_key(text):
            problems.append(f"annotation key {show(text)} {problem}")
        total += len(text.encode("utf-8", "surrogatepass"))
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(not_a_string(f"annotation {show(text)}", value))
        else:
            total += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if total > TOTAL_ANNOTATIONS_MAX:
        problems.append(f"metadata.annotations are {total} bytes in all; at most {TOTAL_ANNOTATIONS_MAX} (256 KiB)")
    return problems
