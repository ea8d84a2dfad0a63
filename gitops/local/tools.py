"""The pinned command-line tools the engine and the local control plane run.

None of them ships as a binary through a registry this project can reach, so each
is built from the Go module proxy through a small wrapper module under `tools/<family>/`
(whose go.mod/go.sum pin every dependency) into a per-version cache outside the
checkout. A binary already on PATH is used instead when it reports the exact pinned
version, so a machine that has the tools installed builds nothing.

The module proxy serves only some versions, which set the pins:
- pulumi CLI v3.260.0, the newest release both the proxy (pkg/v3 and sdk/v3) and PyPI
  serve; pyproject pins the Python SDK to the same release.
- pulumi-language-python: upstream's own module is not served at any version, so the
  project's own host in tools/language-host/ is built instead; the
  `pulumi-language-python-exec` script it runs comes from sdk/v3 at the SDK's release.
- pulumi-resource-kubernetes: only one commit of provider/v4 is served (f47bc2d6f199,
  the 4.25.0 release); it is stamped 4.25.0, the PyPI pulumi-kubernetes pin, and built
  against pkg/v3 v3.215.0, the engine release it requires (newer ones do not compile with it).
tests/unit/test_tools_pins.py keeps these pins, the wrappers and pyproject.toml in step.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from ..errors import ToolError
from ..paths import bin_dir, cache_root
from ..text import last_lines

# The wrapper modules live in the checkout, next to the package.
TOOLS_SRC = Path(__file__).resolve().parents[2] / "tools"

# How often a running build says it is still alive.
HEARTBEAT_SECONDS = 15.0
# How much of go's output a failure quotes.
ERROR_TAIL_LINES = 25
# A version command that takes longer than this is treated as not reporting one.
VERSION_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class ExtraFile:
    """A file shipped inside a Go module that must sit beside a binary."""

    name: str  # file name in the binary's folder
    module: str
    version: str
    path: str  # path inside the module


@dataclass(frozen=True)
class ToolSpec:
    """One binary we need, and how to build it from its family's wrapper module."""

    name: str
    version: str  # the release the binary reports, with or without "v"; names the cache folder
    family: str  # wrapper folder under tools/; also names the cache folder
    package: str  # Go main package to build
    version_args: tuple[str, ...]  # empty: the binary cannot report a version, so PATH is never trusted
    module: str  # the Go module the wrapper's go.mod must require at module_version
    ldflags: tuple[str, ...] = ()  # beyond "-s -w"
    tags: tuple[str, ...] = ()
    # The package embeds files that `go generate` must produce first; the module cache
    # is read-only, so the package is copied into a temporary module and generated there.
    generate_env: tuple[tuple[str, str], ...] | None = None
    extras: tuple[ExtraFile, ...] = ()
    module_version: str | None = None  # when the module's version is not the release (untagged modules)
    # A Pulumi plugin ("resource-kubernetes") goes into Pulumi's plugin cache, where the engine
    # finds it by exact version, as if `pulumi plugin install` had put it there; a plugin found
    # on PATH instead makes every run warn "using ... from $PATH".
    plugin: str | None = None

    @property
    def required_version(self) -> str:
        return self.module_version or self.version


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    path: Path  # absolute path of the binary used
    source: str  # "PATH" | "cache" | "built"


def _k8s_ldflags(version: str) -> tuple[str, ...]:
    # The same variables hack/lib/version.sh sets, so --version and the API's /version agree.
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    return tuple(flags)


K8S_VERSION = "v1.36.3"
# CLI, language host and exec script all equal the PyPI `pulumi` pin: the exec script
# imports the SDK's internals.
PULUMI_VERSION = "v3.260.0"
# Equals the PyPI `pulumi-kubernetes` pin.
PULUMI_KUBERNETES_VERSION = "v4.25.0"
# provider/v4 has no tags: the proxy serves it only at this commit, the 4.25.0 release.
PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"


# Helm 3's last line, as Argo CD 3 renders charts with; v4 changes `helm template` output.
HELM_VERSION = "v3.22.0"
# fluxcd/pkg/kustomize, the build of kustomize-controller (sigs.k8s.io/kustomize/api v0.21.1);
# v1.44 needs Go 1.27.
FLUX_KUSTOMIZE_VERSION = "v1.41.0"


class _SharedFields(TypedDict):
    family: str
    version: str
    module: str
    ldflags: tuple[str, ...]
    tags: tuple[str, ...]


