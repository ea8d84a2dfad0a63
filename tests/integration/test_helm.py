"""A chart at the path renders as `helm template` renders it (issue 12): with its vendored
dependency, CRDs, values files and inline values; each object placed at its template; and a
preview of a values change shows the field that moves."""
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
metadata:
  name: {{ .Release.Name }}-web
  labels: {{- include "shop.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""


def chart(crd_group: str) -> dict[str, str]:
    return {
        "shop/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.2.3\ndependencies:\n"
                           "- name: cache\n  version: 0.1.0\n",
        "shop/values.yaml": "replicas: 1\nimage: {repository: nginx, tag: '1.25.0'}\ncache: {size: small}\n",
        "shop/values-prod.yaml": "replicas: 3\n",
        "shop/templates/_helpers.tpl": '{{- define "shop.labels" -}}\napp.kubernetes.io/name: {{ .Chart.Name }}\n'
                                       "helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n{{- end }}\n",
        "shop/templates/deploy.yaml": DEPLOY,
        "shop/templates/NOTES.txt": "Thanks for installing {{ .Release.Name }}.\n",
        "shop/crds/widgets.yaml": f"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                                  f"metadata: {{name: widgets.{crd_group}}}\nspec:\n  group: {crd_group}\n"
                                  "  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget}\n"
                                  "  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n"
                                  "      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
        "shop/charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
        "shop/charts/cache/values.yaml": "size: tiny\n",
        "shop/charts/cache/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                               "  name: {{ .Release.Name }}-cache\ndata:\n"
                                               "  size: {{ .Values.size | quote }}\n",
    }


def settings(root, **extra):
    return settings_from_config({"repo": str(root), "path": "shop", "namespace": "apps", **extra})


def helm_template(root, *args: str) -> list[dict]:
    from gitops.paths import tool_env

    out = subprocess.run(["helm", "template", "shop", "./shop", "--namespace", "apps", "--include-crds", *args],
                         cwd=root, env=tool_env(), check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("extra,args", [
    ({}, ()),
    ({"helmValuesFiles": ["values-prod.yaml"], "helmValues": {"image": {"tag": "1.25.3"}}},
     ("--values", "shop/values-prod.yaml", "--set", "image.tag=1.25.3")),
])
def test_a_chart_renders_what_helm_template_renders(tools, tmp_path, extra, args):
    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write(chart("shop.example.com"))
    source = GitSource(str(repo.root))
    state = read_desired_state(source, source.resolve("HEAD"), settings(repo.root, **extra))
    theirs = {(b["kind"], b["metadata"]["name"]): b for b in helm_template(repo.root, *args)}
    ours = {(m.id.kind, m.id.name): json.loads(json.dumps(m.body)) for m in state.manifests}
    assert set(ours) == set(theirs)
    for key, body in theirs.items():
        if key[0] != "CustomResourceDefinition":
            ours[key]["metadata"].pop("namespace")  # gitops:namespace, the release's namespace too
        assert ours[key] == body, key
    origins = {m.id.kind: str(m.origin) for m in state.manifests}
    assert origins == {"Deployment": "shop/templates/deploy.yaml:1",
                       "ConfigMap": "shop/charts/cache/templates/cm.yaml:1",
                       "CustomResourceDefinition": "shop/crds/widgets.yaml:1"}


def test_a_template_error_names_the_chart(tools, tmp_path):
    from gitops.errors import ManifestError

    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write({**chart("shop.example.com"), "shop/templates/bad.yaml": "{{ .Values.nope.deeper }}\n"})
    source = GitSource(str(repo.root))
    with pytest.raises(ManifestError) as info:
        read_desired_state(source, source.resolve("HEAD"), settings(repo.root))
    (problem,) = info.value.problems
    assert problem.path == "shop/Chart.yaml" and "bad.yaml" in problem.message
    assert str(tmp_path) not in problem.message


def test_up_then_a_preview_of_a_values_change(project):
    ns = project.namespace
    project.write_stack(skipAwait=True, path="shop", namespace=ns)
    files = chart(f"{ns}.example.com")
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
    project.repo.write({**files, "shop/templates/ns.yaml": namespace})
    project.gitops("up", "--stack", project.stack, "-q")
    assert project.kubectl_json("get", "deployment", "shop-web", "-n", ns)["spec"]["replicas"] == 1

    (change,) = project.preview_on_branch(
        {"shop/values.yaml": files["shop/values.yaml"].replace("replicas: 1", "replicas: 4")}, "scale")
    assert change["subject"] == f"Deployment/{ns}/shop-web" and change["op"] == "update"
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("spec.replicas", 1, 4)]


def _helm(*args: str, cwd) -> str:
    from gitops.paths import tool_env

    env = {**tool_env(), "HELM_CONFIG_HOME": str(cwd / ".helm"), "HELM_CACHE_HOME": str(cwd / ".helm"),
           "HELM_DATA_HOME": str(cwd / ".helm")}
    return subprocess.run(["helm", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True,
                          timeout=120).stdout


@pytest.fixture
def packaged(tools, tmp_path):
    """The fixture chart as `helm package` makes it, in a folder that is also a Helm repository."""
    from gitrepo import ConfigRepo

    source = ConfigRepo(tmp_path / "chart-source")
    source.write(chart("shop.example.com"))
    served = tmp_path / "served"
    served.mkdir()
    _helm("package", str(source.root / "shop"), "--destination", str(served), cwd=tmp_path)
    return served


@pytest.fixture
def helm_repository(packaged):
    """A real Helm repository on loopback: `helm repo index`'s index.yaml and the .tgz over HTTP."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    _helm("repo", "index", str(packaged), cwd=packaged.parent)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(packaged))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def values_repo(tmp_path, files: dict[str, str]):
    from gitrepo import ConfigRepo

    repo = ConfigRepo(tmp_path / "config")
    repo.write(files)
    return repo


def test_a_chart_from_a_helm_repository_at_a_pinned_version(helm_repository, tmp_path):
    repo = values_repo(tmp_path, {"prod/values.yaml": "replicas: 5\n"})
    source = GitSource(str(repo.root))
    config = settings_from_config({"repo": str(repo.root), "path": "prod", "namespace": "apps", "helmChart": "shop",
                                   "helmRepo": helm_repository, "helmVersion": "1.2.3",
                                   "helmValuesFiles": ["values.yaml"]})
    state = read_desired_state(source, source.resolve("HEAD"), config)
    deployment = next(m for m in state.manifests if m.id.kind == "Deployment")
    assert deployment.id.name == "shop-web" and deployment.body["spec"]["replicas"] == 5
    assert str(deployment.origin) == f"chart {helm_repository}/shop@1.2.3: templates/deploy.yaml:1"


def test_a_chart_from_an_oci_registry(packaged, tmp_path):
    from registry_server import RegistryServer, ensure_registry

    registry = RegistryServer(ensure_registry(progress=lambda _: None), tmp_path / "registry").start()
    try:
        _helm("push", str(packaged / "shop-1.2.3.tgz"), f"oci://{registry.host}/charts", "--plain-http",
              cwd=tmp_path)
        repo = values_repo(tmp_path, {"prod/README.md": "values live here\n"})
        source = GitSource(str(repo.root))
        config = settings_from_config({"repo": str(repo.root), "path": "prod", "namespace": "apps",
                                       "helmChart": f"oci://{registry.host}/charts/shop", "helmVersion": "1.2.3",
                                       "helmValues": {"replicas": 2}})
        state = read_desired_state(source, source.resolve("HEAD"), config)
        deployment = next(m for m in state.manifests if m.id.kind == "Deployment")
        assert deployment.body["spec"]["replicas"] == 2
        assert {m.id.kind for m in state.manifests} == {"Deployment", "ConfigMap", "CustomResourceDefinition"}
    finally:
        registry.stop()


def test_dependencies_not_vendored_are_fetched_from_the_repository_the_chart_names(helm_repository, tmp_path):
    repo = values_repo(tmp_path, {
        "app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n"
                          f"- name: shop\n  version: 1.2.3\n  repository: {helm_repository}\n",
        "app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\n"})
    source = GitSource(str(repo.root))
    state = read_desired_state(source, source.resolve("HEAD"), settings(repo.root, path="app"))
    assert {(m.id.kind, m.id.name) for m in state.manifests} >= {("ConfigMap", "own"), ("Deployment", "app-web")}
    assert not (repo.root / "app" / "charts").exists()  # fetched into the scratch tree only


def test_a_kustomization_inflates_its_helm_charts_only_when_the_stack_says_so(helm_repository, tmp_path):
    """Vendored under charts/, with `gitops:kustomizeHelm`; from the repository the kustomization
    names, which is a network fetch, only with `gitops:kustomizeRemoteBases` too."""
    from gitops.errors import ManifestError

    vendored = {f"app/charts/{name}": text for name, text in chart("shop.example.com").items()}
    repo = values_repo(tmp_path, {**vendored, "app/kustomization.yaml": (
        "namePrefix: k-\nhelmCharts:\n- name: shop\n  releaseName: store\n  valuesInline: {replicas: 2}\n"
        f"- name: shop\n  repo: {helm_repository}\n  version: 1.2.3\n  releaseName: pulled\n")})
    source = GitSource(str(repo.root))
    with pytest.raises(ManifestError, match=r"app/kustomization\.yaml:1: kustomize build: .*helm"):
        read_desired_state(source, source.resolve("HEAD"), settings(repo.root, path="app"))
    with pytest.raises(ManifestError, match=r"fetched only with gitops:kustomizeRemoteBases"):
        read_desired_state(source, source.resolve("HEAD"), settings(repo.root, path="app", kustomizeHelm=True))
    state = read_desired_state(source, source.resolve("HEAD"),
                               settings(repo.root, path="app", kustomizeHelm=True, kustomizeRemoteBases=True))
    deployments = {m.id.name: m for m in state.manifests if m.id.kind == "Deployment"}
    assert set(deployments) == {"k-store-web", "k-pulled-web"}
    assert deployments["k-store-web"].body["spec"]["replicas"] == 2

    repo.write({"app/kustomization.yaml": "helmCharts:\n- name: shop\n  releaseName: store\n"})
    state = read_desired_state(source, source.resolve("HEAD"), settings(repo.root, path="app", kustomizeHelm=True))
    assert {m.id.name for m in state.manifests if m.id.kind == "Deployment"} == {"store-web"}


def test_a_chart_sees_the_stacks_cluster_and_plain_pulumi_up_agrees(project):
    """`.Capabilities` are the cluster's (its version, and the API versions it serves: here a CRD
    installed outside the repo), at `gitops up` and in the program `pulumi up` runs alike."""
    ns, group = project.namespace, f"{project.namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    kubectl = ["kubectl", "--kubeconfig", str(project.kubeconfig)]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(crd), text=True, check=True, env=project.env,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", f"crd/gadgets.{group}"], check=True,
                   env=project.env, capture_output=True, timeout=60)
    try:
        project.write_stack(skipAwait=True, path="app", namespace=ns)
        project.repo.write({
            "app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
            "app/templates/ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
            "app/templates/caps.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n"
                                       "  version: {{ .Capabilities.KubeVersion.Version | quote }}\n"
                                       "  gadgets: {{ .Capabilities.APIVersions.Has \"GROUP/v1/Gadget\" | quote }}\n"
                                       "  group: {{ .Capabilities.APIVersions.Has \"GROUP/v1\" | quote }}\n"
                                       .replace("GROUP", group)})
        offline = project.gitops("render", "--repo", str(project.repo.root), "--path", "app").stdout
        assert "gadgets: 'false'" in offline  # `render` asks no cluster
        project.gitops("up", "--stack", project.stack, "-q")
        data = project.kubectl_json("get", "configmap", "caps", "-n", ns)["data"]
        version = project.kubectl_json("version")["serverVersion"]["gitVersion"]
        assert data == {"version": version, "gadgets": "true", "group": "true"}
        project.pulumi("preview", "--expect-no-changes")  # fails on any difference
    finally:
        subprocess.run([*kubectl, "delete", "crd", f"gadgets.{group}", "--wait=false"], env=project.env,
                       capture_output=True)
