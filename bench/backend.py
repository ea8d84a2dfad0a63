"""What turning off the file backend's metadata side files (issue 20) costs or saves: `gitops up`
of N ConfigMaps, cold and with nothing changed, on one control plane, with the side files on
(`?metadata=`, gocloud's default) and off (`?metadata=skip`, this project's default). Runs
alternate between the two, each in its own backend, so machine noise falls on both.

    python bench/backend.py [--objects 100 1000] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitops.engine import engine_env  # noqa: E402
from gitops.local import cluster as local_cluster  # noqa: E402
from gitops.local.tools import ensure_tools  # noqa: E402

from common import configmap_files, project_copy, timed_up  # noqa: E402
from gitrepo import ConfigRepo  # noqa: E402

MODES = {"side files on (metadata=)": "metadata=", "side files off (metadata=skip)": "metadata=skip"}


def config_repo(path: Path, namespace: str, count: int) -> ConfigRepo:
    repo = ConfigRepo(path)
    files = configmap_files(namespace, count)
    repo.write(files)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tools = ensure_tools(progress=lambda line: print(line, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-backend-"))
    rows = []
    try:
        cluster = local_cluster.cluster_up({n: t.path for n, t in tools.items()}, root=work / "cluster",
                                           progress=lambda _: None)
        project = project_copy(work)
        for count in args.objects:
            times: dict[str, dict[str, list[float]]] = {m: {"cold": [], "no change": []} for m in MODES}
            for run in range(args.runs):
                for mode, option in MODES.items():
                    name = f"b{count}-{run}-{'skip' if option.endswith('skip') else 'side'}"
                    repo = config_repo(work / "repos" / name, name, count)
                    state = work / "state" / name
                    state.mkdir(parents=True)
                    env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{state}?{option}"})
                    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": {
                        "gitops:repo": str(repo.root), "gitops:namespace": name, "gitops:skipAwait": True,
                        "gitops:kubeconfig": str(cluster.kubeconfig)}}))
                    times[mode]["cold"].append(timed_up(project, name, env))
                    times[mode]["no change"].append(timed_up(project, name, env))
                    print(f"  {count} objects, run {run + 1}, {mode}: cold {times[mode]['cold'][-1]:.1f} s",
                          file=sys.stderr, flush=True)
            for mode in MODES:
                rows.append((count, mode, statistics.median(times[mode]["cold"]),
                             statistics.median(times[mode]["no change"])))
    finally:
        local_cluster.cluster_down(work / "cluster", progress=lambda _: None)
        shutil.rmtree(work, ignore_errors=True)
    print(f"median of {args.runs} runs each, `gitops up` from process start")
    print(f"{'objects':>7} | {'file backend':<31} | {'cold up':>8} | {'no change':>9}")
    print("-" * 66)
    for count, mode, cold, same in rows:
        print(f"{count:>7} | {mode:<31} | {cold:>6.1f} s | {same:>7.1f} s")


if __name__ == "__main__":
    main()
