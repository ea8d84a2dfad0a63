"""The watcher: a small scheduler around `decide`. Each cycle observes (the stack file, the ref's
commit), asks `decide` what is due, runs that step, and folds the step's typed result into the
schedule and the status. One thread runs cycles; HTTP threads only read the status and wake it.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import engine
from ..engine import Recovery
from ..errors import LockError, SettingsError, SourceError, StateDamagedError
from ..images import automation as images
from ..settings import StackSettings, read_stack_settings, stack_file, stack_fingerprint
from ..state.locks import StackLock
from . import decide as d
from . import steps
from .metrics import Metrics
from .ports import Ports
from .record import Log, write_json
from .status import ErrorInfo, Pending, Phase, Running, StallInfo, WatchStatus, utc


class CycleOutcome(StrEnum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    ERROR = "error"


# Exit codes of `watch --once`.
EXIT_CODES = {CycleOutcome.UNCHANGED: 0, CycleOutcome.ERROR: 1, CycleOutcome.CHANGED: 2}
EXIT_UNCHANGED, EXIT_ERROR = 0, 1


@dataclass(frozen=True)
class WatchOptions:
    project_dir: Path
    stack: str
    interval: float = 30.0
    lock_timeout: float | None = None
    """Seconds to wait for another watcher of the stack; None: wait as long as it takes; 0: report at once."""


class Watcher:
    def __init__(self, options: WatchOptions, log: Log, env: dict[str, str] | None = None,
                 ports: Ports | None = None, clock: Callable[[], float] = time.monotonic):
        self.options = options
        self.log = log
        self.env = env if env is not None else engine.engine_env()
        self.clock = clock
        self.ports = ports or Ports.real(options.project_dir, options.stack, self.env, clock)
        self.metrics = Metrics()
        self.dir = engine.stack_dir(options.project_dir, options.stack, self.env)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = d.WatchState()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._webhook = threading.Event()
        self._registry_hook = threading.Event()
        self._image_tags: dict[str, str] = {}
        """Read-only image mode: policy -> the tag deployed in place of git's."""
        self._subjects: tuple[str, ...] | None = None
        """The stack's subjects after its last `up`, for the guard; None: ask the stack."""
        self._damaged: tuple[Path, ...] = ()
        """While stalled on damaged state: the files a person must fix."""
        self._previous = _previous_status(self.dir / "status.json")
        """The last watcher's status, read before this one writes its own: its applied settings."""
        self._status = WatchStatus(stack=options.stack, pid=os.getpid())
        self._status_lock = threading.Lock()
        self._lock = StackLock(self.dir / "watch.lock")

    # -- wiring for signals and HTTP ------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Signal-safe: only sets flags. The running `up` finishes; then the loop ends."""
        self.stopping.set()
        self._wake.set()

    def trigger(self) -> None:
        """From an HTTP thread: a cycle now, cutting any backoff short."""
        self._webhook.set()
        self._wake.set()

    def trigger_images(self) -> None:
        """From an HTTP thread (registry webhook): an image scan now, then the cycle it leads to."""
        self._registry_hook.set()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        with self._status_lock:
            return self._status.to_json()

    def _update(self, **fields: Any) -> None:
        with self._status_lock:
            self._status = replace(self._status, **fields, updated_at=utc())
            snapshot = self._status.to_json()
        write_json(self.dir / "status.json", snapshot)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, once: bool = False) -> int:
        try:
            self._lock.acquire(wait=self.options.lock_timeout != 0, timeout=self.options.lock_timeout,
                               on_wait=lambda holder: self.log("lock.wait", "another watcher holds the stack; waiting",
                                                               holder_pid=holder.get("pid")),
                               cancelled=self.stopping.is_set)  # SIGTERM while waiting ends the wait
        except LockError as e:
            if self.stopping.is_set():
                self.log("watch.stop", "stopped while waiting for the stack lock")
                return EXIT_UNCHANGED
            self.log("lock.busy", str(e), level="error")
            return EXIT_ERROR
        try:
            self.log("watch.start", f"watching stack {self.options.stack}", interval=self.options.interval,
                     dir=str(self.dir))
            while not self.stopping.is_set():
                outcome, wait = self.cycle()
                if once:
                    return EXIT_CODES[outcome]
                if self.state.stall is None:
                    self._update(state=Phase.IDLE, next_cycle_at=utc(time.time() + wait))
                if self._wake.wait(wait):
                    self._wake.clear()
            self.log("watch.stop", "stopped")
            return EXIT_UNCHANGED
        finally:
            self._update(state=Phase.STOPPED)
            self._lock.release()

    def cycle(self) -> tuple[CycleOutcome, float]:
        """One observation and at most one action. Returns (outcome, seconds until the next cycle)."""
        if self._webhook.is_set():
            self._webhook.clear()
            self.state = d.webhook(self.state)
        if self._registry_hook.is_set():
            self._registry_hook.clear()
            self.state = d.registry_hook(self.state)
        obs, settings = self._observe(self.clock())
        policy = self._policy(settings)
        decision = d.decide(self.state, obs, policy)
        if decision.action is d.Action.STALLED:
            return self._stalled_cycle(obs, decision)
        if decision.action is d.Action.START:
            failure = self._start()
            if failure is not None:
                return self._failed(obs, policy, *failure)
            # Again: the first use of a stack may have added its encryption salt to the stack file.
            obs, settings = self._observe(obs.now)
            decision = d.decide(self.state, obs, policy)
        if decision.scan and settings is not None and obs.head is not None:
            obs = self._scan(settings, obs, policy)
            decision = d.decide(self.state, obs, policy)
        outstanding = obs.head != self.state.applied_commit or obs.fingerprint != self.state.applied_fingerprint
        self._update(pending=Pending(obs.head, decision.reason) if outstanding and obs.head else None,
                     last_cycle_at=utc(), head=obs.head)
        if decision.action is d.Action.WAIT:
            if decision.failure is not None:
                return self._failed(obs, policy, decision.failure, decision.reason)
            self.metrics.cycle("backoff")
            return CycleOutcome.UNCHANGED, decision.wait
        if decision.action is d.Action.NOTHING:
            self.metrics.cycle("nothing")
            return CycleOutcome.UNCHANGED, decision.wait
        assert settings is not None and obs.head is not None  # decide acts only on a readable commit
        return self._act(decision, obs, settings, policy)

    # -- observing ------------------------------------------------------------------------------

    def _observe(self, now: float) -> tuple[d.Observation, StackSettings | None]:
        path = stack_file(self.options.project_dir, self.options.stack)
        try:
            stack_bytes = path.read_bytes()
        except OSError as e:
            return d.Observation(now=now, fingerprint="", settings_error=f"cannot read {path}: {e}"), None
        fingerprint = stack_fingerprint(stack_bytes)
        damage = _damage_fingerprint(self._damaged)
        try:
            settings = read_stack_settings(self.options.project_dir, self.options.stack)
        except SettingsError as e:
            return d.Observation(now=now, fingerprint=fingerprint, settings_error=str(e), damage=damage), None
        if settings.images.mode == "readonly" and self._image_tags:
            # Tags deployed in place of git's are part of what is applied: a new choice is a change.
            fingerprint = hashlib.sha256((fingerprint + images.encode_choices(self._image_tags)).encode()).hexdigest()
        try:
            source = self.ports.source_for(settings.source.resolved_repo(self.options.project_dir))
            head = source.resolve(settings.source.ref)
            self.metrics.ref_check(ok=True)
        except SourceError as e:
            self.metrics.ref_check(ok=False)
            return d.Observation(now=now, fingerprint=fingerprint, source_error=str(e), damage=damage), settings
        return d.Observation(now=now, fingerprint=fingerprint, head=head, damage=damage), settings

    def _policy(self, settings: StackSettings | None) -> d.Policy:
        if settings is None:
            return d.Policy(interval=self.options.interval)
        return d.Policy(interval=self.options.interval, drift_interval=settings.watch.drift_interval,
                        image_interval=settings.images.interval, images=settings.images.mode != "off")

    # -- acting ---------------------------------------------------------------------------------

    def _start(self) -> tuple[d.Failure, str] | None:
        """The first cycle: repair what a killed run left (a deep look: the watcher may have been the
        one killed), then start from what the stack last applied, so a restarted watcher does not
        run `up` for a commit that is already there."""
        self._update(state=Phase.RECOVERING)
        try:
            with self._turn(deep=True):
                applied = self.ports.engine.applied()
        except Exception as e:
            return self._failure_of(e), str(e)
        self._subjects = applied.subjects
        previous = self._previous
        # The settings fingerprint comes from the previous status file, if it speaks of the same
        # commit; otherwise the first cycle runs `up` to be sure the settings in force are applied.
        fingerprint = previous.get("applied_fingerprint") if previous.get("applied_commit") == applied.commit else None
        self.state = d.started(self.state, applied.commit, fingerprint)
        self._update(applied_commit=applied.commit, applied_fingerprint=fingerprint)
        return None

    def _scan(self, settings: StackSettings, obs: d.Observation, policy: d.Policy) -> d.Observation:
        assert obs.head is not None
        where = f"{stack_file(self.options.project_dir, self.options.stack).name}: gitops:imagePolicies"
        scan = steps.scan_images(self._context(settings), obs.head, where)
        self.state = d.scanned(self.state, obs.now, policy)
        if scan.image_tags != self._image_tags:
            self._image_tags = dict(scan.image_tags)
            return self._observe(obs.now)[0]  # the tags are part of the fingerprint
        return replace(obs, head=scan.head)

    def _act(self, decision: d.Decision, obs: d.Observation, settings: StackSettings,
             policy: d.Policy) -> tuple[CycleOutcome, float]:
        assert obs.head is not None
        self.log(f"{decision.action.value}.start", decision.reason, commit=obs.head)
        ctx = self._context(settings)
        try:
            with self._turn():
                if decision.action is d.Action.DEPLOY:
                    result = steps.deploy(ctx, obs.head, decision.reason, self._subjects)
                else:
                    result = self._drift(ctx, obs.head)
                if result.failure is d.Failure.ENGINE:
                    # A crashed or killed engine run may have left leftovers: repair them now, not at the retry.
                    self._log_recovery(self.ports.engine.deep_recover())
        except Exception as e:
            result = steps.StepResult(failure=self._failure_of(e), message=str(e))
        finally:
            self._update(running=None)
        if result.subjects is not None or result.failure is not None:
            self._subjects = result.subjects
        if result.summary is not None:
            key = "last_drift" if result.summary.get("action") == "drift" else "last_result"
            self._update(**{key: {**result.summary, "at": utc()}})
        if result.failure is not None:
            return self._failed(obs, policy, result.failure, result.message,
                                during_drift=decision.action is d.Action.DRIFT)
        self.state = d.succeeded(self.state, decision.action, obs)
        self._damaged = ()
        self.metrics.cycle("changed" if result.changed else "unchanged")
        if decision.action is d.Action.DEPLOY and result.summary is not None:
            changes = result.summary.get("changes") or {}
            self.log("up.done", ", ".join(f"{op} {n}" for op, n in sorted(changes.items())) or "no changes",
                     commit=obs.head, seconds=round(result.summary.get("seconds", 0), 1), changes=changes,
                     record=result.summary.get("record"))
        self._update(applied_commit=obs.head, applied_fingerprint=obs.fingerprint, pending=None, failures=0,
                     last_success_at=utc(), last_error=None, stalled=None,
                     last_drift_check_at=utc() if settings.watch.drift_interval else None)
        outcome = CycleOutcome.CHANGED if result.changed else CycleOutcome.UNCHANGED
        return outcome, d.next_wait(self.state, self.clock(), policy)

    def _drift(self, ctx: steps.StepContext, commit: str) -> steps.StepResult:
        checked = steps.check_drift(ctx, commit)
        if checked.failure is not None or not checked.drifted:
            if checked.failure is None:
                self.log("drift.none", "cluster matches the stack", commit=commit)
            return checked
        self.log("drift.found", f"{len(checked.drifted)} object(s) changed outside git", level="warning",
                 objects=list(checked.drifted), mode=ctx.settings.watch.drift_mode)
        if ctx.settings.watch.drift_mode == "report":
            return checked
        if checked.summary is not None:
            self._update(last_drift={**checked.summary, "at": utc()})
        return steps.deploy(ctx, commit, f"drift correction of {len(checked.drifted)} object(s)", self._subjects)

    def _context(self, settings: StackSettings) -> steps.StepContext:
        def running(action: str, commit: str) -> None:
            self._update(state=Phase.UP if action == "up" else Phase.DRIFT, running=Running(action, commit, utc()))

        return steps.StepContext(self.ports, settings, self.options.project_dir, self.dir / "runs", self.log,
                                 self.metrics, running, self._image_tags)

    @contextmanager
    def _turn(self, deep: bool = False) -> Iterator[Recovery]:
        """The engine's turn for this watcher, logging what recovery repaired; a stop while waiting
        for another run (a `gitops up` by hand) ends the wait with LockError."""
        with self.ports.engine.turn(
                deep=deep, cancelled=self.stopping.is_set,
                on_wait=lambda holder: self.log("run.wait", "another run of the stack is in progress; waiting",
                                                holder_pid=holder.get("pid"))) as recovery:
            self._log_recovery(recovery)
            yield recovery

    def _log_recovery(self, recovery: Recovery) -> None:
        if recovery.changed:
            self.log("recover.repaired", "; ".join(recovery.lines()), level="warning",
                     files=[str(r.path) for r in recovery.repaired], pending=len(recovery.pending))
        for held in recovery.busy:
            self.log("recover.busy", "the stack is locked by a live Pulumi run", level="warning",
                     pid=held.pid, hostname=held.hostname)

    # -- failures -------------------------------------------------------------------------------

    def _failure_of(self, error: Exception) -> d.Failure:
        if isinstance(error, StateDamagedError):
            self._damaged = tuple(p for p in (getattr(x, "path", None) for x in error.damage) if isinstance(p, Path))
        return steps.failure_of(error)

    def _failed(self, obs: d.Observation, policy: d.Policy, failure: d.Failure, message: str,
                during_drift: bool = False) -> tuple[CycleOutcome, float]:
        self.metrics.error(failure.value)
        self.metrics.cycle("error")
        now = utc()
        if not failure.transient:
            return self._stall(obs, failure, message)
        self.state = d.failed(self.state, obs, policy, during_drift=during_drift)
        wait = max(0.0, (self.state.retry_at or obs.now) - obs.now)
        self.log("cycle.failed", message, level="error", kind=failure.value, commit=obs.head,
                 failures=self.state.failures, retry_in=round(wait, 1))
        self._update(failures=self.state.failures, last_error=ErrorInfo(failure.value, message, now),
                     last_result={"result": "error", "kind": failure.value, "commit": obs.head, "at": now},
                     pending=Pending(obs.head, f"retry after {failure.value} error") if obs.head else None)
        return CycleOutcome.ERROR, wait

    def _stall(self, obs: d.Observation, failure: d.Failure, message: str) -> tuple[CycleOutcome, float]:
        """A failure retrying cannot fix: say so once, and try nothing until its input changes."""
        if failure is d.Failure.STATE:
            obs = replace(obs, damage=_damage_fingerprint(self._damaged))
        self.state = d.stalled(self.state, obs, failure, message)
        self.log("stalled", message, level="error", kind=failure.value, commit=obs.head)
        now = utc()
        self._update(state=Phase.STALLED, failures=self.state.failures,
                     stalled=StallInfo(failure.value, message, now, tuple(map(str, self._damaged))),
                     last_error=ErrorInfo(failure.value, message, now),
                     last_result={"result": "error", "kind": failure.value, "commit": obs.head, "at": now})
        return CycleOutcome.ERROR, self.options.interval

    def _stalled_cycle(self, obs: d.Observation, decision: d.Decision) -> tuple[CycleOutcome, float]:
        if self.state.stall is None and decision.failure is not None:  # found stuck by this observation
            return self._stall(obs, decision.failure, decision.reason)
        self.metrics.cycle("stalled")
        with self._status_lock:
            info = self._status.stalled
        self._update(last_cycle_at=utc(), state=Phase.STALLED,
                     stalled=replace(info, checks=info.checks + 1) if info else None)
        return CycleOutcome.ERROR, decision.wait


def _previous_status(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _damage_fingerprint(paths: tuple[Path, ...]) -> str:
    """What a person's fix would change: the damaged files' size and time (or their absence)."""
    parts = []
    for path in paths:
        try:
            st = path.stat()
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}:-")
    return "|".join(parts)


def install_signal_handlers(watcher: Watcher) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, watcher.stop)
