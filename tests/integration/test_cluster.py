"""The local control plane, end to end: real etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on loopback.

The tests in this module share one cluster and run in file order; the last
one tears it down and checks that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gitops.local.cluster import (
    COMPONENTS,
    Cluster,
    ClusterError,
    cluster_down,
    cluster_status,
    cluster_up,
)

from sessions import wait_for

pytestmark = pytest.mark.integration

NEEDED = (*COMPONENTS, "kubectl")


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    # Only the control-plane family, not the whole engine the session's
    # `tools` fixture ensures; like it, a missing binary is built or fails.
    from gitops.local.tools import ensure_tools

    return {n: t.path for n, t in ensure_tools(progress=lambda _: None, names=NEEDED).items()}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local") / "cluster"


@pytest.fixture(scope="module")
def control_plane(binaries, root):
    # Not the session-wide `cluster` fixture: the last test here tears this
    # one down, which must not pull the floor from under other modules.
    lines: list[str] = []
    t0 = time.monotonic()
    c = cluster_up(binaries, root, progress=lines.append)
    elapsed = time.monotonic() - t0
    print(f"\ncontrol plane start-up: {elapsed:.1f} s")
    print("\n".join(lines))
    yield c
    cluster_down(root, progress=lambda _: None)  # no-op if a test already did it


def kubectl(binaries, control_plane: Cluster, *args: str, stdin: str | None = None) -> str:
    r = subprocess.run(
        [str(binaries["kubectl"]), f"--kubeconfig={control_plane.kubeconfig}", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_kubeconfig_works(binaries, control_plane):
    assert control_plane.server.startswith("https://127.0.0.1:")
    nodes = json.loads(kubectl(binaries, control_plane, "get", "nodes", "-o", "json"))["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["kwok-node-0"]
    ready = [c for c in nodes[0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert not nodes[0]["spec"].get("taints")


def test_kubeconfig_is_self_contained(binaries, control_plane, tmp_path):
    # Copied elsewhere, it must still work: no file paths inside.
    copy = tmp_path / "config"
    copy.write_bytes(control_plane.kubeconfig.read_bytes())
    r = subprocess.run([str(binaries["kubectl"]), f"--kubeconfig={copy}", "get", "ns", "default"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_everything_listens_on_loopback_only(control_plane):
    ours = set(control_plane.pids.values())
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        inodes = _listening_inodes(table)
        for pid in ours:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    listeners.append((pid, inodes[target[8:-1]]))
    assert listeners, "found no listening sockets at all"
    for pid, addr in listeners:
        assert addr in ("0100007F", "0000000000000000FFFF00000100007F"), (pid, addr)


def _listening_inodes(table: str) -> dict[str, str]:
    out = {}
    for line in Path(table).read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A":  # LISTEN
            out[f[9]] = f[1].split(":")[0]
    return out


def test_up_again_returns_the_running_cluster(binaries, control_plane, root):
    again = cluster_up(binaries, root, progress=lambda _: None)
    assert again == control_plane
    assert cluster_status(root) == control_plane


def test_deployment_becomes_available(binaries, control_plane):
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    kubectl(binaries, control_plane, "apply", "-f", "-", stdin=json.dumps(manifest))

    def available():
        d = json.loads(kubectl(binaries, control_plane, "get", "deployment", "web", "-o", "json"))
        return d.get("status", {}).get("availableReplicas") == 2

    t0 = time.monotonic()
    wait_for(what="2 available replicas", condition=available)
    print(f"\ndeployment available in {time.monotonic() - t0:.1f} s")
    pods = json.loads(
        kubectl(binaries, control_plane, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}
    assert all(p["status"]["phase"] == "Running" for p in pods)

    # Garbage collection and kwok's pod-delete stage: the pods go with it.
    kubectl(binaries, control_plane, "delete", "deployment", "web")
    wait_for(what="pods to be deleted", condition=lambda: not json.loads(
        kubectl(binaries, control_plane, "get", "pods", "-l", "app=web", "-o", "json"))["items"])


def test_namespace_deletion_completes(binaries, control_plane):
    kubectl(binaries, control_plane, "create", "namespace", "doomed")
    kubectl(binaries, control_plane, "-n", "doomed", "create", "configmap", "c", "--from-literal=k=v")
    kubectl(binaries, control_plane, "delete", "namespace", "doomed", "--wait=false")

    def gone():
        names = kubectl(binaries, control_plane, "get", "ns", "-o", "name").split()
        return "namespace/doomed" not in names

    t0 = time.monotonic()
    wait_for(what="namespace doomed to disappear", condition=gone)
    print(f"\nnamespace deleted in {time.monotonic() - t0:.1f} s")


def test_second_cluster_side_by_side_and_stale_state(binaries, control_plane, tmp_path):
    # Another root gets its own ports, and stopping it leaves the first alone.
    other = tmp_path / "other"
    second = cluster_up(binaries, other, progress=lambda _: None)
    try:
        assert second.server != control_plane.server
        assert not set(second.pids.values()) & set(control_plane.pids.values())

        # A component that died makes the cluster unhealthy; cluster_up then
        # clears the leftovers and starts afresh.
        os.kill(second.pids["kube-apiserver"], signal.SIGKILL)
        wait_for(what="kube-apiserver to die", condition=lambda: not _running(second.pids["kube-apiserver"]))
        assert cluster_status(other) is None
        third = cluster_up(binaries, other, progress=lambda _: None)
        assert third.server != second.server
        for pid in second.pids.values():
            assert not _running(pid)
    finally:
        cluster_down(other, progress=lambda _: None)
    assert not other.exists()
    assert cluster_status(control_plane.root) == control_plane


def test_failed_start_stops_what_it_started(binaries, tmp_path):
    broken = {**binaries, "kwok": Path("/bin/false")}
    root = tmp_path / "broken"
    with pytest.raises(ClusterError, match=r"(?s)kwok exited with code 1.*last lines of"):
        cluster_up(broken, root, progress=lambda _: None)
    state = json.loads((root / "state.json").read_text())
    for info in state["processes"].values():
        assert not _running(info["pid"])
    assert cluster_down(root, progress=lambda _: None) is False
    assert not root.exists()


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        os.waitpid(pid, 0)  # our child: reap it
        return False
    return True


def test_down_stops_exactly_what_it_started(control_plane, root):
    pids = dict(control_plane.pids)
    lines: list[str] = []
    assert cluster_down(root, progress=lines.append) is True
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still there"
    assert not root.exists()
    assert cluster_status(root) is None
    # Again: harmless, and says nothing was running.
    assert cluster_down(root, progress=lambda _: None) is False


def test_missing_binary_is_reported(binaries, tmp_path):
    partial = {k: v for k, v in binaries.items() if k != "kwok"}
    with pytest.raises(ClusterError, match="kwok"):
        cluster_up(partial, tmp_path / "c", progress=lambda _: None)
    assert not (tmp_path / "c").exists()


def test_refuses_a_directory_that_is_not_a_cluster(binaries, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "logs").mkdir()
    with pytest.raises(ClusterError, match="not a local cluster"):
        cluster_up(binaries, tmp_path, progress=lambda _: None)
    cluster_down(tmp_path, progress=lambda _: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "logs").is_dir()
