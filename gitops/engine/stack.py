"""One stack, as `gitops up` and the watcher drive it: a turn under the run lock (repairing a
killed run's leftovers first), what the stack last applied, `up`, and refresh.

The watcher sees this through its `Engine` protocol (`gitops.watch.ports`), so its scheduling is
unit-tested with a fake one."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from ..errors import EngineError, EngineKilledError
from ..intent import LastRun, delta_targets, read_intent, read_last_run
from ..model import DesiredState, Manifest
from ..program import INTENT_ENV, TARGETS_ENV
from ..resources import logical_name, resource_specs, settings_digest, spec_digests
from ..settings import StackSettings
from .recover import Recovery, recover
from .run import RefreshResult, RunResult, outputs, refresh, up
from .workspace import backend, intent_path, project_name, run_lock, select_stack, stack_dir

# The state is saved once, when a run ends, instead of after every step: saving the whole state per
# step made a cold `up` of 1,000 objects six times slower, and grew with the square of the stack.
# What a kill then leaves unsaved is settled by recovery from the run's intent (`gitops.intent`).
# Only this project's runs do so: a `pulumi up` by hand keeps Pulumi's per-step saves.
SKIP_CHECKPOINTS = {"PULUMI_SKIP_CHECKPOINTS": "true"}


@dataclass(frozen=True)
class Applied:
    """What the stack's last successful `up` applied, from its outputs."""

    commit: str | None
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class RunPlan:
    """What one `up` sends through the engine (`StackEngine.plan`)."""

    started: float
    targets: tuple[str, ...] | None = None
    """URNs of the objects that changed and of those deleted; None: every object (a full run)."""
    changed: frozenset[str] = frozenset()
    """Logical names of the desired objects among the targets: all the API server must dry-run."""
    digests: Mapping[str, str] | None = None
    """Every desired object's digest, which the state holds once a delta run succeeds."""
    full_at: float = 0.0
    idle_target: str | None = None
    """The URN a run of no changed object targets (`StackEngine.plan`)."""

    def to_verify(self, manifests: Sequence[Manifest]) -> list[Manifest]:
        """The objects of the commit the API server must accept: those this run applies. The
        others are untouched, and were accepted when they were last applied."""
        if self.targets is None:
            return list(manifests)
        return [m for m in manifests if logical_name(m.id) in self.changed]


