"""The tool pins in gitops/local/tools.py, the wrapper go.mod files and pyproject.toml must agree."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from gitops.local import tools
from gitops.local.tools import TOOL_SPECS

ROOT = Path(__file__).resolve().parents[2]
SPECS = {spec.name: spec for spec in TOOL_SPECS}


def pypi_pin(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1].strip() for d in deps if re.fullmatch(rf"{re.escape(package)}\s*==.*", d)]
    assert len(pins) == 1, f"pyproject.toml must pin {package} exactly once with =="
    return pins[0]


def go_requires(family: str) -> dict[str, str]:
    """module -> version from the require lines (single and block form) of tools/<family>/go.mod."""
    text = (ROOT / "tools" / family / "go.mod").read_text()
    requires: dict[str, str] = {}
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line.startswith("require ("):
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        if line.startswith("require "):
            line = line[len("require "):]
        elif not in_block:
            continue
        parts = line.split()
        if len(parts) == 2:
            requires[parts[0]] = parts[1]
    return requires


def go_replaces(family: str) -> dict[str, str]:
    text = (ROOT / "tools" / family / "go.mod").read_text()
    return {m[0]: m[1] for m in re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+(\S+ \S+)\s*$", text, re.M)}


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"v?(\d+)\.(\d+)\.(\d+)", version).groups())


@pytest.mark.parametrize("spec", TOOL_SPECS, ids=lambda s: s.name)
def test_each_wrapper_requires_the_pinned_module(spec):
    assert go_requires(spec.family).get(spec.module) == spec.required_version, (
        f"tools/{spec.family}/go.mod must require {spec.module} {spec.required_version} for {spec.name}")


def test_one_version_per_family():
    # The cache folder is <family>-<version>: two versions in one family would share a wrapper that pins one.
    versions: dict[str, set[str]] = {}
    for spec in TOOL_SPECS:
        versions.setdefault(spec.family, set()).add(spec.version)
    assert {f: v for f, v in versions.items() if len(v) > 1} == {}


def test_the_eleven_tools_are_pinned():
    assert set(SPECS) == {"pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "etcd", "kube-apiserver",
                          "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm", "gitops-kustomize"}


def test_pulumi_cli_equals_the_python_sdk():
    assert SPECS["pulumi"].version == "v" + pypi_pin("pulumi")


def test_language_host_and_exec_script_equal_the_python_sdk():
    # The exec script imports the SDK's internals, so it must come from the SDK's own release.
    spec = SPECS["pulumi-language-python"]
    (extra,) = spec.extras
    assert spec.version == extra.version == "v" + pypi_pin("pulumi")
    assert f"-X main.version={pypi_pin('pulumi')}" in spec.ldflags


def test_pulumi_cli_is_stamped_with_its_version():
    spec = SPECS["pulumi"]
    assert f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={spec.version}" in spec.ldflags


def test_pulumi_wrapper_pins_sdk_beside_pkg():
    # pkg/v3 replaces sdk/v3 with its sibling folder; without an equal require Go keeps an older sdk.
    requires = go_requires("pulumi")
    assert requires["github.com/pulumi/pulumi/sdk/v3"] == requires["github.com/pulumi/pulumi/pkg/v3"]


def test_provider_wrapper_uses_the_pypi_sdk_release():
    assert go_requires("pulumi-kubernetes")["github.com/pulumi/pulumi-kubernetes/sdk/v4"] == (
        "v" + pypi_pin("pulumi-kubernetes"))


def test_provider_equals_the_python_sdk_and_is_stamped_bare():
    # No "v" in the stamp: the engine parses it as semver in the plugin info call.
    spec = SPECS["pulumi-resource-kubernetes"]
    pin = pypi_pin("pulumi-kubernetes")
    assert spec.version == "v" + pin
    assert spec.ldflags == (f"-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version={pin}",)
    assert dict(spec.generate_env)["VERSION"] == pin


def test_kubernetes_staging_modules_follow_the_release():
    k8s = SPECS["kube-apiserver"].version
    staging = "v0." + k8s.split(".", 1)[1]
    replaces = go_replaces("kubernetes")
    assert len(replaces) >= 30
    assert {mod: target for mod, target in replaces.items() if target != f"{mod} {staging}"} == {}


def test_etcd_siblings_share_the_server_version():
    requires = go_requires("etcd")
    version = SPECS["etcd"].version
    for sibling in ("api/v3", "client/pkg/v3", "client/v3", "pkg/v3"):
        assert requires[f"go.etcd.io/etcd/{sibling}"] == version


def test_kubernetes_binaries_are_stamped():
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        flags = " ".join(SPECS[name].ldflags)
        assert f"k8s.io/component-base/version.gitVersion={SPECS[name].version}" in flags
        assert f"k8s.io/client-go/pkg/version.gitVersion={SPECS[name].version}" in flags


@pytest.mark.parametrize("output,version,expected", [
    ("Client Version: v1.32.4\nKustomize Version: v5.5.0", "v1.36.3", False),
    ("Client Version: v1.36.3\nKustomize Version: v5.8.0", "v1.36.3", True),
    ("Kubernetes v1.36.30", "v1.36.3", False),
    ("Kubernetes v1.36.3-dirty", "v1.36.3", False),
    ("etcd Version: 3.6.16\nGit SHA: x", "v3.6.16", True),
    ("v3.274.1\n", "v3.274.1", True),
])
def test_version_match_is_exact(output, version, expected):
    assert tools._mentions_version(output, version) is expected


def test_go_names_binaries_without_major_version_suffix():
    assert tools._go_binary_name("go.etcd.io/etcd/server/v3") == "server"
    assert tools._go_binary_name("k8s.io/kubernetes/cmd/kubectl") == "kubectl"
    assert tools._go_binary_name("./cmd/pulumi-resource-kubernetes") == "pulumi-resource-kubernetes"


def test_cache_layout_is_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path))
    assert tools.cached_path(SPECS["kubectl"]) == tmp_path / "tools" / "kubernetes-v1.36.3" / "bin" / "kubectl"
    assert tools.bin_dir() == tmp_path / "bin"


def test_local_source_is_part_of_the_cache_key(tmp_path, monkeypatch):
    # The language host's source lives in tools/language-host and is edited without a version bump.
    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tools, "TOOLS_SRC", tmp_path / "tools")
    source = tmp_path / "tools" / "language-host"
    source.mkdir(parents=True)
    (source / "main.go").write_text("package main\n")
    spec = SPECS["pulumi-language-python"]
    before = tools.cached_path(spec)
    assert before.parent.parent.name.startswith(f"language-host-{spec.version}-")
    (source / "main.go").write_text("package main // fixed\n")
    assert tools.cached_path(spec) != before
    assert tools.cached_path(SPECS["etcd"]).parent.parent.name == "etcd-" + SPECS["etcd"].version


def test_second_call_uses_the_cache_without_go(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = tools.cached_path(SPECS["kwok"])
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho kwok version v0.8.0\n")
    binary.chmod(0o755)
    monkeypatch.setattr(tools, "_go", lambda: pytest.fail("go must not run when the cache is complete"))
    found = tools.ensure_tools(progress=lambda line: None, names=["kwok"])
    assert found["kwok"].source == "cache"
    assert (tmp_path / "bin" / "kwok").samefile(binary)
    assert tools.describe(found) == [("kwok", "v0.8.0", "cache", str(binary))]
    # A rebuilt binary (a new file) replaces the stale bin_dir entry.
    binary.unlink()
    binary.write_text("#!/bin/sh\necho kwok version v0.8.0 rebuilt\n")
    binary.chmod(0o755)
    tools.ensure_tools(progress=lambda line: None, names=["kwok"])
    assert (tmp_path / "bin" / "kwok").samefile(binary)


def test_unknown_tool_is_named():
    with pytest.raises(tools.ToolError, match=r"unknown tool.*kubelet"):
        tools.ensure_tools(progress=lambda line: None, names=["kubelet"])


def test_a_failed_build_names_the_tool_and_quotes_go(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(tools, "TOOLS_SRC", tmp_path / "tools")
    (tmp_path / "tools" / "kwok").mkdir(parents=True)
    (tmp_path / "tools" / "kwok" / "go.mod").write_text("module x\n")
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'pkg/x.go:1: undefined: Thing' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    monkeypatch.setattr(tools, "_go", lambda: str(fake_go))
    lines: list[str] = []
    with pytest.raises(tools.ToolError, match=r"(?s)kwok v0\.8\.0 failed.*undefined: Thing"):
        tools.ensure_tools(progress=lines.append, names=["kwok"])
    assert lines == ["building kwok v0.8.0 (1/1) ..."]
    assert not tools.cached_path(SPECS["kwok"]).exists()


def test_binaries_sharing_flags_are_built_by_one_go_build():
    from gitops.local.tools import _group_by_options

    kubernetes = [s for s in TOOL_SPECS if s.family == "kubernetes"]
    assert [[s.name for s in g] for g in _group_by_options(kubernetes)] == [
        ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]]
