"""Which folders kustomize builds, and where each built object is said to come from. Pure."""
import pytest

from gitops.manifests.load import Document
from gitops.renderers import Built
from gitops.renderers.kustomize import ORIGIN, kustomize_roots, relocate, under


@pytest.mark.parametrize("paths,folder,expected", [
    (["a.yaml", "b/c.yaml"], ".", []),
    (["kustomization.yaml", "a.yaml", "sub/kustomization.yaml"], ".", [""]),
    (["apps/kustomization.yml", "apps/x.yaml"], "apps", ["apps"]),
    (["apps/a.yaml", "apps/one/Kustomization", "apps/one/deep/kustomization.yaml", "apps/two/kustomization.yaml",
      "other/kustomization.yaml"], "apps", ["apps/one", "apps/two"]),
    (["apps/kustomization.yaml.bak", "apps/notkustomization.yaml"], "apps", []),
    (["apps2/kustomization.yaml"], "apps", []),
])
def test_the_path_or_the_topmost_folders_below_it_with_a_kustomization(paths, folder, expected):
    assert kustomize_roots(paths, folder) == expected


def test_under_a_root_means_inside_its_folder_not_a_name_prefix():
    assert under("apps/one/x.yaml", ["apps/one"]) and not under("apps/one2/x.yaml", ["apps/one"])
    assert under("anything.yaml", [""])


def built(annotations, name="web"):
    return Document("kustomize build of overlay", 7, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "annotations": annotations}})


@pytest.mark.parametrize("origin,path,line", [
    ("path: ../base/deploy.yaml\n", "base/deploy.yaml", 1),
    ("configuredIn: kustomization.yaml\nconfiguredBy: {kind: ConfigMapGenerator}\n", "overlay/kustomization.yaml", 1),
    ("path: ../../../etc/passwd\n", "kustomize build of overlay", 7),  # never a path outside the repo
    ("repo: https://example.com/r\npath: x.yaml\n", "kustomize build of overlay", 7),  # a remote base
    ("[not, a, mapping]", "kustomize build of overlay", 7),
])
def test_a_built_object_is_placed_at_its_file_and_loses_the_annotation(origin, path, line):
    moved = relocate(built({ORIGIN: origin, "keep": "me"}), "overlay")
    assert (moved.path, moved.line) == (path, line)
    assert moved.data["metadata"]["annotations"] == {"keep": "me"}
    alone = relocate(built({ORIGIN: origin}), "overlay")
    assert "annotations" not in alone.data["metadata"]


def test_an_object_without_an_origin_is_left_as_it_is():
    document = built({"a": "b"})
    assert relocate(document, "overlay") is document


def test_a_build_is_named_by_its_folder():
    assert Built("kustomize", "apps/one", b"", None).name == "kustomize output of apps/one"
    assert Built("helm", "", b"", None).name == "helm output of ."
