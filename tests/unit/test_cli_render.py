"""`gitops render` as a user runs it: real git repos, a subprocess, stdout and the exit code."""
import subprocess
import sys

import yaml

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
    assert (missing_path.returncode == 1 and "nowhere:1: 'nowhere' does not exist at commit" in missing_path.stderr)


def test_render_escapes_a_file_name_that_would_end_its_comment_line(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write({"a\n---\nkind: Secret\n.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    result = gitops("render", "--repo", str(repo.root), "--namespace", "apps")
    assert result.returncode == 0, result.stderr
    assert "# ConfigMap/apps/a from a\\n---\\nkind: Secret\\n.yaml:1\n" in result.stdout
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "apps"}}]


def test_render_refuses_a_name_that_would_inject_a_document_and_escapes_it_in_the_problem(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write({"a.yaml": 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "a\\n---\\nkind: Secret\\e[2J"}\n'})
    result = gitops("render", "--repo", str(repo.root))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        "  a.yaml:3: metadata.name 'a\\n---\\nkind: Secret\\x1b[2J' of this ConfigMap must be a DNS-1123 subdomain "
        "(lowercase letters, digits, '-' and '.', each part between dots starting and ending with a letter or digit)"]


def test_render_refuses_misspelt_secrets_without_printing_their_values(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    secrets = ["apiVersion: v1\nkind: secret\nmetadata: {name: a}\nstringData: {password: hunter2}\n",
               "apiVersion: core/v1\nkind: Secret\nmetadata: {name: b}\nstringData: {password: hunter2}\n",
               "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\ndata: hunter2\n"]
    repo.write({"s.yaml": "---\n".join(secrets)})
    result = gitops("render", "--repo", str(repo.root), "--show-secrets")
    assert result.returncode == 1 and result.stdout == ""
    assert "hunter2" not in result.stderr
    assert "3 problems in the manifests" in result.stderr
    assert "write Secret" in result.stderr and "write v1" in result.stderr and "data must be a mapping" in result.stderr


def test_every_render_setting_is_a_render_flag_that_reaches_the_settings(tmp_path):
    """A folder can be tried without a stack file with each of its render settings."""
    from gitops import cli
    from gitops.settings import RenderSettings, keys

    assert set(cli.RENDER_FLAGS) == set(keys(RenderSettings))
    args = cli.build_parser().parse_args([
        "render", "--repo", str(tmp_path), "--kustomize-remote-bases", "--kustomize-helm", "--helm-chart", "shop",
        "--helm-repo", "https://charts.example", "--helm-version", "1.2.3", "--helm-release", "store",
        "--helm-values", "a.yaml", "--helm-values", "b.yaml", "--helm-set", '{"replicas": 2}', "--helm-hooks", "skip"])
    settings, _ = cli._settings(args)
    render = settings.render
    assert (render.kustomize_remote_bases, render.kustomize_helm, render.helm_chart, render.helm_repo,
            render.helm_version, render.helm_release, tuple(render.helm_values_files), render.helm_values,
            render.helm_hooks) == (True, True, "shop", "https://charts.example", "1.2.3", "store",
                                   ("a.yaml", "b.yaml"), {"replicas": 2}, "skip")
