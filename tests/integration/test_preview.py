"""`gitops preview`: a plan of a branch against the real engine, state and control plane,
posted to a loopback GitHub API. Afterwards the state file and the cluster are as before."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time

import pytest

from conftest import example_files
from sessions import kill_session

SECRET_OLD, SECRET_NEW = "s3cr3t-demo-token", "n3w-pr-s3cr3t-value"


def snapshot(project) -> dict[str, str]:
    """Every object of the test's namespace by kind/name -> resourceVersion, plus its CRD."""
    objects = project.kubectl_json("get", "all,configmaps,secrets", "-n", project.namespace)
    crds = project.kubectl_json("get", "crd", f"backups.{project.namespace}.gitops.dev")
    items = objects["items"] + [crds]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in items}


def state_digest(project) -> str:
    return hashlib.sha256(project.state_file().read_bytes()).hexdigest()


@pytest.fixture
def applied(project):
    project.repo.write(example_files(project.namespace), "example")
    project.write_stack(ref="main")  # the stack follows main; the tests preview the branch
    project.gitops("up", "--stack", project.stack, "--quiet")
    project.repo.git("checkout", "-q", "-b", "feature")
    return project


def edit(project, path: str, *replacements: tuple[str, str]) -> str:
    text = (project.repo.root / path).read_text()
    for old, new in replacements:
        assert old in text, (path, old)
        text = text.replace(old, new)
    return text


def preview(project, *args: str, check: bool = True):
    return project.gitops("preview", "--stack", project.stack, *args, check=check)


