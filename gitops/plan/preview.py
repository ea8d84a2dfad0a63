"""A ref of the config repo -> a Plan: render and validate it, then preview it with the engine
against a copy of the stack's state. Nothing from the ref runs: it is read as YAML only.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pulumi import automation as auto

from .. import engine
from ..errors import ClusterError, EngineError, ManifestError, SourceError
from ..guard import check_not_empty
from ..kube.dryrun import RejectedError, require_acceptance
from ..kube.scopes import read_against_cluster
from ..program import VERIFIED_ENV
from ..settings import StackSettings
from ..source.git import GitSource
from .changes import changes_from_events
from .model import Plan


def preview_plan(project_dir: Path, stack: str, settings: StackSettings, ref: str | None = None,
                 repo: str | None = None, refresh: bool = True, env: dict[str, str] | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> Plan:
    """The plan of `ref` (default: the stack's own ref). Failures become the plan's problems or
    error, so a CI job always has something to post."""
    ref = ref or settings.source.ref
    repo_path = repo or settings.source.resolved_repo(project_dir)
    try:
        source = GitSource(repo_path)
        commit = source.resolve(ref)
    except SourceError as e:
        return Plan(stack=stack, ref=ref, commit=None, error=str(e))
    try:
        state = read_against_cluster(source, commit, settings)
        check_not_empty(state, settings.safety.allow_empty)
    except ManifestError as e:
        return Plan(stack=stack, ref=ref, commit=commit, problems=e.problems)
    except (SourceError, ClusterError) as e:
        return Plan(stack=stack, ref=ref, commit=commit, error=str(e))
    program_env = {}
    if settings.safety.server_dry_run:
        # The API server's verdict is the plan's error: a plan the server would refuse is no plan.
        try:
            verdict = require_acceptance(settings.cluster, state.manifests, commit)
        except (RejectedError, ClusterError) as e:
            return Plan(stack=stack, ref=ref, commit=commit, error=str(e))
        progress(f"server dry run: {verdict.summary}")
        program_env[VERIFIED_ENV] = commit
    progress(f"desired state: {len(state.manifests)} objects at {commit[:12]}; previewing against stack {stack}")
    seen = [0]
    total = len(state.manifests)

    def on_event(event: auto.EngineEvent) -> None:
        # A person at a terminal sees the engine move; a 1,000-object preview takes half a minute.
        step = event.resource_pre_event
        if step is not None and str(getattr(step.metadata.op, "value", step.metadata.op)) != "refresh":
            seen[0] += 1
            if seen[0] % 250 == 0:
                progress(f"  {min(seen[0], total)} of {total} objects previewed")

    try:
        result = engine.preview(project_dir, stack, commit, env=env, refresh=refresh,
                                repo=repo_path if repo else None, on_event=on_event, program_env=program_env)
    except EngineError as e:
        return Plan(stack=stack, ref=ref, commit=commit, error=str(e))
    changes, unchanged = changes_from_events(engine.event_json(e) for e in result.events)
    return Plan(stack=stack, ref=ref, commit=commit, changes=changes, unchanged=unchanged)
