"""A real Kubernetes control plane on loopback, for local runs and tests.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain
processes; kwok stands in for kubelets, so pods on its fake node "run"
without containers. Everything a cluster owns lives under one root
directory (certificates, etcd data, logs, and a state file recording the
PIDs we started), which is what lets two clusters coexist and lets
`cluster_down` stop exactly its own processes and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests
import yaml

from ..errors import ClusterError
from ..paths import cluster_root
from ..procs import pid_alive
from ..text import log_tail
from . import pki as pki_mod
from .ports import free_ports

# Start order; stopping goes in reverse so nothing loses its API server or
# etcd while it is still shutting down.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

NAME = "gitops-local"
NODE_NAME = "kwok-node-0"
NODE_IP = "10.240.0.1"
SERVICE_CIDR = "10.0.0.0/24"
# kwok invents pod IPs; its default (10.0.0.1/24) overlaps the service range.
POD_CIDR = "10.244.0.1/16"

# Popen objects of the components this process started. Kept referenced so
# Python neither warns that they still run nor reaps them behind our back;
# the components are meant to outlive the call (and this process).
_STARTED: list[subprocess.Popen[bytes]] = []

_STATE_VERSION = 1
_STOP_GRACE = 10.0
_POLL = 0.2
# Only these are ever deleted from a root, so pointing `root` at a directory
# that holds other things cannot destroy them.
_OWNED_ENTRIES = ("state.json", "state.tmp", "kubeconfig", "kwok.yaml", "pki", "etcd", "logs",
                  "volume-plugins")


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def kwok_config(self) -> Path:
        return self.root / "kwok.yaml"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


@dataclass(frozen=True)
class Cluster:
    root: Path
    kubeconfig: Path
    server: str
    pids: Mapping[str, int]


def _resolve(root: Path | None) -> Path:
    # One spelling per directory: the root is matched against command lines.
    return Path(root or default_root()).expanduser().resolve()


def default_root() -> Path:
    return cluster_root()


# ---------------------------------------------------------------- public API


def cluster_up(
    binaries: Mapping[str, Path],
    root: Path | None = None,
    progress: Callable[[str], None] = print,
    timeout: float = 120,
) -> Cluster:
    """Start a control plane at `root`, or return the healthy one already there."""
    paths = ClusterPaths(_resolve(root))
    bins = _check_binaries(binaries)

    running = cluster_status(paths.root)
    if running is not None:
        progress(f"control plane already running at {running.server}; kubeconfig: {running.kubeconfig}")
        return running
    if paths.state_file.exists():
        progress(f"cleaning up stale cluster state in {paths.root}")
        cluster_down(paths.root, progress)
    elif _foreign_entries(paths):
        raise ClusterError(f"{paths.root} holds files that are not a local cluster's; "
                           "choose another directory")
    _remove_owned(paths)

    t0 = time.monotonic()
    deadline = t0 + timeout
    for d in (paths.root, paths.logs, paths.etcd_data):
        d.mkdir(parents=True, exist_ok=True)
    # etcd refuses a data dir that others can read.
    paths.etcd_data.chmod(0o700)
    keys = pki_mod.generate(paths.pki)
    names = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
    ports = dict(zip(names, free_ports(len(names))))
    if len(ports) < len(names):
        raise ClusterError("no free ports on 127.0.0.1")
    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    _write_kubeconfig(paths.kubeconfig, server, keys)
    paths.kwok_config.write_bytes(
        resources.files("gitops.local").joinpath("kwok-stages.yaml").read_bytes())

    state: dict[str, Any] = {
        "version": _STATE_VERSION,
        "started_at": time.time(),
        "server": server,
        "ports": ports,
        "processes": {},
    }
    _write_state(paths, state)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, args: list[str], where: str) -> None:
        progress(f"starting {name} on {where}")
        procs[name] = _spawn(paths, name, bins[name], args)
        _STARTED.append(procs[name])
        # Recorded at once, so even a half-started cluster can be torn down.
        state["processes"][name] = {"pid": procs[name].pid, "binary": str(bins[name])}
        _write_state(paths, state)

    def wait(what: str, name: str, check: Callable[[], bool], done: str = "") -> None:
        # `name` is the component whose exit or log explains a failure.
        progress(f"waiting for {what} ...")
        started = time.monotonic()
        _wait_until(paths, name, procs[name], check, deadline, timeout)
        progress(f"{done or what + ' ready'} in {time.monotonic() - started:.1f} s")

    api = _session(keys)
    try:
        start("etcd", _etcd_args(paths, ports), f"127.0.0.1:{ports['etcd']}")
        wait("etcd", "etcd", lambda: _etcd_healthy(ports["etcd"]))

        start("kube-apiserver", _apiserver_args(paths, keys, ports),
              f"127.0.0.1:{ports['kube-apiserver']}")
        wait("kube-apiserver", "kube-apiserver", lambda: _ok(api, f"{server}/readyz"))

        # These three only need the API server, so they start together.
        start("kube-controller-manager", _kcm_args(paths, keys, ports),
              f"127.0.0.1:{ports['kube-controller-manager']}")
        start("kube-scheduler", _scheduler_args(paths, ports),
              f"127.0.0.1:{ports['kube-scheduler']}")
        start("kwok", _kwok_args(paths, ports), f"127.0.0.1:{ports['kwok']}")
        _create_node(api, server)
        for name in ("kube-controller-manager", "kube-scheduler"):
            wait(name, name, partial(_ok_self_signed, f"https://127.0.0.1:{ports[name]}/healthz"))
        wait("kwok", "kwok", lambda: _ok_plain(f"http://127.0.0.1:{ports['kwok']}/healthz"))

        wait(f"node {NODE_NAME}", "kwok", lambda: _node_ready(api, server),
             done=f"node {NODE_NAME} Ready")
        wait("default service account", "kube-controller-manager",
             lambda: _ok(api, f"{server}/api/v1/namespaces/default/serviceaccounts/default"))
    except BaseException:
        # Logs stay for inspection; the next cluster_up or cluster_down
        # removes the directory.
        progress("start-up failed; stopping the components already started")
        _stop_all(paths, state, lambda _msg: None)
        raise
    finally:
        api.close()

    progress(f"control plane up in {time.monotonic() - t0:.1f} s; kubeconfig: {paths.kubeconfig}")
    return _cluster(paths, state)


def cluster_down(root: Path | None = None, progress: Callable[[str], None] = print) -> bool:
    """Stop the processes recorded at `root` and delete its files.

    Returns True if any process was still running and got stopped."""
    paths = ClusterPaths(_resolve(root))
    state = _read_state(paths)
    stopped = _stop_all(paths, state, progress) if state else False
    if paths.root.exists():
        if _remove_owned(paths):
            progress(f"removed {paths.root}")
        else:
            progress(f"left {paths.root} in place: it holds files that are not the cluster's")
    return stopped


def cluster_status(root: Path | None = None) -> Cluster | None:
    """The cluster at `root` if all its processes run and the API server is ready."""
    paths = ClusterPaths(_resolve(root))
    state = _read_state(paths)
    if not state or set(state.get("processes", {})) != set(COMPONENTS):
        return None
    for info in state["processes"].values():
        if not _is_ours(info["pid"], info["binary"], paths.root):
            return None
    if not paths.pki.exists():
        return None
    with _session(pki_mod.Pki(paths.pki)) as api:
        if not _ok(api, f"{state['server']}/readyz", timeout=5):
            return None
    return _cluster(paths, state)


# ------------------------------------------------------------- command lines


def _etcd_args(paths: ClusterPaths, ports: Mapping[str, int]) -> list[str]:
    client = f"http://127.0.0.1:{ports['etcd']}"
    peer = f"http://127.0.0.1:{ports['etcd-peer']}"
    return [
        f"--name={NAME}",
        f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={NAME}={peer}",
        "--initial-cluster-state=new",
        # The data is thrown away with the cluster; fsync only costs time.
        "--unsafe-no-fsync=true",
    ]


def _apiserver_args(paths: ClusterPaths, keys: pki_mod.Pki, ports: Mapping[str, int]) -> list[str]:
    return [
        f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # The endpoint reconciler would publish the advertise address in the
        # `kubernetes` Endpoints, and validation rejects loopback addresses
        # there, so it would fail every 10 s (Kubernetes' own integration
        # tests turn it off for the same reason).
        "--endpoint-reconciler-type=none",
        f"--secure-port={ports['kube-apiserver']}",
        f"--cert-dir={paths.pki}",
        f"--tls-cert-file={keys.apiserver_cert}",
        f"--tls-private-key-file={keys.apiserver_key}",
        f"--client-ca-file={keys.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={keys.sa_pub}",
        f"--service-account-signing-key-file={keys.sa_key}",
        "--profiling=false",
    ]


def _kcm_args(paths: ClusterPaths, keys: pki_mod.Pki, ports: Mapping[str, int]) -> list[str]:
    kc = paths.kubeconfig
    return [
        f"--kubeconfig={kc}",
        # No --authentication/authorization-kubeconfig: /healthz is always
        # allowed, nothing else on this port is needed, and without them the
        # component stops looking up a requestheader CA the API server lacks.
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['kube-controller-manager']}",
        f"--cert-dir={paths.pki / 'kube-controller-manager'}",
        "--leader-elect=false",
        # Otherwise it creates /usr/libexec/kubernetes/... when run as root.
        f"--flex-volume-plugin-dir={paths.root / 'volume-plugins'}",
        # "*" is the default set: deployment, replicaset, namespace, garbage
        # collector, service accounts and tokens, node lifecycle, ...
        "--controllers=*",
        f"--root-ca-file={keys.ca_cert}",
        f"--service-account-private-key-file={keys.sa_key}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={keys.ca_cert}",
        f"--cluster-signing-key-file={keys.ca_key}",
        # kwokctl's values: kwok renews the node Lease well inside 40 s.
        "--node-monitor-period=5s",
        "--node-monitor-grace-period=40s",
        "--profiling=false",
    ]


def _scheduler_args(paths: ClusterPaths, ports: Mapping[str, int]) -> list[str]:
    kc = paths.kubeconfig
    return [
        f"--kubeconfig={kc}",
        # No --authentication/authorization-kubeconfig: /healthz is always
        # allowed, nothing else on this port is needed, and without them the
        # component stops looking up a requestheader CA the API server lacks.
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['kube-scheduler']}",
        f"--cert-dir={paths.pki / 'kube-scheduler'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def _kwok_args(paths: ClusterPaths, ports: Mapping[str, int]) -> list[str]:
    return [
        f"--kubeconfig={paths.kubeconfig}",
        f"--config={paths.kwok_config}",
        "--manage-all-nodes=true",
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
        f"--server-address=127.0.0.1:{ports['kwok']}",
    ]


# ----------------------------------------------------------------- processes


def _spawn(paths: ClusterPaths, name: str, binary: Path, args: list[str]) -> subprocess.Popen[bytes]:
    # Inherited ETCD_* variables would silently override etcd's flags.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    with open(paths.log(name), "ab") as log:
        return subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.root,
            env=env,
            # Own session: the cluster outlives the command that started it
            # and ignores the terminal's Ctrl-C.
            start_new_session=True,
        )


def _wait_until(paths: ClusterPaths, name: str, proc: subprocess.Popen[bytes],
                check: Callable[[], bool], deadline: float, timeout: float) -> None:
    while True:
        code = proc.poll()
        if code is not None:
            raise ClusterError(f"{name} exited with code {code}\n{log_tail(paths.log(name))}")
        if check():
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{name} not ready within the {timeout:.0f} s start-up timeout\n{log_tail(paths.log(name))}")
        time.sleep(_POLL)


def _stop_all(paths: ClusterPaths, state: dict[str, Any], progress: Callable[[str], None]) -> bool:
    stopped = False
    procs = state.get("processes", {})
    for name in reversed(COMPONENTS):
        info = procs.get(name)
        if info and _stop(info["pid"], info["binary"], paths.root):
            progress(f"stopped {name} (pid {info['pid']})")
            stopped = True
    _STARTED[:] = [p for p in _STARTED if p.poll() is None]
    return stopped


def _stop(pid: int, binary: str, root: Path) -> bool:
    """SIGTERM, then SIGKILL after a grace period; only if `pid` is still ours."""
    if not _is_ours(pid, binary, root):
        return False
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + grace
        while time.monotonic() < end:
            if not _alive(pid):
                return True
            time.sleep(0.1)
        # Re-check identity before escalating: the PID may have been reused.
        if not _is_ours(pid, binary, root):
            return True
    return True


def _is_ours(pid: int, binary: str, root: Path) -> bool:
    # A PID is ours only if it runs the binary we started with an argument
    # under our root: a recycled PID or another cluster's identical binary
    # fails one of the two tests.
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in argv if a]
    return bool(args) and args[0] == str(binary) and any(f"{root}{os.sep}" in a for a in args[1:])


def _alive(pid: int) -> bool:
    if pid_alive(pid):
        return True
    # Gone or exiting. If it is our own child (cluster_up and cluster_down in one process), reap it
    # so the PID is really gone. Blocking, because a Go program's main thread shows "Z" while its
    # other threads still wind down.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return False


# ---------------------------------------------------------------------- state


def _read_state(paths: ClusterPaths) -> dict[str, Any] | None:
    try:
        state = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == _STATE_VERSION else None


def _write_state(paths: ClusterPaths, state: dict[str, Any]) -> None:
    # Written atomically, so a crash mid-write never loses the PIDs.
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(paths.state_file)


def _foreign_entries(paths: ClusterPaths) -> list[str]:
    if not paths.root.is_dir():
        return []
    return sorted(p.name for p in paths.root.iterdir() if p.name not in _OWNED_ENTRIES)


def _remove_owned(paths: ClusterPaths) -> bool:
    """Delete what a cluster writes under its root; True if the root is gone."""
    if not paths.root.exists():
        return True
    if not paths.state_file.exists() and _foreign_entries(paths):
        return False  # not provably ours: a "logs" dir here may be someone else's
    # The state file goes last: it is what marks the rest as ours.
    for entry in sorted(_OWNED_ENTRIES, key=lambda e: e == "state.json"):
        p = paths.root / entry
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    try:
        paths.root.rmdir()
    except OSError:
        return False  # holds files that are not ours: leave them
    return True


def _cluster(paths: ClusterPaths, state: dict[str, Any]) -> Cluster:
    return Cluster(
        root=paths.root,
        kubeconfig=paths.kubeconfig,
        server=state["server"],
        pids=MappingProxyType({n: i["pid"] for n, i in state["processes"].items()}),
    )


def _check_binaries(binaries: Mapping[str, Path]) -> dict[str, Path]:
    found, missing = {}, []
    for name in COMPONENTS:
        p = binaries.get(name)
        if p is None or not os.access(p, os.X_OK):
            missing.append(f"{name} ({p})" if p else name)
        else:
            # Absolute, because _is_ours compares it with /proc/<pid>/cmdline.
            found[name] = Path(p).absolute()
    if missing:
        raise ClusterError("missing or not executable: " + ", ".join(missing))
    return found


# ------------------------------------------------------------------ API calls


def _write_kubeconfig(path: Path, server: str, keys: pki_mod.Pki) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    # Data embedded rather than file paths, so a copy works anywhere.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {
            "server": server, "certificate-authority-data": b64(keys.ca_cert)}}],
        "users": [{"name": NAME, "user": {
            "client-certificate-data": b64(keys.admin_cert),
            "client-key-data": b64(keys.admin_key)}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME}}],
        "current-context": NAME,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)


def _session(keys: pki_mod.Pki) -> requests.Session:
    s = requests.Session()
    s.cert = (str(keys.admin_cert), str(keys.admin_key))
    s.verify = str(keys.ca_cert)
    s.trust_env = False  # a proxy from the environment must not see loopback calls
    return s


def _ok(api: requests.Session, url: str, timeout: float = 2) -> bool:
    try:
        return api.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _etcd_healthy(port: int) -> bool:
    try:
        with requests.Session() as s:
            s.trust_env = False
            health: object = s.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("health")
            return health == "true"
    except (requests.RequestException, ValueError):
        return False


def _ok_plain(url: str) -> bool:
    try:
        with requests.Session() as s:
            s.trust_env = False
            return s.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _ok_self_signed(url: str) -> bool:
    # The controller manager and scheduler serve /healthz with a certificate
    # they generate themselves; only liveness matters here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with requests.Session() as s:
                s.trust_env = False
                return s.get(url, timeout=2, verify=False).status_code == 200
        except requests.RequestException:
            return False


def _create_node(api: requests.Session, server: str) -> None:
    resources_ = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            # kwok only manages nodes marked fake; with --manage-all-nodes the
            # annotation is not strictly needed but documents what this is.
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        # No taints: ordinary workloads should land here without tolerations.
        "spec": {},
        "status": {
            # Becomes the hostIP of its pods; outside the service and pod ranges.
            "addresses": [{"type": "InternalIP", "address": NODE_IP},
                          {"type": "Hostname", "address": NODE_NAME}],
            "allocatable": resources_,
            "capacity": resources_,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "kubeletVersion": "fake"},
        },
    }
    try:
        r = api.post(f"{server}/api/v1/nodes", json=node, timeout=10)
    except requests.RequestException as e:
        raise ClusterError(f"kube-apiserver: creating node {NODE_NAME}: {e}") from e
    if r.status_code not in (201, 409):
        raise ClusterError(
            f"kube-apiserver: creating node {NODE_NAME}: HTTP {r.status_code}: {r.text[:500]}")


def _node_ready(api: requests.Session, server: str) -> bool:
    try:
        r = api.get(f"{server}/api/v1/nodes/{NODE_NAME}", timeout=2)
    except requests.RequestException:
        return False
    if r.status_code != 200:
        return False
    node = r.json()
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    # A new node carries node.kubernetes.io/not-ready:NoSchedule until the
    # controller manager sees it Ready; pods created before then would wait.
    taints = node.get("spec", {}).get("taints") or []
    return ready and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)
