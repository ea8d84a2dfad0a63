"""How `gitops up` scales with the stack (issue 13), beside the floor the API server sets, on one
local control plane: for each N, N ConfigMaps in one namespace.

- floor: the same objects as concurrent server-side-apply PATCHes (8 at a time, no client throttle);
- `kubectl apply --server-side` of the same objects;
- `gitops up` cold, with nothing changed, and a one-object commit (a delta run), from process start,
  with the peak memory of the whole run (gitops, Pulumi CLI, program, provider) and the state size;
- `gitops preview` of a one-object change beside `kubectl diff --server-side` of the same change;
- a drift check (`pulumi refresh`, as the watcher runs it) beside the floor.

    python bench/scale.py [--objects 10 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitops.engine import StackEngine, engine_env  # noqa: E402
from gitops.kube.api import CONCURRENCY, KubeApi  # noqa: E402
from gitops.local import cluster as local_cluster  # noqa: E402
from gitops.local.tools import ensure_tools  # noqa: E402

from common import configmap_files, project_copy  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, now."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            continue
    return total


def run(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Seconds from process start, peak memory of its process tree, and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode not in (0, 1):  # `kubectl diff` exits 1 when there is a difference
        raise SystemExit(f"{' '.join(argv[:4])} failed ({process.returncode}):\n{err[-2000:]}")
    return seconds, peak[0], out


def floor(api: KubeApi, namespace: str, count: int) -> float:
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    bodies = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i:05}", "namespace": namespace},
               "data": {"k": f"v{i}"}} for i in range(count)]

    def patch(body: dict) -> int:
        path = f"/api/v1/namespaces/{namespace}/configmaps/{body['metadata']['name']}"
        return api.request("PATCH", path, body, content_type="application/apply-patch+yaml",
                           query=[("fieldManager", "bench"), ("force", "true")]).status

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        assert all(s < 300 for s in pool.map(patch, bodies))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 1000])
    args = parser.parse_args()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-scale-"))
    rows: list[tuple[int, str, str, str]] = []
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        (work / "state").mkdir()
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        api = KubeApi(str(cluster.kubeconfig), None)
        project = project_copy(work)
        for count in args.objects:
            print(f"{count} objects ...", file=sys.stderr, flush=True)
            base = floor(api, f"floor{count}", count)
            rows.append((count, "floor: concurrent server-side-apply PATCHes", f"{base:.2f} s", ""))

            files = configmap_files(f"kubectl{count}", count)
            manifests = work / f"kubectl{count}.yaml"
            manifests.write_text("---\n".join(
                text if path == "ns.yaml" else text.replace("{name:", f"{{namespace: kubectl{count}, name:", 1)
                for path, text in files.items()))
            seconds, _, _ = run([*kubectl, "apply", "--server-side", "-f", str(manifests)], env)
            rows.append((count, "kubectl apply --server-side, cold", f"{seconds:.1f} s",
                         f"{seconds / base:.1f}x floor"))

            name = f"s{count}"
            repo = ConfigRepo(work / "repos" / name)
            files = configmap_files(name, count)
            repo.write(files)
            (project / "stacks" / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": {
                "gitops:repo": str(repo.root), "gitops:namespace": name, "gitops:skipAwait": True,
                "gitops:kubeconfig": str(cluster.kubeconfig)}}))
            up = [sys.executable, "-m", "gitops", "--project-dir", str(project), "up", "--stack", name, "-q"]
            cold, cold_rss, _ = run(up, env)
            rows.append((count, "gitops up, cold", f"{cold:.1f} s", f"{cold / base:.1f}x floor; "
                                                                  f"peak memory {cold_rss / 1e6:.0f} MB"))
            same, _, _ = run(up, env)
            rows.append((count, "gitops up, no change", f"{same:.1f} s", ""))
            repo.write({"c00001.yaml": files["c00001.yaml"].replace("v1}", "changed}")})
            one, one_rss, _ = run(up, env)
            rows.append((count, "gitops up, one object changed", f"{one:.1f} s", f"peak memory {one_rss / 1e6:.0f} MB"))

            changed = files["c00002.yaml"].replace("v2}", "previewed}")
            repo.write({"c00002.yaml": changed})
            preview, _, _ = run([sys.executable, "-m", "gitops", "--project-dir", str(project), "preview", "--stack",
                                 name], env)
            text = manifests.read_text().replace("data: {k: v2}", "data: {k: previewed}")
            manifests.write_text(text)
            diff, _, _ = run([*kubectl, "diff", "--server-side", "-f", str(manifests)], env)
            rows.append((count, "gitops preview, one object changed", f"{preview:.1f} s",
                         f"kubectl diff --server-side: {diff:.1f} s"))

            stack = StackEngine(project, name, env)
            result = stack.refresh(preview_only=False)
            rows.append((count, "drift check (refresh)", f"{result.seconds:.1f} s",
                         f"{result.seconds / base:.1f}x floor"))
            state = sum(p.stat().st_size for p in (work / "state" / ".pulumi" / "stacks").rglob(f"{name}.json"))
            rows.append((count, "state size", f"{state / 1e6:.1f} MB", ""))
        api.close()
    finally:
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'objects':>7} | {'measure':<44} | {'value':>8} | beside")
    print("-" * 100)
    for count, measure, value, beside in rows:
        print(f"{count:>7} | {measure:<44} | {value:>8} | {beside}")


if __name__ == "__main__":
    main()
