"""A bad commit changes nothing (issue 11): the API server's verdict on the whole commit comes before
the first change, in `gitops up`, the watcher and the preview; an empty or escaping folder, and a
mass deletion by hand, are refused too."""
from __future__ import annotations

import json
import os
import subprocess

from conftest import example_files
from sessions import Watch, wait_for

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {value}}}\n"
BAD_SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}\n"


def twenty(project, value: str = "v") -> dict[str, str]:
    files = {f"c{i:02}.yaml": CM.format(name=f"c{i:02}", value=value) for i in range(20)}
    files["ns.yaml"] = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {project.namespace}}}\n"
    return files


def configmaps(project) -> dict[str, str]:
    items = project.kubectl_json("get", "configmaps", "-n", project.namespace)["items"]
    return {i["metadata"]["name"]: i.get("data", {}).get("k") for i in items if i["metadata"]["name"].startswith("c")}


def status(project) -> dict:
    return project.watch_status()


def test_a_commit_the_api_server_rejects_changes_nothing(project, tmp_path):
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
    project.repo.write(twenty(project, "one"))
    project.gitops("up", "--stack", project.stack, "-q")
    state_before = project.state_file().read_bytes()

    project.repo.write({**twenty(project, "two"), "bad.yaml": BAD_SERVICE}, "twenty edits and a bad Service")
    failed = project.gitops("up", "--stack", project.stack, check=False)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"  Service/{project.namespace}/bad (bad.yaml:1): "), failed.stderr
    assert "99999" in last, last
    assert configmaps(project) == {f"c{i:02}": "one" for i in range(20)}, "half of the commit was applied"
    assert not project.exists("service", "bad", "-n", project.namespace)
    assert project.state_file().read_bytes() == state_before

    # The watcher: the same verdict, nothing applied, and it keeps running with the reason in its status.
    watch = Watch(project, tmp_path / "watch.log", "--interval", "1")
    try:
        wait_for(lambda: (status(project).get("stalled") or {}).get("kind") == "rejected", 120, "the rejection")
        reason = status(project)["stalled"]["reason"]
        assert "Service/" in reason and "bad.yaml:1" in reason
        assert watch.process.poll() is None and watch.count("up.start") == 1  # the attempt, refused before the engine
        assert configmaps(project) == {f"c{i:02}": "one" for i in range(20)}
        assert project.state_file().read_bytes() == state_before
        fixed = project.repo.write({"bad.yaml": None}, "without the bad Service")
        wait_for(lambda: status(project).get("applied_commit") == fixed, 120, "the fixed commit applied")
        assert configmaps(project) == {f"c{i:02}": "two" for i in range(20)}
    finally:
        code = watch.stop()
    assert code == 0


def test_the_preview_of_a_rejected_commit_says_why(project):
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
    project.repo.write(twenty(project))
    project.gitops("up", "--stack", project.stack, "-q")
    project.repo.git("checkout", "-q", "-b", "feature")
    project.repo.write({"bad.yaml": BAD_SERVICE}, "bad")
    plan = project.gitops("preview", "--stack", project.stack, "--ref", "feature", "--format", "json", check=False)
    assert plan.returncode == 1
    error = json.loads(plan.stdout)["error"]
    assert "the API server rejects 1 object" in error and f"Service/{project.namespace}/bad (bad.yaml:1)" in error


def test_an_escaping_symlink_an_empty_folder_and_a_mass_delete_are_refused(project):
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off", path="apps")
    project.repo.write({f"apps/{name}": text for name, text in twenty(project).items()})
    project.gitops("up", "--stack", project.stack, "-q")
    state_before = project.state_file().read_bytes()

    # The folder swapped for a symlink to somewhere outside the repo.
    project.repo.git("rm", "-r", "-q", "apps")
    os.symlink(str(project.root), project.repo.root / "apps")
    project.repo.git("add", "apps")
    project.repo.git("commit", "-q", "-m", "apps is a link out")
    failed = project.gitops("up", "--stack", project.stack, check=False)
    assert failed.returncode == 1 and "points outside the repository" in failed.stderr, failed.stderr

    # An empty folder: refused, unless the stack allows it.
    project.repo.git("rm", "-q", "apps")
    project.repo.write({"apps/README.md": "moved elsewhere"}, "emptied")
    failed = project.gitops("up", "--stack", project.stack, check=False)
    assert failed.returncode == 1 and "no objects in 'apps'" in failed.stderr and "gitops:allowEmpty" in failed.stderr

    # Most of it deleted: the guard refuses `gitops up` as it does the watcher, and a flag allows it once.
    kept = {name: text for name, text in twenty(project).items() if name in ("c00.yaml", "c01.yaml", "ns.yaml")}
    project.repo.write({f"apps/{name}": text for name, text in kept.items()}, "most gone")
    failed = project.gitops("up", "--stack", project.stack, check=False)
    assert failed.returncode == 1 and "18 of 21 objects (86%) would be deleted" in failed.stderr, failed.stderr
    assert project.state_file().read_bytes() == state_before
    assert len(configmaps(project)) == 20
    project.gitops("up", "--stack", project.stack, "--allow-mass-delete", "-q")
    assert len(configmaps(project)) == 2


def test_a_custom_kind_without_its_crd_in_the_repo_is_scoped_as_the_cluster_serves_it(project):
    crd_group = f"{project.namespace}.gitops.dev"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"realms.{crd_group}"},
           "spec": {"group": crd_group, "scope": "Cluster", "names": {"kind": "Realm", "plural": "realms"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    subprocess.run(["kubectl", "--kubeconfig", str(project.kubeconfig), "apply", "-f", "-"], input=json.dumps(crd),
                   text=True, env=project.env, check=True, capture_output=True)
    try:
        wait_for(lambda: project.exists(f"crd/realms.{crd_group}"), 60, "the CRD")
        project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
        project.repo.write({**example_files(project.namespace),
                            "realm.yaml": f"apiVersion: {crd_group}/v1\nkind: Realm\nmetadata: {{name: north}}\n"})
        # Without the cluster, render takes it as namespaced (the usual guess) unless told otherwise.
        rendered = project.gitops("render", "--stack", project.stack).stdout
        assert f"# Realm/{project.namespace}/north" in rendered
        told = project.gitops("render", "--stack", project.stack, "--cluster-kinds", f"Realm.{crd_group}").stdout
        assert "# Realm/north from realm.yaml:1" in told
        # `gitops up` asks the cluster's discovery: no namespace is defaulted onto a cluster-scoped object.
        wait_for(lambda: subprocess.run(["kubectl", "--kubeconfig", str(project.kubeconfig), "get", "realms"],
                                        env=project.env, capture_output=True).returncode == 0, 60, "realms served")
        project.gitops("up", "--stack", project.stack, "-q")
        assert "Realm/north" in project.outputs()["subjects"]
        assert project.kubectl_json("get", f"realms.{crd_group}", "north")["metadata"].get("namespace") is None
    finally:
        subprocess.run(["kubectl", "--kubeconfig", str(project.kubeconfig), "delete", "--wait=false", "crd",
                        f"realms.{crd_group}"], env=project.env, capture_output=True)
