"""The API server's verdict on a whole commit before anything changes: a server-side dry run of
every object, concurrently, as Flux's kustomize-controller does. Schema, admission and quota
rejections then stop the commit with nothing applied, instead of half of it being applied first.

Objects that can only be checked once something else in the same commit exists (in a namespace
the commit creates, of a kind whose CRD the commit installs) are left to the engine: the server
cannot judge them yet, and refusing them would refuse every new namespace.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterError, GitOpsError
from ..model import Manifest
from ..settings import ClusterSettings
from ..text import escape
from .api import CONCURRENCY, KubeApi, Response
from .discovery import Discovery, discover

# Distinct from the provider's, so the dry run's ownership claims (never stored) cannot be mistaken for it.
FIELD_MANAGER = "gitops-verdict"


@dataclass(frozen=True)
class Rejection:
    manifest: Manifest
    message: str

    def __str__(self) -> str:
        return f"{self.manifest.id.subject} ({self.manifest.origin}): {escape(self.message)}"


class RejectedError(GitOpsError):
    """The API server would refuse objects of the commit: nothing was applied."""

    def __init__(self, commit: str, rejections: Sequence[Rejection]):
        self.rejections = tuple(rejections)
        count = len(self.rejections)
        lines = [f"  {r}" for r in self.rejections[:100]]
        if count > 100:
            lines.append(f"  and {count - 100} more")
        super().__init__(f"the API server rejects {count} object{'s' if count != 1 else ''} of commit {commit[:12]}; "
                         f"nothing was applied:\n" + "\n".join(lines))


@dataclass(frozen=True)
class Verdict:
    checked: int
    deferred: tuple[Manifest, ...]
    """Not checked: they need a namespace or CRD of the same commit to exist first."""
    rejections: tuple[Rejection, ...]
    seconds: float
    replaced: tuple[Manifest, ...] = ()
    """Refused only for changing immutable fields: the engine replaces them."""

    @property
    def summary(self) -> str:
        text = f"{self.checked - len(self.rejections)} of {self.checked} objects accepted in {self.seconds:.1f} s"
        if self.replaced:
            text += f" ({len(self.replaced)} change immutable fields: the engine replaces them)"
        if self.deferred:
            text += f"; {len(self.deferred)} left to the engine until their namespace or CRD exists"
        return text


def verdict(api: KubeApi, manifests: Sequence[Manifest], discovery: Discovery | None = None,
            concurrency: int = CONCURRENCY) -> Verdict:
    started = time.monotonic()
    found = discovery or discover(api)
    new_namespaces = {m.id.name for m in manifests if m.id.group == "" and m.id.kind == "Namespace"}
    new_kinds = {_crd_kind(m) for m in manifests if m.id.group == "apiextensions.k8s.io"
                 and m.id.kind == "CustomResourceDefinition"} - {None}
    rejections: list[Rejection] = []
    deferred: list[Manifest] = []
    checks = []
    for manifest in manifests:
        group, version = manifest.id.group, manifest.version
        resource = found.find(group, version, manifest.id.kind)
        if resource is None:
            if (group, manifest.id.kind) in new_kinds:
                deferred.append(manifest)
            else:
                rejections.append(Rejection(manifest, f"the cluster serves no kind {manifest.id.kind} in "
                                                      f"{manifest.api_version}"))
            continue
        checks.append((manifest, resource.path(manifest.id.namespace, manifest.id.name)))

    def check(item: tuple[Manifest, str]) -> tuple[Manifest, Response]:
        manifest, path = item
        return manifest, api.request("PATCH", path, manifest.body, content_type="application/apply-patch+yaml",
                                     query=[("dryRun", "All"), ("fieldManager", FIELD_MANAGER), ("force", "true")])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(check, checks))
    replaced: list[Manifest] = []
    for manifest, response in results:
        status, message = response.status, response.message
        if status < 300:
            continue
        if status == 422 and only_immutable_fields(response.body):
            # The engine replaces an object whose immutable fields change (pulumi-kubernetes deletes
            # and re-creates it); an update is all the server was asked to judge, and all it refused.
            replaced.append(manifest)
            continue
        if status >= 500 or status == 429:
            # The server could not judge (overloaded, a webhook down): that is no verdict on the commit.
            raise ClusterError(f"the API server could not dry-run {manifest.id.subject}: HTTP {status}: {message}")
        if status == 404 and manifest.id.namespace in new_namespaces and "namespaces" in message:
            deferred.append(manifest)
            continue
        rejections.append(Rejection(manifest, message))
    return Verdict(len(checks), tuple(deferred), tuple(sorted(rejections, key=lambda r: r.manifest.id.subject)),
                   time.monotonic() - started, tuple(replaced))


# How the API server words a refused change of a field fixed at creation (apimachinery's
# ValidateImmutableField, and the StatefulSet and PersistentVolumeClaim spec rules).
_IMMUTABLE = ("field is immutable", "is immutable after creation", "updates to statefulset spec for fields other than")


def only_immutable_fields(body: Any) -> bool:
    """The server refused nothing but changes of immutable fields: its Status lists every cause."""
    details = body.get("details") if isinstance(body, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(causes, list) or not causes:
        return False
    return all(isinstance(c, dict) and isinstance(c.get("message"), str) and any(w in c["message"] for w in _IMMUTABLE)
               for c in causes)


def _crd_kind(manifest: Manifest) -> tuple[str, str] | None:
    spec = manifest.body.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("names"), dict):
        return None
    group, kind = spec.get("group"), spec["names"].get("kind")
    return (group, kind) if isinstance(group, str) and isinstance(kind, str) else None


def require_acceptance(cluster: ClusterSettings, manifests: Sequence[Manifest], commit: str) -> Verdict:
    """The verdict on `manifests` from the stack's cluster; RejectedError if it refuses any."""
    api = KubeApi(cluster.resolved_kubeconfig(), cluster.context)
    try:
        found = verdict(api, manifests)
    finally:
        api.close()
    if found.rejections:
        raise RejectedError(commit, found.rejections)
    return found
