"""One stack, as `gitops up` and the watcher drive it: a turn under the run lock (repairing a
killed run's leftovers first), what the stack last applied, `up`, and refresh.

The watcher sees this through its `Engine` protocol (`gitops.watch.ports`), so its scheduling is
unit-tested with a fake one."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from .recover import Recovery, recover
from .run import RefreshResult, RunResult, outputs, refresh, up
from .workspace import backend, project_name, run_lock, select_stack


@dataclass(frozen=True)
class Applied:
    """What the stack's last successful `up` applied, from its outputs."""

    commit: str | None
    subjects: tuple[str, ...]


class StackEngine:
    def __init__(self, project_dir: Path, stack: str, env: Mapping[str, str]):
        self.project_dir, self.stack, self.env = project_dir, stack, dict(env)
        self._selected: auto.Stack | None = None

    def _stack(self) -> auto.Stack:
        # Selected once, when first needed: after recovery has repaired what selecting needs.
        if self._selected is None:
            self._selected = select_stack(self.project_dir, self.stack, self.env)
        return self._selected

    @contextmanager
    def turn(self, *, deep: bool = False, cancelled: Callable[[], bool] = lambda: False,
             on_wait: Callable[[dict[str, Any]], None] | None = None) -> Iterator[Recovery]:
        """Hold the stack's run lock (waiting for another run of it), and repair what a killed run
        left before the caller runs the engine. StateDamagedError when that is not safe."""
        lock = run_lock(self.project_dir, self.stack, self.env)
        lock.acquire(wait=True, cancelled=cancelled, on_wait=on_wait)
        try:
            yield recover(self.project_dir, self.stack, self.env, deep=deep, stack=self._stack)
        finally:
            lock.release()

    def deep_recover(self) -> Recovery:
        """After a failed run, holding the turn already: look into the checkpoint too."""
        return recover(self.project_dir, self.stack, self.env, deep=True, stack=self._stack)

    def applied(self) -> Applied:
        values = self._outputs_from_checkpoint()
        if values is None:
            values = outputs(self._stack())
        subjects = values.get("subjects")
        commit = values.get("commit")
        return Applied(commit if isinstance(commit, str) else None,
                       tuple(str(s) for s in subjects) if isinstance(subjects, list) else ())

    def _outputs_from_checkpoint(self) -> dict[str, Any] | None:
        """The stack's outputs read straight from a file backend's checkpoint: the same values as
        `pulumi stack output`, without starting the CLI (a second per run). None: ask the CLI."""
        files = backend(self.env).stack_files(project_name(self.project_dir), self.stack, base=self.project_dir)
        path = files.checkpoint() if files else None
        if files is None:
            return None
        if path is None:
            return {}  # a stack not created yet has applied nothing
        if not path.name.endswith(".json"):
            return None
        try:
            latest = (json.loads(path.read_bytes()).get("checkpoint") or {}).get("latest") or {}
        except (OSError, ValueError):
            return None  # the CLI will say what is wrong with it
        for resource in latest.get("resources") or []:
            if resource.get("type") == "pulumi:pulumi:Stack":
                values = resource.get("outputs") or {}
                return values if isinstance(values, dict) else None
        return {}

    def up(self, commit: str, *, program_env: Mapping[str, str] | None = None,
           on_event: Callable[[auto.EngineEvent], None] | None = None,
           on_output: Callable[[str], None] | None = None, refresh: bool = False) -> RunResult:
        return up(self._stack(), commit, on_output=on_output, on_event=on_event, program_env=program_env,
                  refresh=refresh)

    def refresh(self, *, preview_only: bool,
                on_event: Callable[[auto.EngineEvent], None] | None = None) -> RefreshResult:
        return refresh(self._stack(), preview_only=preview_only, on_event=on_event)