def test_branch_plan_has_counts_and_field_diffs_and_changes_nothing(applied):
    project = applied
    web = edit(project, "app/web.yaml", ("replicas: 2", "replicas: 3"),
               ("app: web\n  template", "app: web2\n  template"),
               ("      labels:\n        app: web\n", "      labels:\n        app: web2\n"))
    web = web.split("---")[0]  # the Service goes
    config = edit(project, "app/config.yaml", ("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    config += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: \"yes\"\n"
    branch = project.repo.write({"app/web.yaml": web, "app/config.yaml": config}, "feature")
    before, digest = snapshot(project), state_digest(project)

    result = preview(project, "--ref", "feature", "--format", "json", "--detailed-exitcode", check=False)
    assert result.returncode == 2, result.stderr
    plan = json.loads(result.stdout)
    assert plan["commit"] == branch
    assert plan["counts"] == {"create": 1, "update": 1, "replace": 1, "delete": 1}
    changes = {c["subject"]: c for c in plan["changes"]}
    ns = project.namespace
    assert changes[f"ConfigMap/{ns}/extra"]["op"] == "create"
    assert changes[f"Service/{ns}/web"]["op"] == "delete"
    settings = {f["path"]: f for f in changes[f"ConfigMap/{ns}/web-settings"]["fields"]}
    assert (settings["data.LOG_LEVEL"]["old"], settings["data.LOG_LEVEL"]["new"]) == ("info", "debug")
    deployment = changes[f"Deployment/{ns}/web"]
    assert deployment["op"] == "replace"
    assert deployment["replace_reasons"] == ["spec.selector.matchLabels.app"]
    replicas = {f["path"]: f for f in deployment["fields"]}["spec.replicas"]
    assert (replicas["old"], replicas["new"]) == (2, 3)

    assert state_digest(project) == digest
    assert snapshot(project) == before
    text = preview(project, "--ref", "feature").stdout
    assert "spec.selector.matchLabels.app" in text and "replace" in text.lower()


def test_secret_change_shows_no_value_in_any_format(applied):
    project = applied
    project.repo.write({"app/config.yaml": edit(project, "app/config.yaml", (SECRET_OLD, SECRET_NEW))}, "rotate")
    digest = state_digest(project)
    outputs = [preview(project, "--ref", "feature", "--format", fmt).stdout for fmt in ("text", "markdown", "json")]
    plan = json.loads(outputs[2])
    (change,) = plan["changes"]
    assert change["subject"] == f"Secret/{project.namespace}/web-credentials"
    (field,) = change["fields"]
    assert field["secret"] and field["old"] is None and field["new"] is None
    state = project.state_file().read_text()
    for value in (SECRET_OLD, SECRET_NEW):
        encoded = base64.b64encode(value.encode()).decode()
        for text in [*outputs, state]:
            assert value not in text and encoded not in text
    assert "web-credentials" in outputs[1]
    assert state_digest(project) == digest


def test_moving_files_plans_no_change(applied):
    project = applied
    project.repo.move("app/web.yaml", "workloads/web/web.yaml")
    result = preview(project, "--ref", "feature", "--detailed-exitcode", "--format", "json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["changes"] == [] and plan["unchanged"] == 7


def test_invalid_branch_gives_the_problem_list_and_exit_1(applied):
    project = applied
    project.repo.write({"app/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
                        "app/bad.yaml": "kind: [unclosed\n"}, "broken")
    digest = state_digest(project)
    result = preview(project, "--ref", "feature", "--detailed-exitcode", check=False)
    assert result.returncode == 1
    assert "app/broken.yaml:" in result.stdout and "app/bad.yaml:" in result.stdout
    assert "Traceback" not in result.stderr
    assert state_digest(project) == digest


def test_interrupted_preview_leaves_state_and_lock_alone(applied):
    project = applied
    project.repo.write({"app/config.yaml": edit(project, "app/config.yaml", ("LOG_LEVEL: info", "LOG_LEVEL: warn"))})
    digest = state_digest(project)
    process = subprocess.Popen([sys.executable, "-m", "gitops", "--project-dir", str(project.root), "preview",
                                "--stack", project.stack, "--ref", "feature"], env=project.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        # Kill the whole run (CLI, engine, language host, provider) once the engine is running.
        while time.monotonic() < deadline and not _has_descendant(process.pid, "pulumi"):
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        kill_session(process)  # its plugins run in process groups of their own, but in its session
    assert state_digest(project) == digest
    locks = list(project.state_file().parents[2].glob(f"locks/**/{project.stack}/*.json"))
    assert locks == []
    project.gitops("up", "--stack", project.stack, "--quiet")  # the stack is not locked
    settings = project.kubectl_json("get", "configmap", "web-settings", "-n", project.namespace)
    assert settings["data"]["LOG_LEVEL"] == "info"


def _has_descendant(pid: int, name: str) -> bool:
    result = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True)
    children: dict[int, list[tuple[int, str]]] = {}
    for line in result.stdout.splitlines():
        child, parent, comm = line.split(None, 2)
        children.setdefault(int(parent), []).append((int(child), comm))
    stack = [pid]
    while stack:
        for child, comm in children.get(stack.pop(), []):
            if comm.startswith(name):
                return True
            stack.append(child)
    return False


TOKEN = "ghp_preview_test_token_0123456789"


@pytest.fixture
def github():
    from fake_github import FakeGitHub

    with FakeGitHub(token=TOKEN) as fake:
        yield fake


def post(project, github, *extra: str, check: bool = True):
    env = {**project.env, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
    return subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(project.root), "preview",
                           "--stack", project.stack, "--ref", "feature", "--comment", "github:acme/config#7",
                           "--status", *extra], env=env, capture_output=True, text=True, timeout=600, check=check)


def test_pull_request_comment_is_posted_then_edited_in_place(applied, github):
    project = applied
    first = project.repo.write({"app/config.yaml": edit(project, "app/config.yaml",
                                                        ("LOG_LEVEL: info", "LOG_LEVEL: debug"))})
    post(project, github)
    (comment,) = github.comments_on("acme/config", 7)
    assert "web-settings" in comment["body"] and '"debug"' in comment["body"]
    assert [(s["sha"], s["state"]) for s in github.statuses] == [(first, "success")]

    second = project.repo.write({"app/config.yaml": edit(project, "app/config.yaml",
                                                         ("LOG_LEVEL: debug", "LOG_LEVEL: trace"))})
    post(project, github)
    (edited,) = github.comments_on("acme/config", 7)
    assert edited["id"] == comment["id"] and '"trace"' in edited["body"] and '"debug"' not in edited["body"]
    assert [s["sha"] for s in github.statuses] == [first, second]
    assert all(s["context"] == f"gitops/preview/{project.stack}" for s in github.statuses)
    assert len(github.calls("POST", "/comments")) == 1 and len(github.calls("PATCH")) == 1


def test_a_plan_of_thousands_of_objects_is_split_across_comments(applied, github):
    project = applied
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk-{i:04d}\ndata:\n  value: \"{'x' * 40}-{i}\"\n"
            for i in range(2000)]
    project.repo.write({"bulk/many.yaml": "---\n".join(docs)}, "bulk")
    post(project, github, "--no-refresh")
    comments = github.comments_on("acme/config", 7)
    assert len(comments) > 1
    assert all(len(c["body"]) <= 65536 for c in comments)
    assert "2000" in comments[0]["body"]  # the summary travels in the first part
    bodies = "".join(c["body"] for c in comments)
    assert all(bodies.count(f"ConfigMap/{project.namespace}/bulk-{i:04d}<") == 1 for i in (0, 999, 1999))


def test_unreachable_api_is_a_clear_error(applied):
    project = applied
    project.repo.write({"app/config.yaml": edit(project, "app/config.yaml", ("LOG_LEVEL: info", "LOG_LEVEL: debug"))})
    env = {**project.env, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(project.root), "preview",
                             "--stack", project.stack, "--ref", "feature", "--comment", "github:acme/config#7"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "cannot reach GitHub API" in result.stderr and "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout
