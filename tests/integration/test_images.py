"""Image automation end to end: a real registry on loopback (Debian's docker-registry), the config
repo behind `git daemon` (pushes on), the real engine and control plane. Each `gitops watch
--once` is one cycle: scan, write back, `up`."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from gitdaemon import GitDaemon
from registry_helpers import FaultProxy, TokenServer, push_image
from registry_server import RegistryServer, ensure_registry
from sessions import kill_session

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
# The web tier. Tags move by policy; keep this comment.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
{annotations}spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: {image}{comment}
          ports:
            - containerPort: 80   # http
"""


def deployment(name: str, image: str, policy: str | None = None, annotations: dict[str, str] | None = None) -> str:
    comment = f' # {{"$imagepolicy": "{policy}"}}' if policy else ""
    notes = "".join(f'    {k}: "{v}"\n' for k, v in (annotations or {}).items())
    return DEPLOYMENT.format(name=name, image=image, comment=comment,
                             annotations=f"  annotations:\n{notes}" if notes else "")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = RegistryServer(ensure_registry(progress=lambda line: print(line, file=sys.stderr)),
                            tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


@pytest.fixture
def remote(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    daemon = GitDaemon(served, push=True)
    daemon.start()
    yield daemon
    daemon.stop()


class Images:
    """A project whose config repo is a bare repo behind git daemon, with an image to follow."""

    def __init__(self, project, registry, remote):
        self.project, self.registry, self.remote = project, registry, remote
        self.repository = f"{registry.host}/team/web-{uuid.uuid4().hex[:6]}"
        self.bare = remote.base / "config.git"
        self.url = remote.url("config.git")

    def push_tags(self, *tags: str) -> None:
        for tag in tags:
            push_image(self.registry.url, self.repository.split("/", 1)[1], tag)

    def publish(self, files: dict[str, str], message: str = "config") -> str:
        if not (self.project.repo.root / "namespace.yaml").exists():
            files = {"namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                       f"  name: {self.project.namespace}\n", **files}
        commit = self.project.repo.write(files, message)
        self.project.repo.push_to(self.bare)
        return commit

    def settings(self, **extra) -> None:
        self.project.write_stack(repo=self.url, ref="main", driftInterval=0, **extra)

    def watch_once(self, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(self.project.root), "watch",
                               "--stack", self.project.stack, "--once", "--log-format", "json"],
                              env={**self.project.env, **(env or {})}, capture_output=True, text=True, timeout=600)

    def remote_git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.bare}", *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def deployed_image(self, name: str) -> str:
        body = self.project.kubectl_json("get", "deployment", name, "-n", self.project.namespace)
        return body["spec"]["template"]["spec"]["containers"][0]["image"]

    def events(self, result: subprocess.CompletedProcess) -> list[dict]:
        return [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.startswith("{")]


@pytest.fixture
def images(project, registry, remote):
    return Images(project, registry, remote)


def test_accepted_tag_is_committed_and_deployed_locked_and_out_of_range_are_not(images):
    images.push_tags("1.0.0", "1.0.1", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest")
    web = deployment("web", f"{images.repository}:1.0.0", policy="web")
    worker = deployment("worker", f"{images.repository}:1.0.0",
                        annotations={"fluxcd.io/automated": "true", "fluxcd.io/locked": "true"})
    base = images.publish({"web.yaml": web, "worker.yaml": worker})
    images.settings(imagePolicies={"web": {"image": images.repository, "semver": ">=1.0.0 <2.0.0"}},
                    imageAuthor="Image Bot <bot@example.invalid>")

    result = images.watch_once()
    assert result.returncode == 2, result.stdout + result.stderr
    head = images.remote_git("rev-parse", "main")
    assert images.remote_git("rev-parse", "main~1") == base
    assert images.remote_git("log", "-1", "--format=%an <%ae>|%s", "main") == \
        f"Image Bot <bot@example.invalid>|Update image {images.repository} to 1.1.0"
    assert images.remote_git("show", "--format=", "--name-only", "main") == "web.yaml"
    # Only the marked value changed: every other byte of the file is as it was.
    assert images.remote_git("show", "main:web.yaml") == web.replace(":1.0.0", ":1.1.0").rstrip("\n")
    assert images.deployed_image("web") == f"{images.repository}:1.1.0"  # not 2.0.0, not the rc
    assert images.deployed_image("worker") == f"{images.repository}:1.0.0"  # locked
    assert images.project.outputs()["commit"] == head

    # Nothing new: no commit, no change.
    again = images.watch_once()
    assert again.returncode == 0, again.stdout + again.stderr
    assert images.remote_git("rev-parse", "main") == head


def test_user_commit_and_new_tag_together_end_with_both(images):
    images.push_tags("1.0.0")
    web = deployment("web", f"{images.repository}:1.0.0", policy="web")
    images.publish({"web.yaml": web,
                    "settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {k: one}\n"})
    images.settings(imagePolicies={"web": {"image": images.repository, "semver": "^1"}})
    assert images.watch_once().returncode == 2  # deployed; no tag to move to yet
    # Someone commits while a new tag arrives: the write-back goes on top of their commit.
    theirs = images.publish({"settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {k: two}\n"})
    images.push_tags("1.0.7")
    result = images.watch_once()
    assert result.returncode == 2, result.stdout + result.stderr
    assert images.remote_git("rev-parse", "main~1") == theirs
    assert images.deployed_image("web") == f"{images.repository}:1.0.7"
    config = images.project.kubectl_json("get", "configmap", "s", "-n", images.project.namespace)
    assert config["data"] == {"k": "two"}


def test_readonly_mode_deploys_without_writing_to_git(images):
    images.push_tags("1.0.0", "1.3.0")
    base = images.publish({"web.yaml": deployment("web", f"{images.repository}:1.0.0", policy="ns:web")})
    images.settings(imagePolicies={"web": {"image": images.repository, "semver": "~1.3"}}, imageMode="readonly")
    result = images.watch_once()
    assert result.returncode == 2, result.stdout + result.stderr
    assert images.remote_git("rev-parse", "main") == base
    assert images.deployed_image("web") == f"{images.repository}:1.3.0"


def test_registry_faults_change_nothing_and_recovery_follows(images, registry):
    proxy = FaultProxy(registry.url).start()
    try:
        images.repository = images.repository.replace(registry.host, proxy.host)
        images.push_tags("1.0.0")
        base = images.publish({"web.yaml": deployment("web", f"{images.repository}:1.0.0", policy="web")})
        images.settings(imagePolicies={"web": {"image": images.repository, "semver": "^1"}})
        assert images.watch_once().returncode == 2  # the first deploy
        images.push_tags("1.0.1")
        for mode in ("500", "401", "429", "down"):
            proxy.mode = mode
            result = images.watch_once()
            assert result.returncode == 0, (mode, result.stdout + result.stderr)
            assert "Traceback" not in result.stderr
            assert any(e["event"] == "images.registry_error" for e in images.events(result)), (mode, result.stderr)
            assert images.remote_git("rev-parse", "main") == base
            assert images.deployed_image("web") == f"{images.repository}:1.0.0"
        proxy.mode = "ok"
        result = images.watch_once()
        assert result.returncode == 2, result.stdout + result.stderr
        assert images.deployed_image("web") == f"{images.repository}:1.0.1"
    finally:
        proxy.stop()


def test_images_command_lists_policy_choices_with_token_auth(images, registry, tmp_path):
    (tmp_path / "tokens").mkdir()
    tokens = TokenServer(tmp_path / "tokens", "reader", "pa55-w0rd", service="test-registry",
                         issuer="test-issuer").start()
    secured = RegistryServer(ensure_registry(progress=lambda _: None), tmp_path / "secured",
                             token=tokens.auth()).start()
    try:
        repository = f"{secured.host}/team/api"
        for tag in ("2.0.0", "2.1.0", "3.0.0"):
            push_image(secured.url, "team/api", tag, auth=("reader", "pa55-w0rd"))
        api = deployment("api", f"{repository}:2.0.0",
                         annotations={"fluxcd.io/automated": "true", "fluxcd.io/tag.app": "semver:~2"})
        images.publish({"api.yaml": api})
        image_line = next(n for n, line in enumerate(api.splitlines(), 1) if "image:" in line)
        images.settings()
        credentials = {secured.host: {"username": "reader", "password": "pa55-w0rd"}}
        env = {**images.project.env, "GITOPS_REGISTRY_CREDENTIALS": json.dumps(credentials)}
        result = subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(images.project.root), "images",
                                 "--stack", images.project.stack, "--format", "json"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "pa55-w0rd" not in result.stdout + result.stderr
        (row,) = json.loads(result.stdout)["images"]
        assert (row["current"], row["chosen"], row["moves"]) == ("2.0.0", "2.1.0", True)
        assert (row["location"] == f"api.yaml:{image_line}" and row["subject"] == "Deployment/api"
                and row["container"] == "app")
        text = subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(images.project.root), "images",
                               "--stack", images.project.stack], env=env, capture_output=True, text=True, timeout=120)
        assert text.returncode == 0 and "-> 2.1.0" in text.stdout and "now 2.0.0" in text.stdout
    finally:
        secured.stop()
        tokens.stop()


def test_marks_in_a_kustomize_overlay_and_its_base_are_followed_and_written_back(images):
    """Flux's way with kustomize: a setter on the overlay's `images:` `newTag`, and one in a base
    outside the stack's path; both are found, committed where they are, and deployed."""
    images.push_tags("1.0.0", "1.1.0")
    api = f"{images.repository}-api"
    push_image(images.registry.url, api.split("/", 1)[1], "3.0.0")
    push_image(images.registry.url, api.split("/", 1)[1], "3.2.0")
    ns = images.project.namespace
    kustomization = (f"namespace: {ns}\nresources: [../base, namespace.yaml]\nimages:\n- name: {api}\n"
                     '  newTag: 3.0.0 # {"$imagepolicy": "api:tag"}\n')
    web = deployment("web", f"{images.repository}:1.0.0", policy="web")
    image_line = next(n for n, line in enumerate(web.splitlines(), 1) if "image:" in line)
    images.publish({"base/kustomization.yaml": "resources: [web.yaml, api.yaml]\n", "base/web.yaml": web,
                    "base/api.yaml": deployment("api", f"{api}:0.0.1"),
                    "overlay/kustomization.yaml": kustomization,
                    "overlay/namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"})
    images.settings(path="overlay", imagePolicies={"web": {"image": images.repository, "semver": "^1"},
                                                   "api": {"image": api, "semver": "^3"}})
    listed = images.project.gitops("images", "--stack", images.project.stack, "--format", "json")
    rows = {row["location"]: row for row in json.loads(listed.stdout)["images"]}
    assert {(where, row["current"], row["chosen"]) for where, row in rows.items()} == {
        (f"base/web.yaml:{image_line}", "1.0.0", "1.1.0"), ("overlay/kustomization.yaml:5", "3.0.0", "3.2.0")}

    result = images.watch_once()
    assert result.returncode == 2, result.stdout + result.stderr
    assert images.remote_git("show", "main:overlay/kustomization.yaml") == \
        kustomization.replace("newTag: 3.0.0", "newTag: 3.2.0").rstrip("\n")
    assert f"{images.repository}:1.1.0" in images.remote_git("show", "main:base/web.yaml")
    assert images.deployed_image("web") == f"{images.repository}:1.1.0"
    assert images.deployed_image("api") == f"{api}:3.2.0"


def test_registry_webhook_scans_at_once(images):
    import os
    import signal
    import time
    import urllib.error
    import urllib.request

    from gitops.watch.server import sign

    from gitdaemon import free_port

    images.push_tags("1.0.0")
    images.publish({"web.yaml": deployment("web", f"{images.repository}:1.0.0", policy="web")})
    images.settings(imagePolicies={"web": {"image": images.repository, "semver": "^1"}}, imageInterval=3600)
    port, secret = free_port(), b"registry-hook-secret"
    log = (images.project.root / "watch.log").open("w")
    watcher = subprocess.Popen([sys.executable, "-m", "gitops", "--project-dir", str(images.project.root), "watch",
                                "--stack", images.project.stack, "--interval", "3600", "--listen", f"127.0.0.1:{port}"],
                               env={**images.project.env, "GITOPS_WEBHOOK_SECRET": secret.decode()},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def hook(body: bytes, signature: str | None) -> int:
        headers = {"X-Hub-Signature-256": signature} if signature else {}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/registry", data=body, method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    def wait_image(tag: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if images.deployed_image("web") == f"{images.repository}:{tag}":
                    return True
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.3)
        return False

    try:
        assert wait_image("1.0.0", 180)
        images.push_tags("1.4.0")
        body = b'{"events": [{"action": "push"}]}'
        assert hook(body, None) == 401 and hook(body, sign(b"wrong", body)) == 401
        assert not wait_image("1.4.0", 5)  # no scan for an hour without a valid hook
        started = time.monotonic()
        assert hook(body, sign(secret, body)) == 202
        assert wait_image("1.4.0", 60), (images.project.root / "watch.log").read_text()
        assert time.monotonic() - started < 30
        assert images.remote_git("show", "main:web.yaml").count(":1.4.0") == 1
    finally:
        os.kill(watcher.pid, signal.SIGTERM)
        try:
            watcher.wait(120)
        finally:
            kill_session(watcher)  # whatever its engine run left
            log.close()


@pytest.fixture
def racy_remote(tmp_path):
    """A git daemon whose next fetch, once armed, moves `main` to a prepared commit while the
    fetch is being served: the fetcher's view is stale before it can push. Git runs the
    `uploadpack.packObjectsHook` only from global config, hence the daemon's own global file."""
    served = tmp_path / "served"
    served.mkdir()
    hook = tmp_path / "pack-objects-hook"
    arm = tmp_path / "armed"
    hook.write_text(f"""#!/bin/sh
if [ -f {arm} ]; then
  read -r from to < {arm}
  rm -f {arm}
  git --git-dir={served / 'config.git'} update-ref refs/heads/main "$to" "$from"
fi
exec "$@"
""")
    hook.chmod(0o755)
    config = tmp_path / "daemon-gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    daemon = GitDaemon(served, push=True, env={"GIT_CONFIG_GLOBAL": str(config)})
    daemon.start()
    daemon.arm = arm  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()


def test_push_race_ends_with_both_commits_and_the_cluster_at_the_result(project, registry, racy_remote):
    images = Images(project, registry, racy_remote)
    images.push_tags("1.0.0")
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: s}}\ndata: {{k: {value}}}\n"
    base = images.publish({"web.yaml": deployment("web", f"{images.repository}:1.0.0", policy="web"),
                           "settings.yaml": config_map.format(value="one")})
    images.settings(imagePolicies={"web": {"image": images.repository, "semver": "^1"}})
    assert images.watch_once().returncode == 2
    # Their commit, prepared on a side branch; the armed hook makes it main's head in the middle
    # of the write-back's fetch, after the write-back has seen `base` as the head.
    theirs = images.project.repo.write({"settings.yaml": config_map.format(value="two")}, "their change")
    images.project.repo.git("push", "-q", "origin", "HEAD:refs/heads/theirs")
    racy_remote.arm.write_text(f"{base} {theirs}\n")
    images.push_tags("1.1.0")

    result = images.watch_once()
    assert result.returncode == 2, result.stdout + result.stderr
    assert not racy_remote.arm.exists(), "the race was not triggered"
    committed = [e for e in images.events(result) if e["event"] == "images.committed"]
    assert committed and committed[0]["attempts"] == 2, result.stderr
    assert images.remote_git("rev-parse", "main~1") == theirs  # ours on top of theirs, no force
    assert images.remote_git("show", "main:web.yaml").count(":1.1.0") == 1
    assert images.deployed_image("web") == f"{images.repository}:1.1.0"
    assert images.project.kubectl_json("get", "configmap", "s", "-n", project.namespace)["data"] == {"k": "two"}
