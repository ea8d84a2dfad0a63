"""The watcher's steps: deploy a commit, check for drift, scan images. Each runs against the
watcher's ports and returns a typed result; the loop folds results into its schedule and status.

A step never raises for a failure it knows: bad manifests, the deletion guard, damaged state, the
engine, the source; each comes back as `StepResult.failure` with its message. Only the unexpected
escapes, and the loop counts that as an internal failure.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    ClusterError,
    EngineError,
    GitOpsError,
    GuardError,
    LockError,
    ManifestError,
    SettingsError,
    SourceError,
    StateDamagedError,
)
from ..guard import check_deletions, check_not_empty
from ..images import automation as images
from ..images.message import commit_message
from ..images.scan import ScanResult, describe
from ..images.writeback import Author, WriteBack
from ..kube.dryrun import RejectedError
from ..kube.scopes import read_against_cluster
from ..program import IMAGE_TAGS_ENV, VERIFIED_ENV
from ..settings import StackSettings, split_author
from .decide import Failure
from .metrics import Metrics
from .ports import Ports, Source
from .record import Log, Record


@dataclass(frozen=True)
class StepResult:
    changed: bool = False
    failure: Failure | None = None
    message: str = ""
    summary: dict[str, Any] | None = None
    """The run's record summary, for the status."""
    subjects: tuple[str, ...] | None = None
    """Deploy: the stack's subjects after it; None when unknown (a failed `up` may have changed some)."""
    drifted: tuple[str, ...] = ()


def failure_of(error: Exception) -> Failure:
    """What kind of failure an error is, and so whether a retry can help."""
    for kind, failure in ((StateDamagedError, Failure.STATE), (ManifestError, Failure.MANIFEST),
                          (RejectedError, Failure.REJECTED), (ClusterError, Failure.CLUSTER),
                          (GuardError, Failure.GUARD), (SettingsError, Failure.SETTINGS),
                          (EngineError, Failure.ENGINE), (SourceError, Failure.SOURCE), (LockError, Failure.LOCK)):
        if isinstance(error, kind):
            return failure
    return Failure.INTERNAL


@dataclass
class StepContext:
    ports: Ports
    settings: StackSettings
    project_dir: Path
    runs: Path
    log: Log
    metrics: Metrics
    running: Callable[[str, str], None]
    """Told (action, commit) when a step starts the engine."""
    image_tags: Mapping[str, str] = field(default_factory=dict)
    """Read-only image mode: policy -> the tag deployed in place of git's."""

    @property
    def source(self) -> Source:
        return self.ports.source_for(self.settings.source.resolved_repo(self.project_dir))


def deploy(ctx: StepContext, commit: str, reason: str, subjects: tuple[str, ...] | None) -> StepResult:
    """Render and validate the commit (a broken one never reaches the engine), guard against
    mass deletion, then `up`. `subjects`: the stack's subjects after its last `up`, if known."""
    settings = ctx.settings
    tags = dict(ctx.image_tags) if settings.images.mode == "readonly" else {}
    try:
        rewrite = (lambda files: images.apply_choices(files, tags, settings.source.path)) if tags else None
        desired = read_against_cluster(ctx.source, commit, settings, rewrite=rewrite)
        check_not_empty(desired, settings.safety.allow_empty)
        current = subjects if subjects is not None else ctx.ports.engine.applied().subjects
        verdict = check_deletions(current, desired.subjects, max_delete_percent=settings.safety.max_delete_percent,
                                  allow_mass_delete=settings.safety.allow_mass_delete)
        if not verdict.allowed:
            raise GuardError(f"commit {commit[:12]}: {verdict.message}")
        program_env = {IMAGE_TAGS_ENV: images.encode_choices(tags)} if tags else {}
        plan = ctx.ports.engine.plan(desired, settings)
        if settings.safety.server_dry_run:
            accepted = ctx.ports.verdict(settings.cluster, plan.to_verify(desired.manifests), commit)
            ctx.log("dryrun.accepted", accepted.summary, commit=commit)
            program_env[VERIFIED_ENV] = commit
    except GitOpsError as e:
        return StepResult(failure=failure_of(e), message=str(e), subjects=subjects)
    ctx.running("up", commit)
    record = Record(ctx.runs, "up", commit)
    try:
        result = ctx.ports.engine.up(commit, program_env=program_env, on_event=record.engine_event, plan=plan)
    except GitOpsError as e:
        summary = record.finish({"action": "up", "commit": commit, "reason": reason, "result": "error",
                                 "error": str(e)})
        # A failed `up` may have created or deleted some objects: ask the stack next time.
        return StepResult(failure=failure_of(e), message=str(e), summary=summary, subjects=None)
    summary = record.finish({"action": "up", "commit": commit, "reason": reason, "result": "ok",
                             "changes": dict(result.changes), "changed": result.changed,
                             "seconds": round(result.seconds, 2), "objects": len(desired.manifests),
                             "targeted": result.targeted,
                             "guard": verdict.message})
    ctx.metrics.record_up(result.seconds, dict(result.changes))
    # The guard's "current" is what this `up` left: no `pulumi stack output` call (~1 s) next time.
    return StepResult(changed=result.changed, summary=summary, subjects=result.subjects)


