"""Benchmark of image automation (issue 5), against a real registry (Debian's docker-registry),
the real engine and control plane, and a config repo behind `git daemon` (pushes on):

- tag-to-deployed latency: push a new tag to the registry until the Deployment's spec carries it
  (the watcher scans, commits the tag to git, pushes, and runs `up`); p50/p95 over N runs, with
  a 1 s scan interval and with the registry webhook (scan interval one hour);
- registry requests per image repository per scan, and per hour at the default interval (120 s),
  from the watcher's own /metrics while it scans every second for a while.

    python bench/images.py [--runs 10] [--idle 30]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
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
from gitops.settings import ImageSettings  # noqa: E402
from gitops.watch.server import sign  # noqa: E402

from common import project_copy  # noqa: E402
from gitdaemon import GitDaemon, free_port  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402
from registry_helpers import push_image  # noqa: E402
from registry_server import RegistryServer, ensure_registry  # noqa: E402

SECRET = "bench-secret"
NS = "bench-images"
DEFAULT_INTERVAL = ImageSettings().interval or 120.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def deployment(image: str) -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n"
            f"  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n"
            f"    spec:\n      containers:\n        - name: web\n"
            f"          image: {image} # {{\"$imagepolicy\": \"web\"}}\n")


class Bench:
    def __init__(self, work: Path, kubeconfig: Path, env: dict[str, str], registry: RegistryServer):
        self.work, self.kubeconfig, self.env, self.registry = work, kubeconfig, env, registry
        self.project = project_copy(work)
        served = work / "served"
        served.mkdir()
        self.daemon = GitDaemon(served, push=True)
        self.daemon.start()
        self.image = f"{registry.host}/bench/web"
        self.minor = 0
        push_image(registry.url, "bench/web", "1.0.0")
        repo = ConfigRepo(work / "repo")
        repo.write({"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n",
                    "web.yaml": deployment(f"{self.image}:1.0.0")}, "base")
        repo.push_to(served / "config.git")
        self.url = self.daemon.url("config.git")
        self.listen = free_port()
        self.watcher: subprocess.Popen | None = None

    def start_watcher(self, image_interval: float) -> None:
        (self.project / "stacks" / "Pulumi.bench.yaml").write_text(json.dumps({"config": {
            "gitops:repo": self.url, "gitops:ref": "main", "gitops:namespace": NS,
            "gitops:kubeconfig": str(self.kubeconfig), "gitops:driftInterval": 0,
            "gitops:imageInterval": image_interval,
            "gitops:imagePolicies": {"web": {"image": self.image, "semver": "^1"}}}}))
        self.watcher = subprocess.Popen(
            [sys.executable, "-m", "gitops", "--project-dir", str(self.project), "watch", "--stack", "bench",
             "--interval", "3600", "--listen", f"127.0.0.1:{self.listen}", "--log-format", "json"],
            env={**self.env, "GITOPS_WEBHOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
            stderr=(self.work / f"watch-{image_interval}.log").open("w"), start_new_session=True)

    def stop_watcher(self) -> None:
        if self.watcher and self.watcher.poll() is None:
            os.kill(self.watcher.pid, signal.SIGTERM)
            self.watcher.wait(120)
        self.watcher = None

    def get(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.listen}{path}", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def wait_idle(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(self.get("/status") or "{}")
            if status.get("state") == "idle" and status.get("applied_commit") and not status.get("pending"):
                return
            time.sleep(0.2)
        raise TimeoutError("watcher did not become idle")

    def deployed_image(self) -> str:
        out = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", "deployment", "web", "-n", NS,
                              "-o", "jsonpath={.spec.template.spec.containers[0].image}"], env=self.env,
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def one_tag(self, webhook: bool) -> float:
        self.minor += 1
        tag = f"1.{self.minor}.0"
        push_image(self.registry.url, "bench/web", tag)
        pushed = time.monotonic()
        if webhook:
            event = {"action": "push", "target": {"repository": "bench/web", "tag": tag}}
            body = json.dumps({"events": [event]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{self.listen}/hooks/registry", data=body, method="POST",
                                             headers={"X-Hub-Signature-256": sign(SECRET.encode(), body)})
            urllib.request.urlopen(request, timeout=10).close()
        while self.deployed_image() != f"{self.image}:{tag}":
            if time.monotonic() - pushed > 120:
                raise TimeoutError(f"tag {tag} not deployed")
        latency = time.monotonic() - pushed
        self.wait_idle()
        return latency

    def metric(self, name: str) -> float:
        text = self.get("/metrics")
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def close(self) -> None:
        self.stop_watcher()
        self.daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--idle", type=float, default=30)
    args = parser.parse_args()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-images-"))
    rows: list[tuple[str, str, str]] = []
    bench = registry = None
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        registry = RegistryServer(ensure_registry(progress=lambda line: print(line, file=sys.stderr)),
                                  work / "registry").start()
        (work / "state").mkdir()
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        bench = Bench(work, cluster.kubeconfig, env, registry)
        for label, interval, webhook in (("scan every 1 s", 1.0, False), ("registry webhook", 3600.0, True)):
            bench.start_watcher(interval)
            bench.wait_idle()
            latencies = [bench.one_tag(webhook) for _ in range(args.runs)]
            rows.append((f"tag pushed -> Deployment carries it, {label}: p50 / p95 (n={args.runs})",
                         f"{statistics.median(latencies):.2f} s / {percentile(latencies, 0.95):.2f} s",
                         "target p50 < 5 s with the webhook"))
            if not webhook:
                scans_before = bench.metric("gitops_watch_image_scans_total")
                requests_before = bench.metric("gitops_watch_registry_requests_total")
                time.sleep(args.idle)
                scans = bench.metric("gitops_watch_image_scans_total") - scans_before
                requests = bench.metric("gitops_watch_registry_requests_total") - requests_before
                per_scan = requests / scans if scans else float("nan")
                rows.append((f"registry requests per image per scan ({scans:.0f} idle scans)", f"{per_scan:.2f}",
                             "target: 1 tag list per repository per scan"))
                rows.append((f"registry requests per image per hour at the default {DEFAULT_INTERVAL:.0f} s",
                             f"{per_scan * 3600 / DEFAULT_INTERVAL:.0f}",
                             "Argo CD Image Updater 2 min: 30+; Flux v1 5 min + one manifest per tag"))
            bench.stop_watcher()
    finally:
        if bench:
            bench.close()
        if registry:
            registry.stop()
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | {'gitops':>15} | beside")
    print("-" * (width + 80))
    for name, value, note in rows:
        print(f"{name:<{width}} | {value:>15} | {note}")


if __name__ == "__main__":
    main()
