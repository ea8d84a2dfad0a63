"""`gitops up` and `pulumi up` against the real engine and the local control plane (issue 3)."""
from __future__ import annotations

import base64

from conftest import example_files

SECRET_VALUE = "s3cr3t-demo-token"


def test_bundled_example_applies_with_every_field_from_git(project):
    commit = project.repo.write(example_files(project.namespace), "example")
    project.write_stack()
    result = project.gitops("up", "--stack", project.stack)
    ns = project.namespace
    labels = project.kubectl_json("get", "namespace", ns)["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "gitops-demo"
    config = project.kubectl_json("get", "configmap", "web-settings", "-n", ns)
    assert config["data"] == {"GREETING": "hello from git", "LOG_LEVEL": "info"}
    secret = project.kubectl_json("get", "secret", "web-credentials", "-n", ns)
    assert base64.b64decode(secret["data"]["API_TOKEN"]).decode() == SECRET_VALUE
    deployment = project.kubectl_json("get", "deployment", "web", "-n", ns)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27.3"
    # kwok runs the pods, so the provider's readiness wait passed for real.
    assert deployment["status"].get("availableReplicas") == 2
    assert project.kubectl_json("get", "service", "web", "-n", ns)["spec"]["ports"][0]["port"] == 80
    # The CRD and its instance arrived in the same `up`.
    backup = project.kubectl_json("get", f"backups.{ns}.gitops.dev", "nightly", "-n", ns)
    assert backup["spec"] == {"schedule": "0 3 * * *", "retainDays": 7}
    outputs = project.outputs()
    assert outputs["commit"] == commit
    assert outputs["objectCount"] == 7
    assert f"Deployment/{ns}/web" in outputs["subjects"]
    assert "create 9" in result.stdout  # 7 objects, the provider and the stack itself
    assert "from $PATH" not in result.stdout  # the provider comes from Pulumi's plugin cache, found by version


def test_edit_delete_move_and_api_version_change(project):
    ns = project.namespace
    schema = "{openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}"
    crd = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{ns}.gitops.dev}}
spec:
  group: {ns}.gitops.dev
  scope: Namespaced
  names: {{kind: Gadget, plural: gadgets}}
  versions:
  - {{name: v1beta1, served: true, storage: false, schema: {schema}}}
  - {{name: v1, served: true, storage: true, schema: {schema}}}
