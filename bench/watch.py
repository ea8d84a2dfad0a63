"""Benchmark of the watcher (issue 4), against the real engine, a local control plane, and a
bare config repo served by `git daemon` on loopback:

- commit-to-applied latency: push a one-line ConfigMap change in a 100-object repo, until the
  object's resourceVersion changes; p50/p95 over N runs, with a 1 s poll and with the webhook;
- while nothing changes for a minute: `up` runs, git network calls (daemon connections), the
  watcher's CPU (own + reaped children, i.e. git) and resident memory.

    python bench/watch.py [--runs 20] [--idle 60]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitops.engine import engine_env  # noqa: E402
from gitops.local import cluster as local_cluster  # noqa: E402
from gitops.local.tools import ensure_tools  # noqa: E402
from gitops.watch.server import sign  # noqa: E402

from common import project_copy  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402

SECRET = "bench-secret"
NS = "bench-watch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_map(i: int, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:03}}}\ndata: {{value: \"{value}\"}}\n"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Bench:
    def __init__(self, work: Path, kubeconfig: Path, env: dict[str, str]):
        self.work, self.kubeconfig, self.env = work, kubeconfig, env
        self.project = project_copy(work)
        self.repo = ConfigRepo(work / "repo")
        self.served = work / "served"
        self.served.mkdir()
        self.bare = self.served / "config.git"
        self.port = free_port()
        self.daemon_log = work / "daemon.log"
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--verbose", "--reuseaddr", f"--base-path={self.served}", "--export-all",
             "--listen=127.0.0.1", f"--port={self.port}", str(self.served)],
            stdout=subprocess.DEVNULL, stderr=self.daemon_log.open("w"))
        files = {"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n"}
        files.update({f"cm-{i:03}.yaml": config_map(i, "0") for i in range(99)})
        self.repo.write(files, "100 objects")
        self.repo.push_to(self.bare)
        (self.project / "stacks" / "Pulumi.bench.yaml").write_text(json.dumps({"config": {
            "gitops:repo": f"git://127.0.0.1:{self.port}/config.git", "gitops:namespace": NS,
            "gitops:kubeconfig": str(kubeconfig), "gitops:skipAwait": True, "gitops:driftInterval": 0}}))
        self.watcher: subprocess.Popen | None = None
        self.listen = free_port()
        self.counter = 0

    def start_watcher(self, interval: float) -> None:
        self.watcher = subprocess.Popen(
            [sys.executable, "-m", "gitops", "--project-dir", str(self.project), "watch", "--stack", "bench",
             "--interval", str(interval), "--listen", f"127.0.0.1:{self.listen}", "--log-format", "json"],
            env={**self.env, "GITOPS_WEBHOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
            stderr=(self.work / f"watch-{interval}.log").open("w"), start_new_session=True)

    def stop_watcher(self) -> None:
        if self.watcher and self.watcher.poll() is None:
            os.kill(self.watcher.pid, signal.SIGTERM)
            self.watcher.wait(120)
        self.watcher = None

    def status(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.listen}/status", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def wait_idle(self, commit: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.get("applied_commit") == commit and status.get("state") == "idle":
                return
            time.sleep(0.2)
        raise TimeoutError(f"watcher did not apply {commit[:12]}")

    def resource_version(self) -> str:
        out = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", "configmap", "cm-000", "-n", NS,
                              "-o", "jsonpath={.metadata.resourceVersion}"], env=self.env, capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip()

    def one_change(self, webhook: bool) -> float:
        self.counter += 1
        before = self.resource_version()
        commit = self.repo.write({"cm-000.yaml": config_map(0, str(self.counter))}, f"change {self.counter}")
        self.repo.push_to(self.bare)
        pushed = time.monotonic()
        if webhook:
            body = b'{"ref":"refs/heads/main"}'
            request = urllib.request.Request(f"http://127.0.0.1:{self.listen}/hooks/git", data=body, method="POST",
                                             headers={"X-Hub-Signature-256": sign(SECRET.encode(), body)})
            urllib.request.urlopen(request, timeout=10).close()
        while self.resource_version() == before:
            if time.monotonic() - pushed > 120:
                raise TimeoutError("change not applied")
        latency = time.monotonic() - pushed
        self.wait_idle(commit)  # the next run starts from a quiet watcher
        return latency

    def daemon_connections(self) -> int:
        return self.daemon_log.read_text().count("Connection from")

    def close(self) -> None:
        self.stop_watcher()
        if self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGTERM)
            self.daemon.wait(10)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60)
    args = parser.parse_args()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-watch-"))
    rows: list[tuple[str, str]] = []
    bench = None
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        (work / "state").mkdir()
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        bench = Bench(work, cluster.kubeconfig, env)

        for label, interval, webhook in (("poll 1 s", 1.0, False), ("webhook", 3600.0, True)):
            bench.start_watcher(interval)
            started = time.monotonic()
            bench.wait_idle(bench.repo.head())
            if not rows:
                rows.append(("first apply, 100 objects (watcher start to idle)", f"{time.monotonic() - started:.1f} s"))
            latencies = [bench.one_change(webhook) for _ in range(args.runs)]
            rows.append((f"commit-to-applied, {label}: p50 / p95 (n={args.runs})",
                         f"{statistics.median(latencies):.2f} s / {percentile(latencies, 0.95):.2f} s"))
            if webhook:
                break
            # Idle: nothing changes for a while.
            pid = bench.watcher.pid  # type: ignore[union-attr]
            log = work / f"watch-{interval}.log"
            ups_before = log.read_text().count('"up.start"')
            connections_before = bench.daemon_connections()
            own_before, children_before = cpu_seconds(pid)
            time.sleep(args.idle)
            own_after, children_after = cpu_seconds(pid)
            rows.append((f"idle {args.idle:.0f} s, poll 1 s: up runs",
                         str(log.read_text().count('"up.start"') - ups_before)))
            rows.append((f"idle {args.idle:.0f} s, poll 1 s: git network calls (ls-remote)",
                         str(bench.daemon_connections() - connections_before)))
            rows.append(("idle CPU, watcher process (% of one core)",
                         f"{100 * (own_after - own_before) / args.idle:.2f} %"))
            rows.append(("idle CPU, incl. its git children (% of one core)",
                         f"{100 * (own_after - own_before + children_after - children_before) / args.idle:.2f} %"))
            rows.append(("idle resident memory, watcher process", f"{rss_mb(pid):.0f} MB"))
            bench.stop_watcher()
    finally:
        if bench:
            bench.close()
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