class StackEngine:
    def __init__(self, project_dir: Path, stack: str, env: Mapping[str, str]):
        self.project_dir, self.stack, self.env = project_dir, stack, {**env, **SKIP_CHECKPOINTS}
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
        files = backend(self.env).stack_files(project_name(self.project_dir), self.stack, base=self.project_dir)
        values = files.outputs() if files else None
        if values is None:
            values = outputs(self._stack())
        subjects = values.get("subjects")
        commit = values.get("commit")
        return Applied(commit if isinstance(commit, str) else None,
                       tuple(str(s) for s in subjects) if isinstance(subjects, list) else ())

    def plan(self, desired: DesiredState, settings: StackSettings, *, refresh: bool = False) -> RunPlan:
        """Which objects of `desired` the next `up` sends through the engine: only those that
        changed since the last run, when that is safe (`intent.delta_targets`); every one
        otherwise, and with `refresh`."""
        started, last = time.time(), self._last_run()
        project = project_name(self.project_dir)
        specs = resource_specs(desired, skip_await=settings.program.skip_await)
        digests = spec_digests(specs, self.stack, project)
        targets = None if refresh else delta_targets(last, digests, settings_digest(settings), self._stamp(),
                                                     started, settings.watch.full_run_interval)
        if targets is None:
            return RunPlan(started=started)
        names = {spec.name for spec, urn in zip(specs, digests, strict=True) if urn in set(targets)}
        # What a commit that changes no object targets, so that the stack's outputs still take it:
        # one object nothing depends on (a target's dependents are registered too).
        needed = {name for spec in specs for name in spec.depends_on}
        idle = next((urn for spec, urn in zip(specs, digests, strict=True) if spec.name not in needed), None)
        return RunPlan(started=started, targets=targets, changed=frozenset(names), digests=digests,
                       full_at=last.full_at if last else started, idle_target=idle)

    def up(self, commit: str, *, program_env: Mapping[str, str] | None = None,
           on_event: Callable[[auto.EngineEvent], None] | None = None,
           on_output: Callable[[str], None] | None = None, refresh: bool = False,
           plan: RunPlan | None = None) -> RunResult:
        """`up` of a commit: of the objects `plan` targets, or of every one."""
        plan = plan or RunPlan(started=time.time())
        intent, last_path = intent_path(self.project_dir, self.stack, self.env), self._last_run_path()
        if intent.exists():
            # Recovery settles it first; it is still here when a live run holds the stack, and
            # this run's own intent must not take its place.
            raise EngineError(f"stack {self.stack}: the record of an interrupted run ({intent}) is not "
                              f"settled yet; the next run settles it once the stack is free")
        intent.parent.mkdir(parents=True, exist_ok=True)
        targets = plan.targets
        if targets == ():
            # No object changed. One unchanged object is targeted (its diff is empty) so that the
            # stack's outputs still take the new commit: no target at all means every object, and
            # the provider alone would take its dependents as deletes.
            targets = (plan.idle_target,) if plan.idle_target else None
        run_env = {**(program_env or {}), INTENT_ENV: str(intent)}
        targets_file = intent.with_name("targets")
        if targets is not None:
            targets_file.write_text("".join(f"{u}\n" for u in targets))
            run_env[TARGETS_ENV] = str(targets_file)
        last_path.unlink(missing_ok=True)
        try:
            result = up(self._stack(), commit, on_output=on_output, on_event=on_event, refresh=refresh,
                        program_env=run_env, targets=targets or ())
        except EngineKilledError:
            raise  # the intent stays, for the next turn's recovery
        except Exception:
            intent.unlink(missing_ok=True)  # the engine ended, and saved what it did
            raise
        finally:
            targets_file.unlink(missing_ok=True)
        ran = read_intent(intent)
        stamp = self._stamp()
        if ran is not None and stamp is not None:
            if targets is not None and plan.digests is not None:
                # A delta run registered only its targets; the state holds the whole commit.
                LastRun(dataclasses.replace(ran, digests=plan.digests), stamp, plan.full_at).write(last_path)
            else:
                LastRun(ran, stamp, plan.started).write(last_path)
        intent.unlink(missing_ok=True)
        targeted = len(plan.targets) if plan.targets is not None else None
        return dataclasses.replace(result, targeted=targeted)

    def refresh(self, *, preview_only: bool,
                on_event: Callable[[auto.EngineEvent], None] | None = None) -> RefreshResult:
        result = refresh(self._stack(), preview_only=preview_only, on_event=on_event)
        if not preview_only:
            last = self._last_run()
            stamp = self._stamp()
            if last is not None and stamp is not None and not result.drifted:
                # The state still holds what the last run applied; the refresh only read it again.
                dataclasses.replace(last, stamp=stamp).write(self._last_run_path())
            else:
                self._last_run_path().unlink(missing_ok=True)  # the next `up` puts drift back: all of it
        return result

    def _last_run_path(self) -> Path:
        return stack_dir(self.project_dir, self.stack, self.env) / "last-run.json"

    def _last_run(self) -> LastRun | None:
        try:
            return read_last_run(self._last_run_path())
        except EngineError:
            return None  # a full run writes it afresh

    def _stamp(self) -> tuple[int, int] | None:
        """The file backend's checkpoint, as `LastRun.stamp` records it; None for other backends,
        whose every run sends every object."""
        files = backend(self.env).stack_files(project_name(self.project_dir), self.stack, base=self.project_dir)
        path = files.checkpoint() if files else None
        if path is None:
            return None
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns
