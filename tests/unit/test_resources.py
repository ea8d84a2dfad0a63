"""Modelling of the bundled example: one spec per object, stable names, dependencies, secrets."""
import json
from pathlib import Path

import pytest

from gitops.desired import desired_state_from_files
from gitops.resources import logical_name, resource_specs, type_token
from gitops.source.git import SourceFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config"


def example_files(root: Path = EXAMPLE, rename: dict[str, str] | None = None) -> list[SourceFile]:
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        files.append(SourceFile((rename or {}).get(rel, rel), path.read_bytes()))
    return files


def example_state(**kw):
    return desired_state_from_files(kw.pop("files", None) or example_files(), repo="r", commit="c" * 40, path=".",
                                    namespace="demo")


def specs_by_subject(state):
    return {s.subject: s for s in resource_specs(state)}


def test_every_example_object_has_its_type_name_and_dependencies():
    specs = specs_by_subject(example_state())
    expected = {
        "Namespace/demo": ("kubernetes:core/v1:Namespace", "core/Namespace:demo", ()),
        "ConfigMap/demo/web-settings": ("kubernetes:core/v1:ConfigMap", "core/ConfigMap:demo/web-settings",
                                        ("core/Namespace:demo",)),
        "Secret/demo/web-credentials": ("kubernetes:core/v1:Secret", "core/Secret:demo/web-credentials",
                                        ("core/Namespace:demo",)),
        "Deployment/demo/web": ("kubernetes:apps/v1:Deployment", "apps/Deployment:demo/web", ("core/Namespace:demo",)),
        "Service/demo/web": ("kubernetes:core/v1:Service", "core/Service:demo/web", ("core/Namespace:demo",)),
        "CustomResourceDefinition/backups.demo.gitops.dev": (
            "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
            "apiextensions.k8s.io/CustomResourceDefinition:backups.demo.gitops.dev", ()),
        "Backup/demo/nightly": ("kubernetes:demo.gitops.dev/v1:Backup", "demo.gitops.dev/Backup:demo/nightly",
                                ("core/Namespace:demo",
                                 "apiextensions.k8s.io/CustomResourceDefinition:backups.demo.gitops.dev")),
    }
    assert {k: (s.type, s.name, s.depends_on) for k, s in specs.items()} == expected
    assert specs["Deployment/demo/web"].props["spec"]["replicas"] == 2
    assert specs["Deployment/demo/web"].props["metadata"]["namespace"] == "demo"


def test_only_secret_values_are_marked_secret():
    specs = specs_by_subject(example_state())
    assert specs["Secret/demo/web-credentials"].secret_fields == ("stringData",)
    assert all(not s.secret_fields for k, s in specs.items() if not k.startswith("Secret/"))


def test_moving_a_file_keeps_every_logical_name():
    before = {s.name for s in resource_specs(example_state())}
    moved = example_files(rename={"app/web.yaml": "elsewhere/deep/renamed.yml", "namespace.yaml": "zz/ns.yaml"})
    after_specs = resource_specs(example_state(files=moved))
    assert {s.name for s in after_specs} == before
    assert len(after_specs) == len(before)


def test_api_version_change_keeps_the_name_and_aliases_the_old_type():
    beta = desired_state_from_files(
        [SourceFile("a.yaml", b"apiVersion: example.com/v1beta1\nkind: Gadget\nmetadata: {name: g}\n")],
        repo="r", commit="c", path=".", namespace="n")
    v1 = desired_state_from_files(
        [SourceFile("a.yaml", b"apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n")],
        repo="r", commit="c", path=".", namespace="n")
    old, new = resource_specs(beta)[0], resource_specs(v1)[0]
    assert old.name == new.name
    assert old.type in new.alias_types and new.type not in new.alias_types


def test_crd_versions_become_aliases_of_its_instances():
    specs = specs_by_subject(desired_state_from_files([SourceFile("a.yaml", b"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.x.io}
spec: {group: x.io, scope: Namespaced, names: {kind: Thing, plural: things}, versions: [{name: v7}, {name: v8}]}
---
apiVersion: x.io/v8
kind: Thing
metadata: {name: t}
""")], repo="r", commit="c", path=".", namespace="n"))
    assert "kubernetes:x.io/v7:Thing" in specs["Thing/n/t"].alias_types


@pytest.mark.parametrize("group,version,kind,token", [
    ("", "v1", "ConfigMap", "kubernetes:core/v1:ConfigMap"),
    ("networking.k8s.io", "v1", "Ingress", "kubernetes:networking.k8s.io/v1:Ingress"),
])
def test_type_tokens(group, version, kind, token):
    assert type_token(group, version, kind) == token


def test_names_of_different_objects_never_collide():
    from gitops.model import ObjectId

    ids = [ObjectId("", "ConfigMap", "a", "b"), ObjectId("", "ConfigMap", "", "a"),
           ObjectId("x", "ConfigMap", "a", "b"), ObjectId("", "Secret", "a", "b"), ObjectId("", "ConfigMap", "b", "a")]
    assert len({logical_name(i) for i in ids}) == len(ids)


def test_skip_await_annotates_a_copy():
    state = example_state()
    spec = {s.subject: s for s in resource_specs(state, skip_await=True)}["Deployment/demo/web"]
    assert spec.props["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert "annotations" not in state.manifests[3].body["metadata"]


def test_builtin_kinds_alias_exactly_the_versions_the_provider_knows():
    from gitops.program import builtin_versions

    specs = {s.subject: s for s in resource_specs(example_state(), builtin_versions=builtin_versions())}
    assert specs["Deployment/demo/web"].alias_types == ("kubernetes:apps/v1beta1:Deployment",
                                                        "kubernetes:apps/v1beta2:Deployment")
    assert specs["ConfigMap/demo/web-settings"].alias_types == ()
    # A custom kind whose CRD is in the repo aliases the CRD's other versions only (here: none).
    assert specs["Backup/demo/nightly"].alias_types == ()


@pytest.mark.parametrize("others,expected", [({"team": "a"}, {"team": "a"}), ({}, None)])
def test_a_secrets_last_applied_annotation_with_its_values_in_clear_is_never_applied(others, expected):
    from gitops.model import LAST_APPLIED

    secret = ('{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": %s}, '
              '"stringData": {"password": "hunter2"}}')
    annotations = {**others, LAST_APPLIED: '{"stringData": {"password": "hunter2"}}'}
    cm = secret.replace('"Secret"', '"ConfigMap"').replace("stringData", "data")
    files = [SourceFile("s.json", (secret % json.dumps(annotations)).encode()),
             SourceFile("c.json", (cm % json.dumps(annotations)).encode())]
    specs = specs_by_subject(desired_state_from_files(files, repo="r", commit="c" * 40, path=".", namespace="apps"))
    assert specs["Secret/apps/s"].props["metadata"].get("annotations") == expected
    assert "hunter2" not in json.dumps({k: v for k, v in specs["Secret/apps/s"].props.items() if k != "stringData"})
    assert LAST_APPLIED in specs["ConfigMap/apps/s"].props["metadata"]["annotations"]  # only a Secret's is secret
