"""What the API server's verdict before `up` costs (issue 11): a server-side dry run of N objects,
and the whole `gitops up` with it and without it, beside N concurrent server-side-apply PATCHes
(the floor: what applying the objects costs the API server at all). Target: +2 s at most for 1,000.

    python bench/verdict.py [--objects 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitops.desired import desired_state_from_files  # noqa: E402
from gitops.engine import engine_env  # noqa: E402
from gitops.kube.api import CONCURRENCY, KubeApi  # noqa: E402
from gitops.kube.discovery import discover  # noqa: E402
from gitops.kube.dryrun import verdict  # noqa: E402
from gitops.local import cluster as local_cluster  # noqa: E402
from gitops.local.tools import ensure_tools  # noqa: E402
from gitops.source.git import SourceFile  # noqa: E402

from common import configmap_files, project_copy, timed_up  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    args = parser.parse_args()
    count = args.objects
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-verdict-"))
    rows: list[tuple[str, str]] = []
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        (work / "state").mkdir()
        api = KubeApi(str(cluster.kubeconfig), None)

        # The floor: the same objects applied for real with concurrent server-side-apply PATCHes.
        floor_ns = "floor"
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": floor_ns}})
        bodies = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i:05}", "namespace": floor_ns},
                   "data": {"k": f"v{i}"}} for i in range(count)]

        def patch(body: dict) -> int:
            path = f"/api/v1/namespaces/{floor_ns}/configmaps/{body['metadata']['name']}"
            return api.request("PATCH", path, body, content_type="application/apply-patch+yaml",
                               query=[("fieldManager", "bench"), ("force", "true")]).status

        started = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            assert all(s < 300 for s in pool.map(patch, bodies))
        floor = time.perf_counter() - started
        rows.append((f"floor: {count} concurrent server-side-apply PATCHes ({CONCURRENCY} at a time)",
                     f"{floor:.2f} s"))

        # The dry run alone, of objects that exist (the common case) and of new ones.
        source = [SourceFile(p, t.encode()) for p, t in configmap_files(floor_ns, count).items()]
        state = desired_state_from_files(source, repo="bench", commit="-", path=".", namespace=floor_ns)
        started = time.perf_counter()
        found = discover(api)
        rows.append(("discovery (once per verdict)", f"{time.perf_counter() - started:.2f} s"))
        result = verdict(api, state.manifests, found)
        assert not result.rejections, result.rejections[:3]
        rows.append((f"server-side dry run of {count} objects that exist", f"{result.seconds:.2f} s"))
        fresh_files = [SourceFile(p, t.encode()) for p, t in configmap_files("fresh", count).items()]
        fresh = desired_state_from_files(fresh_files, repo="bench", commit="-", path=".", namespace="fresh")
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "fresh"}})
        result = verdict(api, fresh.manifests, found)
        rows.append((f"server-side dry run of {count} new objects", f"{result.seconds:.2f} s"))
        api.close()

        # The whole `gitops up`, cold and with nothing changed, with the verdict and without.
        project = project_copy(work)
        for label, dry_run in (("with the verdict", True), ("without it (gitops:serverDryRun false)", False)):
            name = "on" if dry_run else "off"
            repo = ConfigRepo(work / f"repo-{name}")
            repo.write(configmap_files(f"up-{name}", count))
            (project / "stacks" / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": {
                "gitops:repo": str(repo.root), "gitops:namespace": f"up-{name}", "gitops:skipAwait": True,
                "gitops:kubeconfig": str(cluster.kubeconfig), "gitops:serverDryRun": dry_run}}))
            cold = timed_up(project, name, env)
            same = timed_up(project, name, env)
            rows.append((f"gitops up of {count} objects {label}: cold / no change", f"{cold:.1f} s / {same:.1f} s"))
    finally:
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | seconds")
    print("-" * (width + 20))
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
