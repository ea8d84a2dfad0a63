"""Benchmark of the real engine and control plane (issue 3), printed as one table:

- `gitops tools`: warm time (cold build times come from the cache's build log), binary sizes;
- control plane start-up;
- the bundled example: first `gitops up` and a no-change `gitops up`, beside
  `kubectl apply --server-side` of the same rendered objects (first apply, and no-change) against
  the same control plane, plus `kubectl rollout status` so both wait for the Deployment.

    python bench/engine.py
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitops.desired import desired_state_from_files  # noqa: E402
from gitops.engine import engine_env  # noqa: E402
from gitops.local import cluster as local_cluster  # noqa: E402
from gitops.local.tools import build_times, ensure_tools  # noqa: E402
from gitops.render import to_yaml  # noqa: E402
from gitops.source.git import SourceFile  # noqa: E402

from common import project_copy  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402


def timed(command: list[str], **kw) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, **kw)
    return time.perf_counter() - started


def example(namespace: str) -> dict[str, str]:
    base = ROOT / "examples" / "config"
    files = {}
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        text = (path.read_text().replace("name: demo", f"name: {namespace}")
                .replace("demo.gitops.dev", f"{namespace}.gitops.dev"))
        files[path.relative_to(base).as_posix()] = text
    return files


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    rows.append(("gitops tools (warm)", f"{time.perf_counter() - started:.2f} s", "cold: see build times below"))
    for family, seconds in sorted(build_times().items()):
        rows.append((f"last build: {family}", f"{seconds:.0f} s", "go build on this machine"))
    for name, tool in sorted(tools.items()):
        rows.append((f"size: {name}", f"{tool.path.resolve().stat().st_size / 1e6:.0f} MB", str(tool.spec.version)))

    work = Path(tempfile.mkdtemp(prefix="gitops-bench-"))
    try:
        started = time.perf_counter()
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        rows.append(("control plane start-up", f"{time.perf_counter() - started:.1f} s",
                     "etcd, apiserver, kcm, scheduler, kwok, node Ready"))
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        (work / "state").mkdir()

        # Pulumi: a project copy, a stack, the example in its own namespace.
        project = project_copy(work)
        repo = ConfigRepo(work / "repo")
        repo.write(example("bench-pulumi"))
        (project / "stacks" / "Pulumi.bench.yaml").write_text(json.dumps({"config": {
            "gitops:repo": str(repo.root), "gitops:namespace": "bench-pulumi",
            "gitops:kubeconfig": str(cluster.kubeconfig)}}))
        up = [sys.executable, "-m", "gitops", "--project-dir", str(project), "up", "--stack", "bench", "--quiet"]
        first = timed(up, env=env)
        noop = timed(up, env=env)

        # kubectl: the same objects, rendered, in another namespace.
        files = [SourceFile(p, t.encode()) for p, t in example("bench-kubectl").items()]
        state = desired_state_from_files(files, repo="bench", commit="-", path=".", namespace="bench-kubectl")
        manifests = work / "rendered.yaml"
        manifests.write_text(to_yaml(state, show_secrets=True))
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        apply = [*kubectl, "apply", "--server-side", "-f", str(manifests)]
        # CRD and instance in one file: the first apply may need a second pass once the CRD is served.
        started = time.perf_counter()
        for _ in range(10):
            if subprocess.run(apply, env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run([*kubectl, "rollout", "status", "-n", "bench-kubectl", "deployment/web"], env=env, check=True,
                       capture_output=True)
        kubectl_first = time.perf_counter() - started
        kubectl_noop = timed(apply, env=env)
        rows.append(("example, first apply", f"{first:.1f} s",
                     f"kubectl apply --server-side + rollout status: {kubectl_first:.1f} s"))
        rows.append(("example, no change", f"{noop:.1f} s", f"kubectl apply --server-side: {kubectl_noop:.1f} s"))
    finally:
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | {'gitops':>10} | beside")
    print("-" * (width + 60))
    for name, value, note in rows:
        print(f"{name:<{width}} | {value:>10} | {note}")


if __name__ == "__main__":
    main()
