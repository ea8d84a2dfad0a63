"""Engine runs through the Automation API: `up`, and `preview` against a copy of the state."""
from __future__ import annotations

import dataclasses
import enum
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from ..errors import EngineError
from ..program import COMMIT_ENV, REPO_ENV
from ..state.backend import Backend
from .workspace import backend, engine_env, last_lines, project_name, select_stack


@dataclass(frozen=True)
class RunResult:
    stack: str
    commit: str
    changes: Mapping[str, int]
    outputs: Mapping[str, object]
    seconds: float
    events: tuple = field(default=(), repr=False)

    @property
    def changed(self) -> bool:
        return any(count for op, count in self.changes.items() if op != "same")


def up(stack: auto.Stack, commit: str, on_output: Callable[[str], None] | None = print,
       on_event: Callable[[auto.EngineEvent], None] | None = None,
       program_env: Mapping[str, str] | None = None, refresh: bool = False) -> RunResult:
    """`pulumi up` at a commit the caller has already rendered and validated. `program_env`
    reaches the program only for this run (read-only image tags)."""
    program_env = dict(program_env or {})
    stack.workspace.env_vars.update({COMMIT_ENV: commit, **program_env})
    events, record = _recorder(on_event)
    started = time.monotonic()
    try:
        result = stack.up(on_output=on_output, on_event=record, show_secrets=False, color="never", refresh=refresh or None,
                          suppress_progress=on_output is None)
    except auto.errors.ConcurrentUpdateError as e:
        raise EngineError(f"stack {stack.name} is locked by another update: {last_lines(e)}") from e
    except auto.errors.CommandError as e:
        raise EngineError(f"pulumi up failed for stack {stack.name}: {last_lines(e)}") from e
    finally:
        for key in (COMMIT_ENV, *program_env):
            stack.workspace.env_vars.pop(key, None)
    changes = dict(result.summary.resource_changes or {})
    outputs = {k: ("[secret]" if v.secret else v.value) for k, v in result.outputs.items()}
    return RunResult(stack=stack.name, commit=commit, changes=changes, outputs=outputs,
                     seconds=time.monotonic() - started, events=tuple(events))


def outputs(stack: auto.Stack) -> dict[str, Any]:
    """The stack's outputs as plain values (secret ones masked)."""
    try:
        values = stack.outputs()
    except auto.errors.CommandError as e:
        raise EngineError(f"cannot read the outputs of stack {stack.name}: {last_lines(e)}") from e
    return {k: ("[secret]" if v.secret else v.value) for k, v in values.items()}


@dataclass(frozen=True)
class PreviewResult:
    stack: str
    commit: str
    seconds: float
    events: tuple = field(default=(), repr=False)


def preview(project_dir: Path, stack_name: str, commit: str, env: Mapping[str, str] | None = None,
            refresh: bool = True, on_event: Callable[[auto.EngineEvent], None] | None = None,
            repo: str | None = None) -> PreviewResult:
    """`pulumi preview` of a commit against a copy of the stack's state, so nothing the preview
    does (or an interruption of it) can touch the real state or take the real stack's lock.
    The refresh, on by default, reads every object from the cluster first: the plan is then
    against what the cluster holds, hand edits included, not against the last `up`.
    `repo` reads the commit from another clone of the config repo (a fork's pull request)."""
    env = dict(env or engine_env())
    events, record = _recorder(on_event)
    started = time.monotonic()
    with _sandbox(project_dir, stack_name, env) as sandbox_env:
        stack = select_stack(project_dir, stack_name, sandbox_env)
        stack.workspace.env_vars[COMMIT_ENV] = commit
        if repo:
            stack.workspace.env_vars[REPO_ENV] = repo
        try:
            stack.preview(on_event=record, refresh=refresh, color="never", on_output=lambda _: None,
                          suppress_progress=True)
        except auto.errors.CommandError as e:
            raise EngineError(f"pulumi preview failed for stack {stack_name}: {last_lines(e)}") from e
    return PreviewResult(stack=stack_name, commit=commit, seconds=time.monotonic() - started, events=tuple(events))


@contextmanager
def _sandbox(project_dir: Path, stack_name: str, env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """A throw-away file backend holding a copy of the stack's latest checkpoint."""
    files = backend(env).stack_files(project_name(project_dir), stack_name, base=project_dir)
    with tempfile.TemporaryDirectory(prefix="gitops-preview-") as temp:
        root = Path(temp)
        (root / ".pulumi").mkdir()
        (root / ".pulumi" / "meta.yaml").write_text("version: 1\n")
        sandbox_env = {**env, "PULUMI_BACKEND_URL": Backend(f"file://{root}").with_file_defaults().url}
        if files is not None:
            checkpoint = files.checkpoint()
            if checkpoint is not None:
                target = root / ".pulumi" / "stacks" / files.project
                target.mkdir(parents=True)
                shutil.copyfile(checkpoint, target / checkpoint.name)
        else:
            # Another backend: its export is a read; the import goes to the sandbox only.
            deployment = select_stack(project_dir, stack_name, env).export_stack()
            select_stack(project_dir, stack_name, sandbox_env).import_stack(deployment)
        yield sandbox_env


def event_json(value: Any) -> Any:
    """Pulumi's typed engine events as plain JSON (they are plain classes, not dataclasses)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: event_json(v) for k, v in vars(value).items() if v is not None}
    if isinstance(value, dict):
        return {str(k): event_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [event_json(v) for v in value]
    if hasattr(value, "__dict__"):
        return {k: event_json(v) for k, v in vars(value).items() if v is not None and not k.startswith("_")}
    return value


def _recorder(on_event: Callable[[auto.EngineEvent], None] | None):
    """A list that keeps every event of a run, and the callback that fills it (and forwards)."""
    events: list[auto.EngineEvent] = []

    def record(event: auto.EngineEvent) -> None:
        events.append(event)
        if on_event:
            on_event(event)

    return events, record
