"""Benchmark: render + validation, and resource registration under Pulumi mocks, for generated
config repos of 100, 1,000 and 10,000 objects. Each measurement runs in a fresh process so its
peak resident memory is its own. Target: 10,000 objects rendered and validated in < 2 s, < 300 MB.

    python bench/render.py [--sizes 100,1000,10000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTS_PER_FILE = 10
KINDS = ("ConfigMap", "Deployment", "Service", "Secret")


def manifest(i: int) -> str:
    kind = KINDS[i % len(KINDS)]
    name = f"obj-{i:05d}"
    if kind == "ConfigMap":
        return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{app: bench}}\n"
                f"data:\n  key: value-{i}\n  other: |\n    multi-line\n    text\n")
    if kind == "Secret":
        return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  token: t-{i}\n"
    if kind == "Service":
        return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n"
                f"spec:\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n    targetPort: 8080\n")
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\n"
            f"spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n"
            f"  template:\n    metadata:\n      labels: {{app: {name}}}\n"
            f"    spec:\n      containers:\n      - name: app\n        image: registry.example/app:1.{i}.0\n"
            f"        ports:\n        - containerPort: 8080\n"
            f"        resources:\n          requests: {{cpu: 10m, memory: 16Mi}}\n")


def make_repo(root: Path, count: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for start in range(0, count, OBJECTS_PER_FILE):
        folder = root / "apps" / f"team-{start // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        docs = [manifest(i) for i in range(start, min(start + OBJECTS_PER_FILE, count))]
        (folder / f"app-{start:05d}.yaml").write_text("---\n".join(docs))
    git = ["git", "-C", str(root), "-c", "user.email=b@example.invalid", "-c", "user.name=bench"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", f"{count} objects"], check=True)


def measure_render(repo: Path) -> dict:
    from gitops.desired import read_desired_state
    from gitops.settings import settings_from_config
    from gitops.source.git import GitSource

    started = time.perf_counter()
    settings = settings_from_config({"repo": str(repo), "path": "apps", "namespace": "bench"})
    source = GitSource(str(repo))
    state = read_desired_state(source, source.resolve("HEAD"), settings)
    return {"seconds": time.perf_counter() - started, "objects": len(state.manifests)}


def measure_register(repo: Path) -> dict:
    import pulumi

    from gitops.desired import read_desired_state
    from gitops.program import register
    from gitops.settings import settings_from_config
    from gitops.source.git import GitSource

    settings = settings_from_config({"repo": str(repo), "path": "apps", "namespace": "bench"})
    source = GitSource(str(repo))
    state = read_desired_state(source, source.resolve("HEAD"), settings)

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", {}

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), preview=False)
    started = time.perf_counter()

    @pulumi.runtime.test
    def run():
        objects = register(state, settings)
        return pulumi.Output.all(*[o.urn for o in objects])

    run()
    return {"seconds": time.perf_counter() - started, "objects": len(state.manifests)}


def child(phase: str, repo: str) -> None:
    result = (measure_render if phase == "render" else measure_register)(Path(repo))
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The manifests are parsed in a child process (manifests/isolate.py): its peak counts too.
    result["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(phase: str, repo: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", phase, str(repo)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "REPO"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(s) for s in args.sizes.split(",")):
            repo = Path(tmp) / f"repo-{count}"
            make_repo(repo, count)
            render = run_child("render", repo)
            register = run_child("register", repo)
            rows.append((count, render, register))
    print(f"{'objects':>8} | {'render+validate s':>17} | {'peak MB (+parser)':>17} | {'register (mocks) s':>18} | "
          f"{'peak MB':>7}")
    print("-" * 70)
    for count, render, register in rows:
        peak = f"{render['peak_mb']:.0f} + {render['child_peak_mb']:.0f}"
        print(f"{count:>8} | {render['seconds']:>17.2f} | {peak:>17} | "
              f"{register['seconds']:>18.2f} | {register['peak_mb']:>7.0f}")
    print("target: 10,000 objects rendered and validated in < 2 s and < 300 MB")


if __name__ == "__main__":
    main()