def check_drift(ctx: StepContext, commit: str) -> StepResult:
    """Refresh against the cluster. `report` only previews the refresh; `correct` refreshes the
    state, so the `up` that follows sees hand-edited fields as diffs and puts git's back."""
    mode = ctx.settings.watch.drift_mode
    ctx.running("drift", commit)
    record = Record(ctx.runs, "drift", commit)
    try:
        result = ctx.ports.engine.refresh(preview_only=mode == "report", on_event=record.engine_event)
    except GitOpsError as e:
        summary = record.finish({"action": "drift", "commit": commit, "result": "error", "error": str(e)})
        return StepResult(failure=failure_of(e), message=str(e), summary=summary)
    ctx.metrics.drift(bool(result.drifted))
    summary = record.finish({"action": "drift", "commit": commit, "mode": mode, "drifted": list(result.drifted),
                             "seconds": round(result.seconds, 2), "result": "ok"})
    return StepResult(summary=summary, drifted=result.drifted)


@dataclass(frozen=True)
class ImageScan:
    head: str
    """The commit to deploy now: a pushed write-back's, or the one scanned."""
    image_tags: Mapping[str, str]
    """Read-only mode: the tags to deploy in place of git's."""


def scan_images(ctx: StepContext, head: str, where: str) -> ImageScan:
    """List the tags of the marked images. In commit mode, new tags are committed and pushed, and
    the new head comes back so this cycle deploys it; in read-only mode they are kept for `up`.
    Any failure is logged and leaves things as they were: the git side of the cycle goes on."""
    settings, log = ctx.settings, ctx.log
    scanner = ctx.ports.scanner_for(settings)
    unchanged = ImageScan(head, ctx.image_tags)
    before = dict(scanner.requests_made)
    try:
        result = scanner.scan(ctx.source.read(head, settings.source.path), head, settings, where, source=ctx.source)
    except (ManifestError, SettingsError, SourceError) as e:
        ctx.metrics.image_scan(ok=False)
        log("images.failed", str(e), level="error", commit=head)
        return unchanged
    finally:
        for host, total in scanner.requests_made.items():
            if total - before.get(host, 0):
                ctx.metrics.registry_requests(host, total - before.get(host, 0))
    ctx.metrics.image_scan(ok=not result.errors)
    for image, error in result.errors.items():
        log("images.registry_error", str(error), level="warning", image=image)
    for check in result.checks:
        if check.problem and check.image not in result.errors:
            log("images.problem", check.problem, level="warning", location=check.marker.location)
    moving = result.moving
    if settings.images.mode == "readonly":
        # Keep earlier choices of images that could not be listed now, so a registry outage
        # does not roll the cluster back to git's tags.
        unlisted = {c.marker.policy_ref for c in result.checks if c.image in result.errors}
        tags = {**{k: v for k, v in ctx.image_tags.items() if k in unlisted}, **result.choices}
        if tags != dict(ctx.image_tags):
            ctx.metrics.image_updates("readonly", len(moving))
            log("images.accepted", f"{len(moving)} image field(s) to deploy without a commit",
                updates=[describe(c) for c in moving])
        return ImageScan(head, tags)
    if not moving:
        return unchanged
    return ImageScan(_write_back(ctx, result, head), ctx.image_tags)


def _write_back(ctx: StepContext, result: ScanResult, head: str) -> str:
    settings, log = ctx.settings, ctx.log
    chosen = result.choices
    target = WriteBack(repo=settings.source.resolved_repo(ctx.project_dir), branch=settings.source.ref,
                       push_branch=settings.images.push_branch, author=Author(*split_author(settings.images.author)))
    message = commit_message(images.updates(result.moving), settings.images.commit_message)
    try:
        written = ctx.ports.write_back(target, sorted({c.marker.path for c in result.moving}),
                                       lambda path, data: images.rewrite_file(path, data, chosen), message)
    except (SourceError, SettingsError, ManifestError) as e:
        ctx.metrics.image_scan(ok=False)
        log("images.write_failed", str(e), level="error", commit=head)
        return head
    if written.commit is None:
        return head
    ctx.metrics.image_updates("commit", len(result.moving))
    log("images.committed", message.splitlines()[0], commit=written.commit, branch=written.branch,
        attempts=written.attempts, files=list(written.files))
    if settings.images.push_branch:
        return head  # for review: deployed when it is merged into the stack's ref
    try:
        return ctx.source.resolve(settings.source.ref)
    except SourceError:
        return head