"""
    gadget = "apiVersion: {ns}.gitops.dev/{v}\nkind: Gadget\nmetadata: {{name: g}}\nspec: {{size: 1}}\n"
    project.repo.write({
        "ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
        "crd.yaml": crd,
        "gadget.yaml": gadget.format(ns=ns, v="v1beta1"),
        "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: one}\n",
        "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: b}\n",
    })
    project.write_stack()
    project.gitops("up", "--stack", project.stack)
    before = project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]

    project.repo.write({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: two}\n"}, "edit a")
    project.gitops("up", "--stack", project.stack)
    after = project.kubectl_json("get", "configmap", "a", "-n", ns)
    assert after["data"] == {"k": "two"}
    assert after["metadata"]["uid"] == before["uid"]
    assert after["metadata"]["resourceVersion"] != before["resourceVersion"]

    project.repo.write({"b.yaml": None}, "delete b")
    project.gitops("up", "--stack", project.stack)
    assert not project.exists("configmap", "b", "-n", ns)

    moved_before = project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]["resourceVersion"]
    project.repo.move("a.yaml", "deeper/renamed-a.yml")
    result = project.gitops("up", "--stack", project.stack)
    assert "create" not in result.stdout.split("up: stack")[-1] and "delete" not in result.stdout.split("up: stack")[-1]
    assert project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]["resourceVersion"] == moved_before

    gadget_uid = project.kubectl_json("get", f"gadgets.{ns}.gitops.dev", "g", "-n", ns)["metadata"]["uid"]
    project.repo.write({"gadget.yaml": gadget.format(ns=ns, v="v1").replace("size: 1", "size: 2")}, "v1beta1 -> v1")
    result = project.gitops("up", "--stack", project.stack)
    summary = result.stdout.split("up: stack")[-1]
    assert "replace" not in summary and "delete" not in summary and "create" not in summary, result.stdout
    moved = project.kubectl_json("get", f"gadgets.v1.{ns}.gitops.dev", "g", "-n", ns)
    assert moved["metadata"]["uid"] == gadget_uid
    assert moved["spec"] == {"size": 2}


def test_broken_commit_changes_nothing(project):
    ns = project.namespace
    project.repo.write({"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
                        "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: one}\n"})
    project.write_stack()
    project.gitops("up", "--stack", project.stack)
    state_before = project.state_file().read_bytes()
    object_before = project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]["resourceVersion"]

    project.repo.write({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: two}\n",
                        "new.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\n",
                        "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: [\n"},
                       "half good, half broken")
    result = project.gitops("up", "--stack", project.stack, check=False)
    assert result.returncode == 1
    assert "broken.yaml:" in result.stderr and "nothing was applied" in result.stderr
    assert project.state_file().read_bytes() == state_before
    assert project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]["resourceVersion"] == object_before
    assert not project.exists("configmap", "new", "-n", ns)

    # Plain `pulumi up` on the same commit fails in the program, before registering anything.
    direct = project.pulumi("up", "--yes", check=False)
    assert direct.returncode != 0 and "broken.yaml:" in direct.stdout + direct.stderr
    assert project.kubectl_json("get", "configmap", "a", "-n", ns)["metadata"]["resourceVersion"] == object_before
    assert not project.exists("configmap", "new", "-n", ns)


def test_secret_values_never_appear_in_state_or_output(project):
    project.repo.write(example_files(project.namespace), "example")
    project.write_stack()
    outputs = [project.gitops("up", "--stack", project.stack)]
    project.repo.write({"app/config.yaml": (example_files(project.namespace)["app/config.yaml"]
                                            .replace(SECRET_VALUE, SECRET_VALUE + "-rotated"))}, "rotate")
    outputs.append(project.gitops("up", "--stack", project.stack))
    outputs.append(project.gitops("render", "--stack", project.stack))
    outputs.append(project.pulumi("preview", "--diff"))
    outputs.append(project.pulumi("stack", "export"))
    state = project.state_file().read_text()
    forms = [SECRET_VALUE, SECRET_VALUE + "-rotated", base64.b64encode(SECRET_VALUE.encode()).decode(),
             base64.b64encode((SECRET_VALUE + "-rotated").encode()).decode()]
    for text in [state, *(o.stdout + o.stderr for o in outputs)]:
        for form in forms:
            assert form not in text
    assert '"4dabf18193072939515e22adb298388d"' in state  # Pulumi's secret signature: the value is encrypted


def test_plain_pulumi_up_gives_the_same_result_as_gitops_up(project):
    commit = project.repo.write(example_files(project.namespace), "example")
    project.write_stack()
    project.gitops("up", "--stack", project.stack)
    first = project.outputs()
    direct = project.pulumi("up", "--yes", "--expect-no-changes")
    assert direct.returncode == 0
    assert project.outputs() == first
    assert first["commit"] == commit
    # And the other way round: a change applied by `pulumi up` leaves `gitops up` nothing to do.
    project.repo.write({"extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"}, "extra")
    project.pulumi("up", "--yes")
    assert project.exists("configmap", "extra", "-n", project.namespace)
    again = project.gitops("up", "--stack", project.stack)
    assert "same 10" in again.stdout.split("up: stack")[-1]  # 8 objects, the provider, the stack


def test_prune_off_leaves_removed_objects_in_the_cluster(project):
    ns = project.namespace
    project.repo.write({"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
                        "keep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n",
                        "gone.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n"})
    project.write_stack(prune=False)
    project.gitops("up", "--stack", project.stack)
    project.repo.write({"gone.yaml": None}, "remove from git")
    project.gitops("up", "--stack", project.stack)
    assert project.exists("configmap", "gone", "-n", ns)  # forgotten by Pulumi, not deleted
    assert f"ConfigMap/{ns}/gone" not in project.outputs()["subjects"]


def test_refresh_puts_back_an_object_deleted_by_hand(project):
    import subprocess

    project.repo.write(example_files(project.namespace), "example")
    project.write_stack()
    project.gitops("up", "--stack", project.stack, "--quiet")
    subprocess.run(["kubectl", "--kubeconfig", str(project.kubeconfig), "delete", "configmap", "web-settings",
                    "-n", project.namespace], env=project.env, check=True, capture_output=True)
    project.gitops("up", "--stack", project.stack, "--quiet")
    assert not project.exists("configmap", "web-settings", "-n", project.namespace)  # the state still has it
    project.gitops("up", "--stack", project.stack, "--quiet", "--refresh")
    assert project.exists("configmap", "web-settings", "-n", project.namespace)