_K8S = _SharedFields(family="kubernetes", version=K8S_VERSION, module="k8s.io/kubernetes",
                     ldflags=_k8s_ldflags(K8S_VERSION), tags=("selinux", "notest"))

TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(name="pulumi", version=PULUMI_VERSION, family="pulumi",
             package="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", version_args=("version",),
             module="github.com/pulumi/pulumi/pkg/v3",
             # Without it `pulumi version` prints nothing and the Automation API refuses the CLI.
             ldflags=(f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI_VERSION}",),
             tags=("osusergo", "grpcnotrace")),
    ToolSpec(name="pulumi-language-python", version=PULUMI_VERSION, family="language-host", package=".",
             version_args=(), module="github.com/pulumi/pulumi/sdk/v3",
             ldflags=(f"-X main.version={PULUMI_VERSION.lstrip('v')}",),
             # The host runs this script with the project's Python; it must sit beside the host.
             extras=(ExtraFile(name="pulumi-language-python-exec", module="github.com/pulumi/pulumi/sdk/v3",
                               version=PULUMI_VERSION, path="python/cmd/pulumi-language-python-exec"),)),
    ToolSpec(name="pulumi-resource-kubernetes", version=PULUMI_KUBERNETES_VERSION, family="pulumi-kubernetes",
             package="github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes",
             version_args=(), module="github.com/pulumi/pulumi-kubernetes/provider/v4",
             module_version=PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION,
             # No "v": the engine parses this as semver in the plugin info call.
             ldflags=("-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version="
                      + PULUMI_KUBERNETES_VERSION.lstrip("v"),),
             generate_env=(("VERSION", PULUMI_KUBERNETES_VERSION.lstrip("v")),),
             plugin="resource-kubernetes"),
    ToolSpec(name="etcd", version="v3.6.16", family="etcd", package="go.etcd.io/etcd/server/v3",
             version_args=("--version",), module="go.etcd.io/etcd/server/v3"),
    ToolSpec(name="kube-apiserver", package="k8s.io/kubernetes/cmd/kube-apiserver",
             version_args=("--version",), **_K8S),
    ToolSpec(name="kube-controller-manager", package="k8s.io/kubernetes/cmd/kube-controller-manager",
             version_args=("--version",), **_K8S),
    ToolSpec(name="kube-scheduler", package="k8s.io/kubernetes/cmd/kube-scheduler",
             version_args=("--version",), **_K8S),
    ToolSpec(name="kwok", version="v0.8.0", family="kwok", package="sigs.k8s.io/kwok/cmd/kwok",
             version_args=("--version",), module="sigs.k8s.io/kwok",
             ldflags=("-X sigs.k8s.io/kwok/pkg/consts.Version=0.8.0",)),
    ToolSpec(name="kubectl", package="k8s.io/kubernetes/cmd/kubectl",
             version_args=("version", "--client"), **_K8S),
    # Renderers of config repos (issue 12): Helm's own engine, and Flux's kustomize build.
    ToolSpec(name="helm", version=HELM_VERSION, family="helm", package="helm.sh/helm/v3/cmd/helm",
             version_args=("version", "--short"), module="helm.sh/helm/v3",
             ldflags=(f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",)),
    # Our wrapper (tools/kustomize/main.go) around fluxcd/pkg/kustomize, the code kustomize-controller runs.
    ToolSpec(name="gitops-kustomize", version=FLUX_KUSTOMIZE_VERSION, family="kustomize", package=".",
             version_args=("-version",), module="github.com/fluxcd/pkg/kustomize",
             ldflags=(f"-X main.version={FLUX_KUSTOMIZE_VERSION}",)),
)


def family_dir(spec: ToolSpec) -> Path:
    """Cache folder of one build of a family; the version in the name keeps old builds apart.

    A family whose source lives in its wrapper folder (package ".") keeps its version while
    that source is edited, so a digest of the folder is part of the name too.
    """
    key = f"{spec.family}-{spec.version}"
    if spec.package.startswith("."):
        key += "-" + wrapper_digest(spec.family)
    return cache_root() / "tools" / key / "bin"


def wrapper_digest(family: str) -> str:
    """Short hash of the Go source and pins in tools/<family>/ (a few small files: cheap on every call).

    Other files (a binary someone built there by hand) are left out so they cannot change the key.
    """
    digest = hashlib.sha256()
    folder = TOOLS_SRC / family
    sources = [p for p in folder.rglob("*") if p.is_file() and (p.suffix == ".go" or p.name in ("go.mod", "go.sum"))]
    for path in sorted(sources):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def cached_path(spec: ToolSpec) -> Path:
    return family_dir(spec) / spec.name


def ensure_tools(progress: Callable[[str], None] = print,
                 names: Iterable[str] | None = None) -> dict[str, Tool]:
    specs = select_specs(names)
    found: dict[str, Tool] = {}
    missing: list[ToolSpec] = []
    for spec in specs:
        tool = _from_path(spec) or _from_cache(spec)
        if tool:
            found[spec.name] = tool
        else:
            missing.append(spec)
    position = {spec.name: i for i, spec in enumerate(specs, 1)}
    for family_specs in _group_by_family(missing):
        for spec, path in _build_family(family_specs, len(specs), position, progress).items():
            found[spec.name] = Tool(spec, path, "built")
    tools = {spec.name: found[spec.name] for spec in specs}
    _link_bin_dir(tools.values())
    return tools


def select_specs(names: Iterable[str] | None) -> list[ToolSpec]:
    if names is None:
        return list(TOOL_SPECS)
    by_name = {spec.name: spec for spec in TOOL_SPECS}
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ToolError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def describe(tools: Mapping[str, Tool] | Iterable[Tool]) -> list[tuple[str, str, str, str]]:
    items = tools.values() if isinstance(tools, Mapping) else tools
    return [(t.spec.name, reported_version(t.path, t.spec) or t.spec.version, t.source, str(t.path))
            for t in items]


def reported_version(path: Path, spec: ToolSpec) -> str | None:
    """The version the binary prints: the pinned one if it appears, else the first version-like token."""
    output = _version_output(path, spec)
    if output is None:
        return None
    if _mentions_version(output, spec.version):
        return spec.version
    match = re.search(r"v?\d+\.\d+\.\d+[\w.+-]*", output)
    return match.group(0) if match else None


def _version_output(path: Path, spec: ToolSpec) -> str | None:
    if not spec.version_args:
        return None
    try:
        done = subprocess.run([str(path), *spec.version_args], capture_output=True, text=True,
                              timeout=VERSION_TIMEOUT_SECONDS, env=_quiet_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout + done.stderr


def _quiet_env() -> dict[str, str]:
    # `pulumi version` would otherwise ask the network whether a newer CLI exists.
    return {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}


def _mentions_version(output: str, version: str) -> bool:
    # Whole token only: v1.36.3 must not match v1.36.30 or v1.36.3-dirty.
    bare = re.escape(version.lstrip("v"))
    return re.search(rf"(?<![\w.+-])v?{bare}(?![\w.+-])", output) is not None


def _from_path(spec: ToolSpec) -> Tool | None:
    if not spec.version_args:
        return None
    ours = {bin_dir().resolve(), family_dir(spec).resolve()}
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or Path(entry).resolve() in ours:
            continue  # our own links would otherwise be taken for an installed tool
        candidate = Path(entry) / spec.name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            # Only the first hit counts, as in a shell; a wrong version there means build.
            output = _version_output(candidate, spec)
            if output is not None and _mentions_version(output, spec.version) and _extras_beside(spec, candidate):
                return Tool(spec, candidate.absolute(), "PATH")
            return None
    return None


def _extras_beside(spec: ToolSpec, binary: Path) -> bool:
    return all((binary.parent / extra.name).is_file() for extra in spec.extras)


def _from_cache(spec: ToolSpec) -> Tool | None:
    # The binary is renamed into place last, so its presence means the build completed.
    path = cached_path(spec)
    if path.is_file() and os.access(path, os.X_OK) and _extras_beside(spec, path):
        return Tool(spec, path, "cache")
    return None


def _group_by_family(specs: Iterable[ToolSpec]) -> list[list[ToolSpec]]:
    groups: dict[tuple[str, str], list[ToolSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.family, spec.version), []).append(spec)
    return list(groups.values())


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        raise ToolError("building the pinned tools needs Go (the `go` command), which is not on PATH")
    return go


def _build_env(go: str) -> dict[str, str]:
    env = dict(os.environ)
    # go:generate directives run `go` by name.
    env["PATH"] = os.pathsep.join([str(Path(go).parent), env.get("PATH", "")])
    env["CGO_ENABLED"] = "0"
    # The wrapper's go.sum is the pin: never let a build rewrite it.
    flags = [f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join([*flags, "-mod=readonly"])
    return env


def _build_family(specs: list[ToolSpec], total: int, position: Mapping[str, int],
                  progress: Callable[[str], None]) -> dict[ToolSpec, Path]:
    first = specs[0]
    wrapper = TOOLS_SRC / first.family
    if not (wrapper / "go.mod").is_file():
        raise ToolError(f"cannot build {first.name} {first.version}: wrapper module {wrapper}/go.mod is missing")
    go = _go()
    env = _build_env(go)
    out_dir = family_dir(first)
    out_dir.mkdir(parents=True, exist_ok=True)
    built: dict[ToolSpec, Path] = {}
    # Same folder as the cache so the final rename is atomic.
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp_name:
        tmp = Path(tmp_name)
        for group in _group_by_options(specs):
            built.update(_build_group(group, wrapper, tmp, go, env, total, position, progress))
    _record_build_time(f"{first.family}-{first.version}", time.monotonic() - started)
    return built


def build_times() -> dict[str, float]:
    """Seconds each family's last build took on this machine, for benchmarks and reports."""
    try:
        times = json.loads((cache_root() / "tools" / "build-times.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return times if isinstance(times, dict) else {}


def _record_build_time(key: str, seconds: float) -> None:
    path = cache_root() / "tools" / "build-times.json"
    times = {**build_times(), key: round(seconds, 1)}
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(times, indent=1, sort_keys=True))
    os.replace(staged, path)


def _group_by_options(specs: list[ToolSpec]) -> list[list[ToolSpec]]:
    # One `go build` for binaries sharing flags: they share most packages, so this saves compiles.
    groups: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[ToolSpec]] = {}
    for spec in specs:
        # A package that needs `go generate` is staged in a module of its own: built alone.
        key = (spec.ldflags, spec.tags, spec.name if spec.generate_env is not None else "")
        groups.setdefault(key, []).append(spec)
    return list(groups.values())


def _build_group(specs: list[ToolSpec], wrapper: Path, tmp: Path, go: str, env: dict[str, str],
                 total: int, position: Mapping[str, int],
                 progress: Callable[[str], None]) -> dict[ToolSpec, Path]:
    first = specs[0]
    label = f"{', '.join(s.name for s in specs)} {first.version}"
    numbers = sorted(position[s.name] for s in specs)
    where = str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
    progress(f"building {label} ({where}/{total}) ...")
    started = time.monotonic()
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    workdir, packages = wrapper, [s.package for s in specs]
    if first.generate_env is not None:
        workdir, packages = _stage_generated(first, wrapper, tmp, go, env, label, progress, started)
    ldflags = " ".join(["-s", "-w", *first.ldflags])
    command = [go, "build", "-trimpath", "-ldflags", ldflags]
    if first.tags:
        command += ["-tags", ",".join(first.tags)]
    if len(specs) == 1:
        command += ["-o", str(out / first.name), *packages]
    else:
        command += ["-o", str(out) + os.sep, *packages]
    _run_go(command, workdir, env, label, progress, tmp / "build.log", started)
    results: dict[ToolSpec, Path] = {}
    for spec, package in zip(specs, packages):
        produced = out / (spec.name if len(specs) == 1 else _go_binary_name(package))
        if not produced.is_file():
            raise ToolError(f"building {spec.name} {spec.version}: go reported success but wrote no {produced.name}")
        final = cached_path(spec)
        for extra in spec.extras:
            _install_extra(extra, wrapper, tmp, go, env, final.parent, spec)
        os.replace(produced, final)
        size_mb = final.stat().st_size / 1e6
        progress(f"built {spec.name} in {time.monotonic() - started:.0f} s ({size_mb:.0f} MB)")
        results[spec] = final
    return results


def _go_binary_name(package: str) -> str:
    # go build names a binary after the last path element that is not a major-version suffix.
    parts = [p for p in package.split("/") if p and p != "."]
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _stage_generated(spec: ToolSpec, wrapper: Path, tmp: Path, go: str, env: dict[str, str],
                     label: str, progress: Callable[[str], None], started: float) -> tuple[Path, list[str]]:
    """Copy the package into a throw-away module beside the wrapper's pins and run its go:generate."""
    listing = _run_go([go, "list", "-e", "-f", "{{.Dir}}", spec.package], wrapper, env, label, progress,
                      tmp / "list.log", started)
    source = Path(listing.strip().splitlines()[-1])
    module = tmp / "src"
    target = module / "cmd" / spec.name
    shutil.copytree(source, target)
    for name in ("go.mod", "go.sum"):
        shutil.copy2(wrapper / name, module / name)
    for path in [module, *module.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # module-cache copies are read-only
    generate_env = {**env, **dict(spec.generate_env or ())}
    # generate.go compiles Pulumi's schema package: a couple of minutes cold.
    _run_go([go, "generate", f"./cmd/{spec.name}"], module, generate_env, f"{label} (go generate)", progress,
            tmp / "generate.log", started)
    return module, [f"./cmd/{spec.name}"]


def _install_extra(extra: ExtraFile, wrapper: Path, tmp: Path, go: str, env: dict[str, str],
                   dest_dir: Path, spec: ToolSpec) -> None:
    label = f"{extra.name} for {spec.name}"
    listing = _run_go([go, "mod", "download", "-json", f"{extra.module}@{extra.version}"], wrapper, env, label,
                      None, tmp / "download.log")
    source = Path(json.loads(listing)["Dir"]) / extra.path
    staged = tmp / extra.name
    shutil.copyfile(source, staged)
    staged.chmod(0o755)  # module zips drop the run bit
    os.replace(staged, dest_dir / extra.name)


def _run_go(command: list[str], cwd: Path, env: Mapping[str, str], label: str,
            progress: Callable[[str], None] | None, log_path: Path, started: float | None = None) -> str:
    """Run go with its output in a file (not a pipe, so it never blocks), saying every so often that it lives.

    `started` is when the whole build began, so the seconds shown keep counting across its steps.
    """
    started = time.monotonic() if started is None else started
    next_beat = time.monotonic() + HEARTBEAT_SECONDS
    with open(log_path, "w+") as log:
        try:
            process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        except OSError as e:
            raise ToolError(f"cannot run go for {label}: {e}") from e
        try:
            while process.poll() is None:
                time.sleep(0.5)
                if progress and time.monotonic() >= next_beat:
                    progress(f"  still building {label} ... {time.monotonic() - started:.0f} s")
                    next_beat += HEARTBEAT_SECONDS
        except BaseException:
            process.kill()
            process.wait()
            raise
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        tail = "\n".join(last_lines(output, ERROR_TAIL_LINES))
        raise ToolError(f"building {label} failed: `{' '.join(command[1:3])}` exited {process.returncode} "
                        f"in {cwd}; last lines of go's output:\n{tail}")
    return output


def plugin_dir(spec: ToolSpec) -> Path:
    """The folder Pulumi's plugin cache uses for this plugin version (`$PULUMI_HOME/plugins/...`)."""
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    return home / "plugins" / f"{spec.plugin}-v{spec.version.lstrip('v')}"


def _link_bin_dir(tools: Iterable[Tool]) -> None:
    """Put each selected binary (and its extra files) in bin_dir(), plugins in Pulumi's plugin cache.

    Hard links, not symlinks, where the file system allows: the CLI looks for its bundled
    language host beside its own resolved path and warns on every run ("using
    pulumi-language-python from $PATH") unless the host found on PATH resolves to that same file.
    """
    target_dir = bin_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        if tool.spec.plugin:
            (target_dir / tool.spec.name).unlink(missing_ok=True)  # left there by older versions of this code
            folder = plugin_dir(tool.spec)
            folder.mkdir(parents=True, exist_ok=True)
            _link(folder, tool.spec.name, tool.path)
            continue
        _link(target_dir, tool.spec.name, tool.path)
        for extra in tool.spec.extras:
            _link(target_dir, extra.name, tool.path.parent / extra.name)


def _link(folder: Path, name: str, target: Path) -> None:
    """`folder/name` becomes `target`, replaced atomically; a hard link where possible."""
    entry = folder / name
    current = entry.exists() and os.path.samefile(entry, target)
    if current and not entry.is_symlink():
        return
    staged = folder / f".{name}.{os.getpid()}.tmp"
    staged.unlink(missing_ok=True)
    try:
        os.link(target, staged)
    except OSError:  # another file system, or a PATH tool we may not link
        if current:
            return
        staged.symlink_to(target)
    os.replace(staged, entry)
