"""Benchmark: render + validation, and resource registration under Pulumi mocks, for generated
config repos of 100, 1,000 and 10,000 objects. Each measurement runs in a fresh process so its
peak resident memory is its own. Target: 10,000 objects rendered and validated in < 2 s, < 300 MB.

    python bench/render.py [--sizes 100,1000,10000] [--renderers 1000]

Then the renderers (issue 12): `gitops render` of a 1,000-object kustomize overlay and of a
1,000-object Helm chart, beside the renderer's own CLI alone (`kubectl kustomize`, `helm
template`) on the same files, and where gitops' own time goes (measured in one process).
Target: gitops' own overhead within 20 % of the renderer.
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


def make_renderer_repo(root: Path, count: int) -> None:
    """An overlay of `count` objects (a base with namePrefix, labels and a patch), and a chart
    whose template ranges over `count` values, in one repo."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    base = root / "kustomize" / "base"
    base.mkdir(parents=True)
    files = []
    for start in range(0, count, OBJECTS_PER_FILE):
        name = f"app-{start:05d}.yaml"
        (base / name).write_text("---\n".join(manifest(i) for i in range(start, min(start + OBJECTS_PER_FILE, count))))
        files.append(name)
    (base / "kustomization.yaml").write_text("resources:\n" + "".join(f"- {f}\n" for f in files))
    overlay = root / "kustomize" / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../base]\nnamePrefix: prod-\nlabels:\n- pairs: {env: prod}\n"
        "patches:\n- target: {kind: Deployment}\n  patch: |\n    - op: replace\n      path: /spec/replicas\n"
        "      value: 2\n")
    chart = root / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 1.0.0\n")
    (chart / "values.yaml").write_text(f"count: {count}\n")
    (chart / "templates" / "objects.yaml").write_text(
        "{{- range $i := until (int .Values.count) }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: {{ $.Release.Name }}-{{ $i }}\n  labels: {app: bench}\ndata:\n  key: value-{{ $i }}\n{{- end }}\n")
    git = ["git", "-C", str(root), "-c", "user.email=b@example.invalid", "-c", "user.name=bench"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "renderers"], check=True)


def timed(commands: list[tuple[list[str], Path | None]], runs: int = 5) -> list[float]:
    """The median wall time of each command, from process start to exit, run in turns (so a
    busy moment of the machine falls on all of them alike)."""
    from gitops.paths import tool_env

    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, (command, cwd) in enumerate(commands):
            started = time.perf_counter()
            subprocess.run(command, cwd=cwd, env=tool_env(), check=True, capture_output=True)
            times[i].append(time.perf_counter() - started)
    return [sorted(t)[len(t) // 2] for t in times]


def renderer_rows(count: int, tmp: Path) -> list[tuple[str, float, float, dict]]:
    from gitops.local.tools import ensure_tools

    ensure_tools(progress=lambda line: print(line, file=sys.stderr), names=("gitops-kustomize", "helm"))
    repo = tmp / f"renderers-{count}"
    make_renderer_repo(repo, count)
    gitops = [sys.executable, "-m", "gitops", "render", "--repo", str(repo)]
    rows = []
    for name, path, cli in (
            (f"kustomize overlay, {count} objects", "kustomize/overlay",
             ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", "kustomize/overlay"]),
            (f"Helm chart, {count} objects", "chart", ["helm", "template", "chart", "./chart", "--include-crds"])):
        ours, theirs = timed([([*gitops, "--path", path], None), (cli, repo)])
        rows.append((name, ours, theirs, run_child("phases", repo, path)))
    return rows


def measure_phases(repo: Path, path: str) -> dict:
    """Where `gitops render`'s own time goes, in one process: imports, the renderer's process,
    everything else of reading the commit, and printing."""
    started = time.perf_counter()
    from gitops import desired
    from gitops.render import to_yaml
    from gitops.renderers import helm, kustomize
    from gitops.settings import settings_from_config
    from gitops.source.git import GitSource

    imported = time.perf_counter()
    spent = {"renderer": 0.0}

    def timing(function):
        def wrapped(*args, **kwargs):
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent["renderer"] += time.perf_counter() - begun
        return wrapped

    kustomize.build, helm.template = timing(kustomize.build), timing(helm.template)
    source = GitSource(str(repo))
    state = desired.read_desired_state(source, source.resolve("HEAD"), settings_from_config(
        {"repo": str(repo), "path": path}))
    read = time.perf_counter()
    to_yaml(state)
    printed = time.perf_counter()
    return {"imports": imported - started, "renderer": spent["renderer"],
            "rest": read - imported - spent["renderer"], "print": printed - read}


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


def child(phase: str, repo: str, path: str = "") -> None:
    if phase == "phases":
        print(json.dumps(measure_phases(Path(repo), path)))
        return
    result = (measure_render if phase == "render" else measure_register)(Path(repo))
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The manifests are parsed in a child process (manifests/isolate.py): its peak counts too.
    result["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(phase: str, repo: Path, path: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", phase, str(repo), path], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--renderers", type=int, default=1000, help="objects of the renderer rows; 0: none")
    parser.add_argument("--child", nargs="+", metavar="PHASE REPO [PATH]")
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
        renderers = renderer_rows(args.renderers, Path(tmp)) if args.renderers else []
    print(f"{'objects':>8} | {'render+validate s':>17} | {'peak MB (+parser)':>17} | {'register (mocks) s':>18} | "
          f"{'peak MB':>7}")
    print("-" * 70)
    for count, render, register in rows:
        peak = f"{render['peak_mb']:.0f} + {render['child_peak_mb']:.0f}"
        print(f"{count:>8} | {render['seconds']:>17.2f} | {peak:>17} | "
              f"{register['seconds']:>18.2f} | {register['peak_mb']:>7.0f}")
    print("target: 10,000 objects rendered and validated in < 2 s and < 300 MB")
    if renderers:
        print()
        print(f"{'render (median of 5)':<32} | {'gitops render':>13} | {'renderer CLI':>12} | {'overhead':>8} | "
              f"{'imports':>7} | {'in renderer':>11} | {'read+parse':>10} | {'print':>5}")
        print("-" * 118)
        for name, ours, theirs, phases in renderers:
            print(f"{name:<32} | {ours:>11.2f} s | {theirs:>10.2f} s | {100 * (ours - theirs) / theirs:>7.0f} % | "
                  f"{phases['imports']:>5.2f} s | {phases['renderer']:>9.2f} s | {phases['rest']:>8.2f} s | "
                  f"{phases['print']:>3.2f} s")
        print("target: gitops' own overhead within 20 % of the renderer")


if __name__ == "__main__":
    main()
