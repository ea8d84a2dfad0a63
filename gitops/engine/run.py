"""Engine runs through the Automation API: `up`, and `preview` against a copy of the state."""
from __future__ import annotations

import dataclasses
import enum
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from ..errors import EngineError, EngineKilledError
from ..program import COMMIT_ENV, REPO_ENV
from ..state.backend import Backend
from .workspace import backend, cli_error, engine_env, project_name, select_stack


@dataclass(frozen=True)
class RunResult:
    stack: str
    commit: str
    changes: Mapping[str, int]
    outputs: Mapping[str, object]
    seconds: float
    targeted: int | None = None
    """How many objects went through the engine in a delta run; None: every one."""

    @property
    def changed(self) -> bool:
        return any(count for op, count in self.changes.items() if op != "same")

    @property
    def subjects(self) -> tuple[str, ...]:
        subjects = self.outputs.get("subjects")
        return tuple(str(s) for s in subjects) if isinstance(subjects, list | tuple) else ()


# Error diagnostics an `up` failure quotes from the engine's events: the CLI's own text ends with
# a summary, the typed error events say what failed.
QUOTED_ERRORS = 5


def up(stack: auto.Stack, commit: str, on_output: Callable[[str], None] | None = print,
       on_event: Callable[[auto.EngineEvent], None] | None = None,
       program_env: Mapping[str, str] | None = None, refresh: bool = False,
       targets: Sequence[str] = ()) -> RunResult:
    """`pulumi up` at a commit the caller has already rendered and validated. `program_env`
    reaches the program and the CLI only for this run (read-only image tags); `targets` limits the
    run to those URNs. EngineKilledError when the CLI died of a signal (it saved no state)."""
    program_env = dict(program_env or {})
    env_vars = _env_vars(stack)
    env_vars.update({COMMIT_ENV: commit, **program_env})
    errors: list[str] = []
    changes: dict[str, int] = {}

    def record(event: auto.EngineEvent) -> None:
        if event.summary_event is not None:
            changes.update(_counts(event.summary_event.resource_changes))
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity == "error" and len(errors) < QUOTED_ERRORS:
            errors.append(diagnostic.message.strip())
        if on_event:
            on_event(event)

    started = time.monotonic()
    try:
        result = stack.up(on_output=on_output, on_event=record, show_secrets=False, color="never",
                          refresh=refresh or None, suppress_progress=on_output is None,
                          target=list(targets) or None)
    except auto.errors.ConcurrentUpdateError as e:
        raise EngineError(f"stack {stack.name} is locked by another update: {cli_error(e)}") from e
    except auto.errors.CommandError as e:
        quoted = "".join(f"\n{line}" for line in errors)
        error = EngineKilledError if _killed(e) else EngineError
        raise error(f"pulumi up failed for stack {stack.name}: {cli_error(e)}{quoted}") from e
    finally:
        for key in (COMMIT_ENV, *program_env):
            env_vars.pop(key, None)
    values = {k: ("[secret]" if v.secret else v.value) for k, v in result.outputs.items()}
    return RunResult(stack=stack.name, commit=commit, changes=changes, outputs=values,
                     seconds=time.monotonic() - started)


@dataclass(frozen=True)
class RefreshResult:
    drifted: tuple[str, ...]
    """Logical names of the objects the cluster holds differently from the state."""
    changes: Mapping[str, int]
    seconds: float


def refresh(stack: auto.Stack, *, preview_only: bool = False,
            on_event: Callable[[auto.EngineEvent], None] | None = None) -> RefreshResult:
    """Read every object from the cluster. `preview_only` changes nothing; otherwise the state
    takes the cluster's values, so a following `up` sees hand edits as diffs and puts git back."""
    drifted: list[str] = []
    changes: dict[str, int] = {}

    def record(event: auto.EngineEvent) -> None:
        if event.summary_event is not None:
            # The summary event carries the counts; RefreshResult's own summary is not reliable for
            # preview-only refreshes (it reported "create" for unchanged resources).
            changes.update(_counts(event.summary_event.resource_changes))
        outputs = event.res_outputs_event
        op = str(getattr(outputs.metadata.op, "value", outputs.metadata.op)) if outputs is not None else "same"
        if outputs is not None and op not in ("same", "refresh"):
            drifted.append(outputs.metadata.urn.rsplit("::", 1)[-1])
        if on_event:
            on_event(event)

    started = time.monotonic()
    try:
        stack.refresh(show_secrets=False, color="never", preview_only=preview_only or None, on_event=record,
                      on_output=lambda _: None, suppress_progress=True)
    except auto.errors.CommandError as e:
        raise EngineError(f"refresh failed for stack {stack.name}: {cli_error(e)}") from e
    return RefreshResult(tuple(drifted), changes, time.monotonic() - started)


def outputs(stack: auto.Stack) -> dict[str, Any]:
    """The stack's outputs as plain values (secret ones masked)."""
    try:
        values = stack.outputs()
    except auto.errors.CommandError as e:
        raise EngineError(f"cannot read the outputs of stack {stack.name}: {cli_error(e)}") from e
    return {k: ("[secret]" if v.secret else v.value) for k, v in values.items()}


@dataclass(frozen=True)
class PreviewResult:
    stack: str
    commit: str
    seconds: float
    events: tuple[auto.EngineEvent, ...] = field(default=(), repr=False)


def preview(project_dir: Path, stack_name: str, commit: str, env: Mapping[str, str] | None = None,
            refresh: bool = True, on_event: Callable[[auto.EngineEvent], None] | None = None,
            repo: str | None = None, program_env: Mapping[str, str] | None = None) -> PreviewResult:
    """`pulumi preview` of a commit against a copy of the stack's state, so nothing the preview
    does (or an interruption of it) can touch the real state or take the real stack's lock.
    The refresh, on by default, reads every object from the cluster first: the plan is then
    against what the cluster holds, hand edits included, not against the last `up`.
    `repo` reads the commit from another clone of the config repo (a fork's pull request)."""
    env = dict(env or engine_env())
    events: list[auto.EngineEvent] = []

    def record(event: auto.EngineEvent) -> None:
        events.append(event)
        if on_event:
            on_event(event)

    started = time.monotonic()
    with _sandbox(project_dir, stack_name, env) as sandbox_env:
        stack = select_stack(project_dir, stack_name, sandbox_env)
        _env_vars(stack).update({COMMIT_ENV: commit, **(program_env or {})})
        if repo:
            _env_vars(stack)[REPO_ENV] = repo
        try:
            stack.preview(on_event=record, refresh=refresh, color="never", on_output=lambda _: None,
                          suppress_progress=True)
        except auto.errors.CommandError as e:
            raise EngineError(f"pulumi preview failed for stack {stack_name}: {cli_error(e)}") from e
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


def _counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    """A summary event's counts by operation name."""
    return {str(getattr(op, "value", op)): n for op, n in (changes or {}).items()}


def _killed(error: auto.errors.CommandError) -> bool:
    """The CLI ended by a signal: the Automation API gives only its text, where the exit code is
    `code: -9` (Python's returncode for a signal)."""
    return re.search(r"^ code: -\d+$", str(error), re.MULTILINE) is not None


def _env_vars(stack: auto.Stack) -> dict[str, str]:
    """The workspace's environment for the CLI, which this project always builds as a dict: what is
    set here reaches the next command only."""
    env = stack.workspace.env_vars
    if not isinstance(env, dict):
        raise TypeError("the workspace was made without a mutable env_vars dict")
    return env
