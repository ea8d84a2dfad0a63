"""Helm charts, rendered by Helm's own engine as `helm template` and Argo CD render them.

A chart is a folder with a `Chart.yaml`. It is rendered on a scratch copy of the commit's tree
with no connection to a cluster (`lookup` finds nothing; the cluster's version and API versions
are passed in, as Argo CD passes them), no post-renderer, Helm's config and cache in scratch
folders, and no kubeconfig; each object is placed at the template it came from (`# Source:`).
Pure but for `template`.
"""
from __future__ import annotations

import bisect
import json
import os
import posixpath
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..manifests.load import Document, load_documents
from ..settings import RenderSettings
from . import Built, Capabilities, pinned
from .limited import run_limited

TOOL = "helm"
CHART_FILE = "Chart.yaml"
TEMPLATE_TIMEOUT_S = 120.0
TEMPLATE_ADDRESS_SPACE_BYTES = 4 * 1024**3
MAX_OUTPUT_BYTES = 128 * 1024**2
_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


def binary() -> Path:
    return pinned(TOOL)


def is_chart(paths: Iterable[str], folder: str) -> bool:
    """`folder` is a chart: its `Chart.yaml` is there (subcharts below it are the chart's own)."""
    return (posixpath.join(folder, CHART_FILE) if folder else CHART_FILE) in set(paths)


@dataclass(frozen=True)
class RemoteChart:
    """A chart from a Helm repository or an OCI registry, pinned to a version."""

    chart: str
    repo: str | None
    version: str

    @property
    def label(self) -> str:
        return f"{self.chart}@{self.version}" if self.chart.startswith("oci://") or not self.repo else \
            f"{self.repo.rstrip('/')}/{self.chart}@{self.version}"

    def args(self) -> list[str]:
        found = [self.chart, "--version", self.version]
        if self.repo and not self.chart.startswith("oci://"):
            found += ["--repo", self.repo]
        host = self.chart.removeprefix("oci://").split("/", 1)[0] if self.chart.startswith("oci://") else ""
        if host.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
            found.append("--plain-http")  # a loopback registry speaks plain HTTP, as docker treats it
        return found


def render_chart(binary: Path, tree: Path, root: str, render: RenderSettings, namespace: str,
                 capabilities: Capabilities) -> Built:
    """The chart of the stack (at `root`, or `render.helm_chart`) rendered as its settings say."""
    where = posixpath.join(root, CHART_FILE)
    values_files = [posixpath.normpath(posixpath.join(root, f)) for f in render.helm_values_files]
    outside = [f for f in values_files if f.startswith(("..", "/"))]
    if outside:
        return Built("helm", root, b"", Problem(where, 1, f"values file {outside[0]!r} is outside the repository"))
    remote = RemoteChart(render.helm_chart, render.helm_repo, render.helm_version or "") if render.helm_chart else None
    if remote is not None and (not render.helm_version or not (remote.repo or remote.chart.startswith("oci://"))):
        missing = "gitops:helmVersion" if not render.helm_version else "gitops:helmRepo (or an oci:// chart)"
        return Built("helm", root, b"", Problem(f"chart {remote.chart}", 1,
                                                f"{missing} is required with gitops:helmChart"))
    default_release = posixpath.basename(remote.chart.rstrip("/")) if remote else posixpath.basename(root)
    output, problem = template(binary, tree, root, release=render.helm_release or default_release or "release",
                               namespace=namespace, values_files=values_files, values=render.helm_values,
                               remote=remote, capabilities=capabilities)
    return Built("helm", root, output, problem, helm_hooks=render.helm_hooks, remote=remote)


def template(binary: Path, tree: Path, folder: str, release: str, namespace: str,
             values_files: Sequence[str] = (), values: Mapping[str, Any] | None = None,
             remote: RemoteChart | None = None,
             capabilities: Capabilities | None = None) -> tuple[bytes, Problem | None]:
    """The chart at `folder` (or `remote`) rendered, or the problem that stopped Helm. `values_files`
    are paths in the repo, applied in order, then the inline `values` on top (`helm -f a -f b -f inline`).
    A folder chart whose dependencies are declared but not vendored in `charts/` gets them from
    the repositories its `Chart.lock` names first (`helm dependency build`)."""
    where = f"chart {remote.label}" if remote is not None else posixpath.join(folder, CHART_FILE)
    capabilities = capabilities or Capabilities()
    with tempfile.TemporaryDirectory(prefix="gitops-helm-") as scratch:
        helm = _Helm(binary, tree, Path(scratch), where)
        declared = _declared(tree / folder) if remote is None else []
        if needs_dependencies(tree / folder, declared):
            for number, url in enumerate(dependency_repositories(declared)):
                _, problem = helm.run("repo", "add", f"dep{number}", url)
                if problem is not None:
                    return b"", problem
            _, problem = helm.run("dependency", "build", "./" + (folder or "."))
            if problem is not None:
                return b"", problem
        command = ["template", release, *(remote.args() if remote is not None else ["./" + (folder or ".")]),
                   "--namespace", namespace, "--include-crds", "--kube-version", capabilities.kube_version]
        for api_version in capabilities.api_versions:
            command += ["--api-versions", api_version]
        for values_file in values_files:
            command += ["--values", values_file]
        if values:
            inline = Path(scratch) / "inline-values.json"
            inline.write_text(json.dumps(values))
            command += ["--values", str(inline)]
        output, problem = helm.run(*command)
    if problem is None and len(output) > MAX_OUTPUT_BYTES:
        return b"", Problem(where, 1, f"the chart rendered more than {MAX_OUTPUT_BYTES // 2**20} MiB of objects")
    return output, problem


