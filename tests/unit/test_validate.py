import pytest

from gitops.desired import desired_state_from_files
from gitops.errors import ManifestError
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
                         "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n"})
    assert [m.id.subject for m in s.manifests] == ["ConfigMap/apps/c", "Namespace/n"]
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
    ("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  namespace: other\n",
     "x.yaml:5: Namespace/n: Namespace is cluster-scoped and cannot have metadata.namespace ('other')"),
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
