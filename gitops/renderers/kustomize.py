"""Kustomize folders, built as Flux's kustomize-controller builds them.

The build is `gitops-kustomize` (tools/kustomize: fluxcd/pkg/kustomize, Flux's own code) on a
scratch copy of the commit's tree; this module only decides which folders are kustomize's, runs
the binary within limits, and says where each built object came from. Pure but for `build`.
"""
from __future__ import annotations

import functools
import posixpath
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem
from ..manifests.load import KUSTOMIZE_FILES, Document
from . import Capabilities, pinned
from .limited import run_limited

TOOL = "gitops-kustomize"
ORIGIN = "config.kubernetes.io/origin"
# A build of hostile input must end, and within memory: kustomize holds every object a few times.
BUILD_TIMEOUT_S = 120.0
BUILD_ADDRESS_SPACE_BYTES = 4 * 1024**3
MAX_OUTPUT_BYTES = 128 * 1024**2


def binary() -> Path:
    return pinned(TOOL)


def kustomize_roots(paths: Iterable[str], folder: str) -> list[str]:
    """Folders built by kustomize: `folder` itself if it holds a kustomization, else the topmost
    folders below it that do (Flux's generator adds those as bases and does not descend)."""
    prefix = "" if folder in ("", ".") else folder.strip("/") + "/"
    holding = sorted({posixpath.dirname(p) for p in paths
                      if p.startswith(prefix) and posixpath.basename(p) in KUSTOMIZE_FILES})
    root = prefix.rstrip("/")
    if root in holding:
        return [root]
    chosen: list[str] = []
    for candidate in holding:  # sorted: a parent comes before its children
        if not any(candidate.startswith(top + "/") for top in chosen):
            chosen.append(candidate)
    return chosen


def under(path: str, roots: Sequence[str]) -> bool:
    return any(root == "" or path == root or path.startswith(root + "/") for root in roots)


def build(binary: Path, tree: Path, root: str, remote_bases: bool = False,
          helm: tuple[Path, Capabilities] | None = None) -> tuple[bytes, Problem | None]:
    """The YAML stream of `root` built in `tree`, or the problem that stopped the build. `helm`
    turns on `helmCharts` inflation with that binary, for a cluster of those capabilities."""
    command = [str(binary), "-root", str(tree), "-path", root or "."]
    if remote_bases:
        command.append("-remote-bases")
    if helm is not None:
        helm_binary, capabilities = helm
        command += ["-helm", str(helm_binary), "-kube-version", capabilities.kube_version,
                    "-api-versions", ",".join(capabilities.api_versions)]
    where = posixpath.join(root, "kustomization.yaml") if root else "kustomization.yaml"
    try:
        done = run_limited(command, cwd=tree, timeout=BUILD_TIMEOUT_S, address_space=BUILD_ADDRESS_SPACE_BYTES)
    except subprocess.TimeoutExpired:
        return b"", Problem(where, 1, f"kustomize build took longer than {BUILD_TIMEOUT_S:.0f} s")
    except OSError as e:
        return b"", Problem(where, 1, f"kustomize could not start: {e}")
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().replace(str(tree) + "/", "") or \
            f"kustomize build failed (exit {done.returncode})"
        return b"", Problem(where, 1, f"kustomize build: {message[-2000:]}")
    if len(done.stdout) > MAX_OUTPUT_BYTES:
        return b"", Problem(where, 1, f"kustomize built more than {MAX_OUTPUT_BYTES // 2**20} MiB of objects")
    return done.stdout, None


def relocate(document: Document, root: str) -> Document:
    """A built object, without kustomize's origin annotation, placed at the file it came from."""
    data = document.data
    metadata = data.get("metadata") if isinstance(data, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or not isinstance(annotations, dict) or ORIGIN not in annotations:
        return document
    text = annotations[ORIGIN]
    origin = _origin_path(text, root) if isinstance(text, str) else None
    kept = {k: v for k, v in annotations.items() if k != ORIGIN}
    new_metadata = {**metadata, "annotations": kept} if kept else \
        {k: v for k, v in metadata.items() if k != "annotations"}
    body: dict[str, Any] = {**data, "metadata": new_metadata}
    return Document(origin or document.path, 1 if origin else document.line, body)


@functools.lru_cache(maxsize=4096)  # every object of a file carries the same origin text
def _origin_path(text: str, root: str) -> str | None:
    try:
        origin = yaml.safe_load(text) if len(text) < 10_000 else None
    except yaml.YAMLError:
        return None
    if not isinstance(origin, dict):
        return None
    relative = origin.get("path") or origin.get("configuredIn")
    if not isinstance(relative, str) or origin.get("repo"):
        return None  # a remote base: no file of this repo to point at
    joined = posixpath.normpath(posixpath.join(root, relative)) if root else posixpath.normpath(relative)
    return None if joined.startswith("..") else joined