@dataclass(frozen=True)
class _Helm:
    binary: Path
    tree: Path
    home: Path
    """Helm's own state (repositories, registry logins, plugins): never the user's or the pod's."""
    where: str

    def run(self, *args: str) -> tuple[bytes, Problem | None]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "HELM_CONFIG_HOME": str(self.home),
               "HELM_CACHE_HOME": str(self.home), "HELM_DATA_HOME": str(self.home), "KUBECONFIG": os.devnull}
        try:
            done = run_limited([str(self.binary), *args], cwd=self.tree, env=env, timeout=TEMPLATE_TIMEOUT_S,
                               address_space=TEMPLATE_ADDRESS_SPACE_BYTES)
        except subprocess.TimeoutExpired:
            return b"", Problem(self.where, 1, f"helm {args[0]} took longer than {TEMPLATE_TIMEOUT_S:.0f} s")
        except OSError as e:
            return b"", Problem(self.where, 1, f"helm could not start: {e}")
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().replace(str(self.tree) + "/", "")
            return b"", Problem(self.where, 1, f"helm {args[0]}: {message[-2000:] or f'exit {done.returncode}'}")
        return done.stdout, None


def _declared(chart: Path) -> list[dict[str, Any]]:
    # Chart.yaml is the repo's, so as untrusted as a manifest: read with the same bounded parser.
    try:
        data = (chart / CHART_FILE).read_bytes()
    except OSError:
        return []
    documents, problems = load_documents(CHART_FILE, data)
    document = documents[0].data if documents and not problems else None
    found = document.get("dependencies") if isinstance(document, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def needs_dependencies(chart: Path, declared: Sequence[Mapping[str, Any]]) -> bool:
    """Dependencies `declared` in Chart.yaml that `charts/` does not hold (as a folder or a .tgz)."""
    vendored = chart / "charts"
    for dependency in declared:
        name = dependency.get("name")
        if isinstance(name, str) and not (vendored / name).is_dir() and not list(vendored.glob(f"{name}-*.tgz")):
            return True
    return False


def dependency_repositories(declared: Sequence[Mapping[str, Any]]) -> list[str]:
    """The http(s) repositories the `declared` dependencies name (OCI ones need no `repo add`)."""
    urls = [d.get("repository") for d in declared]
    return sorted({u for u in urls if isinstance(u, str) and u.startswith(("https://", "http://"))})


def sources(output: bytes) -> list[tuple[int, str]]:
    """(line, template) of each `# Source:` comment in Helm's output, in order."""
    text = output.decode("utf-8", "replace")
    found, line, counted = [], 1, 0
    for match in _SOURCE.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        found.append((line, match.group(1).strip()))
    return found


def relocate(document: Document, folder: str, found: Sequence[tuple[int, str]],
             remote: RemoteChart | None = None) -> Document:
    """A rendered object placed at its template: the last `# Source:` above its first line, with
    the chart's name (Helm's first path segment) replaced by the chart's folder."""
    at = bisect.bisect_right(found, (document.line, "\U0010ffff")) - 1
    template_path = found[at][1] if at >= 0 else None
    if template_path is None or "/" not in template_path:
        return document
    relative = template_path.split("/", 1)[1]
    if remote is not None:  # no file of this repo: the template inside the pinned chart
        return Document(f"chart {remote.label}: {posixpath.normpath(relative)}", 1, document.data,
                        document.field_lines)
    placed = posixpath.normpath(posixpath.join(folder, relative)) if folder else posixpath.normpath(relative)
    if placed.startswith(".."):
        return document
    return Document(placed, 1, document.data, document.field_lines)


HOOK = "helm.sh/hook"
# Helm's test hooks run only on `helm test`; Argo CD leaves them out of a sync too.
_TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})


def hook_of(document: Document) -> str | None:
    """The object's `helm.sh/hook` annotation (e.g. `pre-install,pre-upgrade`), if any."""
    metadata = document.data.get("metadata") if isinstance(document.data, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = annotations.get(HOOK) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def hook_problem(document: Document, mode: str) -> tuple[bool, Problem | None]:
    """Whether a rendered object is kept, and the problem it is under `mode` (`gitops:helmHooks`)."""
    hook = hook_of(document)
    if hook is None:
        return True, None
    kinds = {k.strip() for k in hook.split(",") if k.strip()}
    if kinds <= _TEST_HOOKS or mode == "skip":
        return False, None
    if mode == "apply":
        return True, None
    return False, Problem(document.path, document.line,
                          f"a Helm hook ({hook}): gitops applies every object of a chart as one resource, with no "
                          "install or upgrade phases; set gitops:helmHooks to `skip` (as `helm template "
                          "--no-hooks`) or `apply` (as ordinary objects)")


def without_hooks(documents: Sequence[Document], mode: str) -> tuple[list[Document], list[Problem]]:
    """The rendered objects `mode` (`gitops:helmHooks`) keeps, and the hooks it refuses."""
    kept, refused = [], []
    for document in documents:
        keep, problem = hook_problem(document, mode)
        if problem is not None:
            refused.append(problem)
        if keep:
            kept.append(document)
    return kept, refused
