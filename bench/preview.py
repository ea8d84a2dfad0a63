"""Benchmark of pull-request previews (issue 6): time from command to finished Markdown for a
branch changing 1, 100 and 1,000 objects of a 1,000-object stack, beside `kubectl diff
--server-side` of the same change against the same control plane.

    python bench/preview.py [--objects 1000]
"""
from __future__ import annotations

import argparse
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
from gitops.local.tools import ensure_tools  # noqa: E402
from gitops.render import to_yaml  # noqa: E402
from gitops.source.git import SourceFile  # noqa: E402

from common import project_copy  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402

NAMESPACE = "bench-preview"


def config_maps(count: int, changed: int) -> dict[str, str]:
    """`count` ConfigMaps in one file per 100; the first `changed` carry a new value."""
    files: dict[str, list[str]] = {}
    for i in range(count):
        value = "changed" if i < changed else "base"
        files.setdefault(f"cm/{i // 100:03d}.yaml", []).append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05d}\n"
            f"data:\n  value: {value}\n  index: \"{i}\"\n")
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    return {"namespace.yaml": namespace, **{path: "---\n".join(docs) for path, docs in files.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    args = parser.parse_args()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-preview-"))
    rows: list[tuple[str, str, str, str]] = []
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        (work / "state").mkdir()
        env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}"})
        project = project_copy(work)
        repo = ConfigRepo(work / "repo")
        repo.write(config_maps(args.objects, 0), "base")
        (project / "stacks" / "Pulumi.bench.yaml").write_text(json.dumps({"config": {
            "gitops:repo": str(repo.root), "gitops:ref": "main", "gitops:namespace": NAMESPACE,
            "gitops:kubeconfig": str(cluster.kubeconfig)}}))
        gitops = [sys.executable, "-m", "gitops", "--project-dir", str(project)]
        print(f"applying the base of {args.objects} objects ...", file=sys.stderr)
        started = time.perf_counter()
        subprocess.run([*gitops, "up", "--stack", "bench", "--quiet"], env=env, check=True, capture_output=True)
        print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr)
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        for changed in (1, 100, 1000):
            if changed > args.objects:
                continue
            branch = f"change-{changed}"
            repo.git("checkout", "-q", "-B", branch, "main")
            repo.write(config_maps(args.objects, changed), branch)
            repo.git("checkout", "-q", "main")
            started = time.perf_counter()
            result = subprocess.run([*gitops, "preview", "--stack", "bench", "--ref", branch, "--format", "markdown",
                                     "--detailed-exitcode"], env=env, capture_output=True, text=True)
            ours = time.perf_counter() - started
            assert result.returncode == 2, result.stderr
            files = [SourceFile(p, t.encode()) for p, t in config_maps(args.objects, changed).items()]
            state = desired_state_from_files(files, repo="bench", commit="-", path=".", namespace=NAMESPACE)
            rendered = work / f"{branch}.yaml"
            rendered.write_text(to_yaml(state, show_secrets=True))
            started = time.perf_counter()
            diff = subprocess.run([*kubectl, "diff", "--server-side", "--force-conflicts", "-f", str(rendered)],
                                  env=env, capture_output=True, text=True)
            theirs = time.perf_counter() - started
            assert diff.returncode == 1, diff.stderr  # 1: differences found
            rows.append((f"{changed} of {args.objects} objects changed", f"{ours:.1f} s", f"{theirs:.1f} s",
                         f"{len(result.stdout) / 1000:.0f} kB Markdown"))
    finally:
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'branch':<28} | {'gitops preview (Markdown)':>26} | {'kubectl diff --server-side':>27} | output")
    print("-" * 110)
    for name, ours, theirs, note in rows:
        print(f"{name:<28} | {ours:>26} | {theirs:>27} | {note}")


if __name__ == "__main__":
    main()
