import time

import pytest

from gitops.desired import desired_state_from_files
from gitops.errors import ManifestError
from gitops.manifests.load import Document
from gitops.manifests.validate import validate
from gitops.source.git import SourceFile

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions: [{name: v1, served: true, storage: true}]
"""


def state(files: dict[str, str], **kw):
    return desired_state_from_files([SourceFile(p, t.encode()) for p, t in files.items()],
                                    repo="r", commit="c" * 40, path=kw.pop("path", "."),
                                    namespace=kw.pop("namespace", "apps"), **kw)


def problems(files: dict[str, str], **kw) -> list[str]:
    with pytest.raises(ManifestError) as info:
        state(files, **kw)
    return [str(p) for p in info.value.problems]


def test_namespaced_objects_get_the_default_namespace_and_cluster_objects_none():
    s = state({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
                         "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n"})
    assert [m.id.subject for m in s.manifests] == ["ConfigMap/apps/c", "Namespace/ns"]
    assert s.manifests[0].body["metadata"]["namespace"] == "apps"
    assert "namespace" not in s.manifests[1].body["metadata"]


@pytest.mark.parametrize("text,expected", [
    ("kind: ConfigMap\nmetadata: {name: a}\n", "x.yaml:1: missing apiVersion"),
    ("apiVersion: v1\nmetadata: {name: a}\n", "x.yaml:1: missing kind"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n", "x.yaml:3: missing metadata.name"),
    ("apiVersion: v1\nkind: ConfigMap\n", "x.yaml:1: missing metadata.name"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: a-\n",
     "x.yaml:4: metadata.generateName is not supported: GitOps needs a stable name; set metadata.name"),
    ("- a\n- b\n", "x.yaml:1: a document must be a mapping (an object), not a list"),
    ("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n  namespace: other\n",
     "x.yaml:5: Namespace/ns: Namespace is cluster-scoped and cannot have metadata.namespace ('other')"),
    ("apiVersion: a/b/v1\nkind: X\nmetadata: {name: a}\n", "x.yaml:1: malformed apiVersion 'a/b/v1'"),
])
def test_each_problem_has_its_message_and_line(text, expected):
    assert problems({"x.yaml": text}) == [expected]


def test_duplicates_name_both_places_even_across_default_namespace():
    found = problems({
        "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        "b/c.yaml": "\n\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: apps}\n",
    })
    assert found == ["b/c.yaml:3: ConfigMap/apps/c (ConfigMap) is defined twice: also at a.yaml:1"]


def test_same_name_in_other_group_or_namespace_is_not_a_duplicate():
    s = state({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n---\n"
                         "apiVersion: example.com/v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    assert len(s.manifests) == 3


def test_every_problem_is_reported_at_once():
    found = problems({
        "a.yaml": "kind: ConfigMap\nmetadata: {name: a}\n",
        "b.yaml": "key: [\n",
        "c.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {generateName: s-}\n",
        "ok.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
    })
    assert len(found) == 3
    assert [f.split(":")[0] for f in found] == ["a.yaml", "b.yaml", "c.yaml"]


def test_crd_in_repo_decides_the_scope_of_its_kind():
    assert problems({"crd.yaml": CRD,
                     "w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: x}\n"}) == [
        "w.yaml:3: Widget/w: Widget is cluster-scoped and cannot have metadata.namespace ('x')"]
    s = state({"crd.yaml": CRD, "w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
    assert s.manifests[1].id.namespace == ""


def test_cluster_kinds_setting_covers_crds_installed_elsewhere():
    s = state({"i.yaml": "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: le}\n"},
              cluster_kinds=["ClusterIssuer.cert-manager.io"])
    assert s.manifests[0].id.subject == "ClusterIssuer/le"


def test_path_limits_the_files_read_and_ignore_file_applies():
    s = state({"deploy/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
               "deploy/skip/b.yaml": "not: an object\n",
               "deploy/.gitopsignore": "skip/\n",
               "deploy/kustomization.yaml": "resources: [a.yaml]\n",
               "elsewhere.yaml": "broken: [\n"}, path="deploy")
    assert [m.origin.path for m in s.manifests] == ["deploy/a.yaml"]


def one(kind: str = "ConfigMap", name: str = "a", api: str = "v1", extra: str = "", metadata: str = "") -> str:
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{metadata}{extra}"


# Kubernetes' own rules, each reported at the line of its field (the document starts at line 1:
# apiVersion 1, kind 2, metadata 3, metadata.name 4, then what the case adds).
@pytest.mark.parametrize("text,expected", [
    (one(name="Web"), "x.yaml:4: metadata.name 'Web' of this ConfigMap must be a DNS-1123 subdomain"),
    (one(name='"web\\n"'), "x.yaml:4: metadata.name 'web\\n' of this ConfigMap must be a DNS-1123 subdomain"),
    (one(name="a" * 254), "x.yaml:4: metadata.name " + repr("a" * 80) + "... (254 characters) of this ConfigMap must "
                                                                         "be at most 253 characters (it has 254)"),
    (one(kind="Namespace", name="a.b"), "x.yaml:4: metadata.name 'a.b' of this Namespace must be a DNS-1123 label"),
    (one(kind="Service", name="web.x"), "x.yaml:4: metadata.name 'web.x' of this Service must be a DNS-1123 label"),
    (one(kind="StatefulSet", api="apps/v1", name="a" * 64),
     "x.yaml:4: metadata.name " + repr("a" * 64) + " of this StatefulSet must be at most 63 characters (it has 64)"),
    (one(kind="CronJob", api="batch/v1", name="a" * 53),
     "x.yaml:4: metadata.name " + repr("a" * 53) + " of this CronJob must be at most 52 characters (it has 53)"),
    (one(kind="ClusterRoleBinding", api="rbac.authorization.k8s.io/v1", name="a/b"),
     "x.yaml:4: metadata.name 'a/b' of this ClusterRoleBinding may not contain '/'"),
    (one(name="1234"), "x.yaml:4: metadata.name must be a string, not a number: quote it"),
    (one(metadata="  namespace: Apps\n"), "x.yaml:5: metadata.namespace 'Apps' must be a DNS-1123 label"),
    (one(metadata="  namespace: " + "a" * 64 + "\n"),
     "x.yaml:5: metadata.namespace " + repr("a" * 64) + " must be at most 63 characters (it has 64)"),
    (one(metadata="  labels: {version: 1.0}\n"), "x.yaml:5: label 'version' must be a string, not a number: quote it"),
    (one(metadata="  labels: {app: 'a b'}\n"), "x.yaml:5: label 'app': value 'a b' must be empty or letters"),
    (one(metadata="  labels: {Example.com/app: x}\n"), "x.yaml:5: label key 'Example.com/app' prefix 'Example.com' "
                                                       "must be a DNS-1123 subdomain"),
    (one(metadata="  annotations: {replicas: 3}\n"),
     "x.yaml:5: annotation 'replicas' must be a string, not a number: quote it"),
    (one(metadata="  annotations:\n    big: " + "x" * (256 * 1024) + "\n"),
     "x.yaml:5: metadata.annotations are 262147 bytes in all; at most 262144 (256 KiB)"),
    (one(api="core/v1"), "x.yaml:1: apiVersion 'core/v1' is not valid: the core group is written without a group; "
                         "write v1"),
    (one(api="Apps/v1", kind="Deployment"), "x.yaml:1: malformed apiVersion 'Apps/v1': the group must be a "
                                            "DNS-1123 subdomain"),
    (one(api="v1beta1"), "x.yaml:1: malformed apiVersion 'v1beta1': the core group has only v1"),
    (one(kind="configmap"), "x.yaml:2: kind 'configmap' is not a kind of v1: kinds are case-sensitive; "
                            "write ConfigMap"),
    (one(kind="Deployment"), "x.yaml:2: kind 'Deployment' is not in the core group (apiVersion v1)"),
    (one(kind="'Config Map'"), "x.yaml:2: kind 'Config Map' must be one word"),
    (one(kind="Secret", extra="data: hunter2\n"),
     "x.yaml:5: data must be a mapping of keys to base64 strings, not a string"),
    (one(kind="Secret", extra="data: {password: hunter2}\n"), "x.yaml:5: data.password is not base64"),
    (one(kind="Secret", extra="stringData: {port: 5432}\n"),
     "x.yaml:5: stringData.port must be a string, not a number: quote it"),
    (one(kind="Secret", extra="stringData: {'my key': x}\n"), "x.yaml:5: stringData key 'my key' must be letters"),
    (one(extra="data: {PORT: 8080}\n"), "x.yaml:5: data.PORT must be a string, not a number: quote it"),
    (one(extra="binaryData: {blob: '!!'}\n"), "x.yaml:5: binaryData.blob is not base64"),
    (one(extra="data: {k: x}\nbinaryData: {k: aGk=}\n"), "x.yaml:6: binaryData key 'k' is also in data"),
    (one(extra="data: {big: " + "x" * (1024 * 1024 - 3) + ", k: abcd}\n"),
     "x.yaml:5: ConfigMap data is 1048577 bytes; Kubernetes allows at most 1048576 (1 MiB)"),
    (one(kind="CustomResourceDefinition", api="apiextensions.k8s.io/v1", name="widget.example.com",
         extra="spec: {group: example.com, scope: Namespaced, names: {kind: Widget, plural: widgets}}\n"),
     "x.yaml:4: metadata.name 'widget.example.com' of this CustomResourceDefinition must be spec.names.plural + '.' + "
     "spec.group: 'widgets.example.com'"),
])
def test_kubernetes_rules_name_the_field_and_line(text, expected):
    found = problems({"x.yaml": text})
    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize("text", [
    one(name="web-1.example"), one(kind="Service", name="1web"), one(kind="Namespace", name="a" * 63),
    one(name="a" * 253), one(kind="CronJob", api="batch/v1", name="a" * 52),
    one(kind="ClusterRole", api="rbac.authorization.k8s.io/v1", name="'system:aggregate-to-admin'"),
    one(kind="Widget", api="example.com/v1", name="Any_Name"),  # no CRD here: maybe an aggregated API's kind
    one(metadata="  labels: {app.kubernetes.io/name: web, empty: ''}\n  annotations: {Example.com/Note: '1'}\n"),
    one(kind="Secret", extra="data: {a: aGk=, b: '', c: null}\nstringData: {d: plain}\n"),
    one(kind="Secret", extra="data:\n  cert: |\n    aGVsbG8g\n    d29ybGQ=\n"),  # wrapped base64, as Go reads it
    one(extra="data: {k: '8080'}\nbinaryData: {b: aGk=}\n"),
    # an Event sent to v1 gets only legacy validation: no rule for its name, labels or annotations
    one(kind="Event", name="Web_1", metadata="  labels: {'a b': 'c d'}\n"),
])
def test_what_kubernetes_accepts_is_accepted(text):
    assert len(state({"x.yaml": text}).manifests) == 1


@pytest.mark.parametrize("extra,refused", [(1, True), (0, False)])
def test_an_object_over_1_mib_of_json_is_refused_whatever_its_kind(extra, refused):
    head = '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"},"spec":{"v":""}}'
    value = "x" * (1024 * 1024 - len(head) + extra)
    text = one(kind="Widget", api="example.com/v1", extra="spec: {v: " + value + "}\n")
    if not refused:
        assert len(state({"x.yaml": text}).manifests) == 1
        return
    assert problems({"x.yaml": text}) == [
        "x.yaml:1: the object is 1048577 bytes as JSON; at most 1048576 (1 MiB) is applied, to leave room for what "
        "the API server adds within etcd's 1.5 MiB per object"]


def configmap_document(**fields) -> Document:
    return Document("x.yaml", 1, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, **fields})


def test_values_shared_many_times_are_counted_as_often_as_json_repeats_them_and_at_once():
    # What YAML aliases build, whatever the parser lets through: one list, used ten times, nine deep.
    node: list = ["x"] * 10
    for _ in range(9):
        node = [node] * 10
    started = time.perf_counter()
    with pytest.raises(ManifestError) as info:
        validate([configmap_document(x=node)], "apps")
    assert time.perf_counter() - started < 2
    size = 10 * 3 + 9 + 2  # ["x",...]: ten strings, nine commas, two brackets
    for _ in range(9):
        size = 10 * size + 9 + 2
    size += len('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"x":}')
    assert [p.message for p in info.value.problems] == [
        f"the object is {size} bytes as JSON; at most 1048576 (1 MiB) is applied, to leave room for what the "
        "API server adds within etcd's 1.5 MiB per object"]


def test_a_value_that_contains_itself_is_refused():
    data: dict = {}
    data["k"] = data
    with pytest.raises(ManifestError) as info:
        validate([configmap_document(data=data)], "apps")
    assert [p.message for p in info.value.problems] == [
        "data.k must be a string, not a mapping",
        "the object contains itself (a YAML alias inside its own anchor): it has no JSON form"]


def test_every_rule_of_a_document_is_reported_at_once():
    found = problems({"x.yaml": "apiVersion: core/v1\nkind: secret\nmetadata:\n  name: Web\n  namespace: Apps\n"
                                "  labels: {a: 1}\ndata: hunter2\n"})
    assert [f.split(": ")[0] for f in found] == ["x.yaml:1", "x.yaml:2", "x.yaml:4", "x.yaml:5", "x.yaml:6", "x.yaml:7"]
    assert not any("hunter2" in f for f in found)


@pytest.mark.parametrize("first,second", [
    (one(kind="Secret"), one(kind="secret")),  # the spelling of a kind
    (one(), one(api="core/v1")),  # Pulumi's name of the core group
    (one(kind="Deployment", api="apps/v1"), one(kind="Deployment", api="apps/v1beta2")),  # versions of a group
    (one(kind="Deployment", api="apps/v1"), one(kind="Deployment", api="Apps/v1")),
    (one(name="web"), one(name="Web")),  # names that are refused in uppercase
    (one(metadata="  namespace: apps\n"), one(metadata="  namespace: Apps\n")),
    (one(kind="Widget", api="example.com/v1") + "---\n" + CRD.replace("Cluster", "Namespaced"),
     one(kind="widget", api="example.com/v1")),
])
def test_two_spellings_of_one_object_are_a_duplicate(first, second):
    found = problems({"a.yaml": first, "b.yaml": second})
    assert any(f.startswith("b.yaml:1: ") and "is defined twice: also at a.yaml:1" in f for f in found), found


def test_names_that_may_hold_uppercase_are_different_objects_in_another_case():
    s = state({"a.yaml": one(kind="ClusterRole", api="rbac.authorization.k8s.io/v1", name="Admin") + "---\n"
                         + one(kind="ClusterRole", api="rbac.authorization.k8s.io/v1", name="admin")})
    assert [m.id.name for m in s.manifests] == ["Admin", "admin"]


def test_a_crd_in_the_repo_makes_its_kind_s_names_dns_subdomains_and_its_spelling_known():
    widget = "apiVersion: example.com/v1\nkind: widget\nmetadata: {name: Bad_Name}\n"
    found = problems({"crd.yaml": CRD, "w.yaml": widget})
    assert found == ["w.yaml:2: kind 'widget' is not a kind of example.com: kinds are case-sensitive; write Widget",
                     "w.yaml:3: metadata.name 'Bad_Name' of this Widget must be a DNS-1123 subdomain (lowercase "
                     "letters, digits, '-' and '.', each part between dots starting and ending with a letter or digit)"]


def test_problem_messages_never_hold_control_characters():
    hostile = one(name='"a\\n---\\nkind: Secret\\e[31m"', metadata='  labels: {"k\\u2028": x}\n')
    found = problems({"x.yaml": hostile})
    assert found and all(f.isprintable() for f in found)


def test_more_than_a_hundred_problems_show_the_first_hundred():
    files = {f"f{i:03}.yaml": "kind: ConfigMap\nmetadata: {name: a}\n" for i in range(150)}
    with pytest.raises(ManifestError) as info:
        state(files)
    assert len(info.value.problems) == 150
    lines = str(info.value).splitlines()
    assert lines[0] == "150 problems in the manifests; nothing was applied:"
    assert lines[1:101] == [f"  f{i:03}.yaml:1: missing apiVersion" for i in range(100)]
    assert lines[101:] == ["  and 50 more"]


@pytest.mark.parametrize("levels,refused", [(256, False), (257, True), (9_000, True)])
def test_an_object_nested_deeper_than_the_engine_applies_is_refused_at_its_line(levels, refused):
    from gitops.manifests.limits import MAX_APPLIED_DEPTH

    spec = "1"
    for _ in range(levels - 2):  # the document's own mapping and `spec` are two levels
        spec = "[" + spec + "]"
    text = '{"apiVersion": "example.com/v1", "kind": "Deep", "metadata": {"name": "a"}, "spec": {"v": ' + spec + "}}"
    files = {"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n" + text}
    if not refused:
        assert len(state(files).manifests) == 2
        return
    assert problems(files) == [f"a.yaml:5: the object is nested {levels:,} levels deep; the Pulumi engine applies "
                               f"at most {MAX_APPLIED_DEPTH} (its Python SDK serializes objects by recursion)"]
