"""Kustomize folders render as Flux builds them (issue 12): the objects equal `kubectl kustomize`
with Flux's load restrictions over every fixture, each is one Pulumi resource placed at the file
it came from, and a preview of a patch change shows the field that moves."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from gitops.desired import read_desired_state
from gitops.settings import settings_from_config
from gitops.source.git import GitSource

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25.0
        envFrom: [{configMapRef: {name: web-config}}, {secretRef: {name: web-secret}}]
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n"


def fixtures(ns: str) -> dict[str, str]:
    """What real repos do: a base, an overlay with patches, a prefix, generators and a component."""
    return {
        "base/kustomization.yaml": "resources: [deploy.yaml, service.yaml]\n"
                                   "configMapGenerator:\n- name: web-config\n  literals: [LOG_LEVEL=info]\n"
                                   "secretGenerator:\n- name: web-secret\n  literals: [PASSWORD=hunter2]\n",
        "base/deploy.yaml": DEPLOY,
        "base/service.yaml": SERVICE,
        "components/debug/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                                               "configMapGenerator:\n- name: web-config\n  behavior: merge\n"
                                               "  literals: [LOG_LEVEL=debug]\n",
        "overlay/kustomization.yaml": f"namespace: {ns}\nnamePrefix: prod-\nlabels:\n- pairs: {{env: prod}}\n"
                                      "resources: [../base, namespace.yaml]\ncomponents: [../components/debug]\n"
                                      "images:\n- name: nginx\n  newTag: 1.25.3\n"
                                      "patches:\n- path: replicas.yaml\n"
                                      "- target: {kind: Service, name: web}\n  patch: |\n"
                                      "    - op: replace\n      path: /spec/ports/0/port\n      value: 8080\n",
        "overlay/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
        "overlay/namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
        "plain/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n",
        "plain/sub/kustomization.yaml": "resources: [b.yaml]\nnamePrefix: sub-\n",
        "plain/sub/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    }


def desired(repo_root, path: str, namespace: str):
    settings = settings_from_config({"repo": str(repo_root), "path": path, "namespace": namespace})
    source = GitSource(str(repo_root))
    return read_desired_state(source, source.resolve("HEAD"), settings)


def kubectl_kustomize(folder) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(folder)],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def identity(body: dict, default_namespace: str) -> tuple[str, str, str]:
    metadata = body["metadata"]
    return body["kind"], metadata.get("namespace", default_namespace), metadata["name"]


@pytest.mark.parametrize("path", ["overlay", "base"])
def test_a_kustomization_renders_what_kubectl_kustomize_renders(tools, tmp_path, path):
    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write(fixtures("shop"))
    state = desired(repo.root, path, "apps")
    ours = {(m.id.kind, m.id.namespace or "", m.id.name): m.body for m in state.manifests}
    theirs = {identity(b, "apps" if b["kind"] != "Namespace" else ""): b for b in kubectl_kustomize(repo.root / path)}
    assert set(ours) == set(theirs)
    for key, body in theirs.items():
        mine = json.loads(json.dumps(ours[key]))
        if key[0] != "Namespace" and "namespace" not in body["metadata"]:
            mine["metadata"].pop("namespace")  # gitops:namespace, as `kubectl apply -n` would add it
        assert mine == body, key
    origins = {(m.id.kind, m.id.name): str(m.origin) for m in state.manifests}
    if path == "overlay":
        assert origins["Deployment", "prod-web"] == "base/deploy.yaml:1"
        assert origins["Service", "prod-web"] == "base/service.yaml:1"
        assert origins["Namespace", "shop"] == "overlay/namespace.yaml:1"
        generated = next(n for k, n in origins if k == "ConfigMap")
        assert origins["ConfigMap", generated] == "base/kustomization.yaml:1"
        assert all(m.id.namespace == "shop" for m in state.manifests if m.id.kind != "Namespace")


def test_a_plain_folder_builds_its_kustomized_subfolders_as_flux_does(tools, tmp_path):
    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write(fixtures("shop"))
    state = desired(repo.root, "plain", "apps")
    assert sorted((m.id.name, str(m.origin)) for m in state.manifests) == [
        ("a", "plain/a.yaml:1"), ("sub-b", "plain/sub/b.yaml:1")]


def test_a_kustomize_error_names_the_kustomization_and_nothing_outside_the_repo_is_read(tools, tmp_path):
    from gitops.errors import ManifestError

    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write({"app/kustomization.yaml": "resources: [../../../../../../etc/hosts]\n"})
    with pytest.raises(ManifestError) as info:
        desired(repo.root, "app", "apps")
    (problem,) = info.value.problems
    assert problem.path == "app/kustomization.yaml" and "not in or below" in problem.message
    assert str(tmp_path) not in problem.message


def test_up_then_a_preview_of_a_patch_change(project):
    ns = project.namespace
    project.write_stack(skipAwait=True, path="overlay", namespace=ns)
    project.repo.write(fixtures(ns))
    project.gitops("up", "--stack", project.stack, "-q")
    deployment = project.kubectl_json("get", "deployment", "prod-web", "-n", ns)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25.3"
    assert project.outputs()["objectCount"] == 5
    project.pulumi("preview", "--expect-no-changes")  # the program `pulumi up` runs builds the same

    (change,) = project.preview_on_branch(
        {"overlay/replicas.yaml": fixtures(ns)["overlay/replicas.yaml"].replace("3", "5")}, "scale")
    assert change["subject"] == f"Deployment/{ns}/prod-web" and change["op"] == "update"
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("spec.replicas", 3, 5)]


def test_a_remote_base_is_fetched_only_when_the_stack_allows_it(tools, tmp_path):
    from githttp import GitHttp

    from gitops.errors import ManifestError

    from gitrepo import ConfigRepo

    upstream = ConfigRepo(tmp_path / "upstream")
    upstream.write({"app/kustomization.yaml": "resources: [cm.yaml]\ncommonLabels: {team: upstream}\n",
                    "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v}\n"})
    served = tmp_path / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(upstream.root), str(served / "base.git")], check=True)
    with GitHttp(served) as http:
        repo = ConfigRepo(tmp_path / "config")
        repo.write({"overlay/kustomization.yaml": f"resources:\n- {http.url('base.git')}//app?ref=main\n"
                                                  "namePrefix: prod-\n"})
        with pytest.raises(ManifestError) as info:
            desired(repo.root, "overlay", "apps")
        (problem,) = info.value.problems
        assert problem.path == "overlay/kustomization.yaml" and "base.git" in problem.message
        assert http.requests == []  # refused before any fetch

        settings = settings_from_config({"repo": str(repo.root), "path": "overlay", "namespace": "apps",
                                         "kustomizeRemoteBases": True})
        source = GitSource(str(repo.root))
        (manifest,) = read_desired_state(source, source.resolve("HEAD"), settings).manifests
        (theirs,) = kubectl_kustomize(repo.root / "overlay")
        body = json.loads(json.dumps(manifest.body))
        body["metadata"].pop("namespace")
        assert body == theirs and theirs["metadata"] == {"name": "prod-shared", "labels": {"team": "upstream"}}
        assert http.requests, "the base came over HTTP from the loopback server"
