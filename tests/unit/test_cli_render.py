"""`gitops render` as a user runs it: real git repos, a subprocess, stdout and the exit code."""
import subprocess
import sys

from gitrepo import ConfigRepo


def gitops(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_render_without_a_stack_prints_the_desired_state(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write({"deploy/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\n"
                                   "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                                   "stringData: {password: hunter2}\n"})
    first = repo.head()
    repo.write({"deploy/app.yaml": None}, "remove")
    result = gitops("render", "--repo", str(repo.root), "--ref", first[:10], "--path", "deploy", "--namespace", "apps")
    assert result.returncode == 0, result.stderr
    assert f"# commit: {first}" in result.stdout
    assert "# ConfigMap/apps/a from deploy/app.yaml:1" in result.stdout
    assert "namespace: apps" in result.stdout
    assert "hunter2" not in result.stdout and "password: <redacted>" in result.stdout
    shown = gitops("render", "--repo", str(repo.root), "--ref", first, "--path", "deploy", "--show-secrets")
    assert "hunter2" in shown.stdout


def test_render_reports_every_problem_and_exits_1(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write({"a.yaml": "kind: ConfigMap\nmetadata: {name: a}\n", "b.yaml": "x: [\n"})
    result = gitops("render", "--repo", str(repo.root))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "2 problems in the manifests; nothing was applied:" in result.stderr
    assert "a.yaml:1: missing apiVersion" in result.stderr and "b.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_names_repo_ref_and_path_when_they_do_not_exist(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    missing_ref = gitops("render", "--repo", str(repo.root), "--ref", "nope")
    assert missing_ref.returncode == 1 and f"repo {repo.root}, ref nope" in missing_ref.stderr
    missing_path = gitops("render", "--repo", str(repo.root), "--path", "nowhere")
    assert (missing_path.returncode == 1 and "path not found in the commit" in missing_path.stderr
            and "path nowhere" in missing_path.stderr)
