"""The Watcher: the I/O around `decide` — resolve the ref, render, guard, `up`, drift checks,
status file, run records, logs. One thread runs cycles; HTTP threads only read and wake it.
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
from pathlib import Path
from typing import Any

from .. import engine
from ..desired import read_desired_state
from ..errors import EngineError, GuardError, LockError, ManifestError, SettingsError, SourceError, StateDamagedError
from ..images import automation as images
from ..images.message import commit_message
from ..images.scan import ImageScanner, describe
from ..images.writeback import Author, WriteBack, write_back
from ..program import IMAGE_TAGS_ENV
from ..settings import StackSettings, read_stack_settings, split_author, stack_file
from ..source.git import GitSource
from . import decide as d
from .guard import check_deletions
from ..state.locks import StackLock
from .metrics import Metrics
from .record import Log, utc, write_json

# Exit codes of `watch --once`.
EXIT_UNCHANGED, EXIT_ERROR, EXIT_CHANGED = 0, 1, 2


@dataclass(frozen=True)
class WatchOptions:
    project_dir: Path
    stack: str
    interval: float = 30.0
    lock_timeout: float | None = None
    """Seconds to wait for another watcher of the stack; None: wait as long as it takes; 0: report at once."""


class Watcher:
    def __init__(self, options: WatchOptions, log: Log, env: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.options = options
        self.log = log
        self.env = env if env is not None else engine.engine_env()
        self.clock = clock
        self.metrics = Metrics()
        self.dir = engine.stack_dir(options.project_dir, options.stack, self.env)
        self.records = self.dir / "runs"
        self.state = d.WatchState()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._webhook = threading.Event()
        self._registry_hook = threading.Event()
        self._scanner: ImageScanner | None = None
        self._next_scan: float | None = 0.0
        """When the next image scan is due (monotonic); None: scanning is off."""
        self._image_tags: dict[str, str] = {}
        """Read-only image mode: policy -> the tag deployed in place of git's."""
        self._status: dict[str, Any] = {"stack": options.stack, "pid": os.getpid(), "started_at": utc(),
                                        "state": "starting", "applied_commit": None, "last_result": None,
                                        "pending": None, "failures": 0}
        self._status_lock = threading.Lock()
        self._source: tuple[str, GitSource] | None = None
        self._stack = None
        self._lock = StackLock(self.dir / "watch.lock")
        self._previous: dict[str, Any] = {}
        self._subjects: tuple[str, ...] | None = None
        """The stack's subjects after its last `up`, for the guard; None: ask the stack."""
        self._started = False
        """Whether the first cycle has repaired a killed run's leftovers and read what the stack applied."""
        self._stall: tuple[str, str] | None = None
        """(reason, fingerprint of the damaged files) while the state is damaged beyond automatic
        repair: no run can succeed until a person changes those files, so none is tried."""
        self._stall_paths: list[Path | None] = []

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
            return json.loads(json.dumps(self._status, default=str))

    def _set_status(self, **fields: Any) -> None:
        with self._status_lock:
            self._status.update(fields, updated_at=utc())
            snapshot = dict(self._status)
        write_json(self.dir / "status.json", snapshot)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, once: bool = False) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
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
            # Read before the first status write replaces it: the last run's applied settings.
            try:
                self._previous = json.loads((self.dir / "status.json").read_text())
            except (OSError, ValueError):
                self._previous = {}
            self.log("watch.start", f"watching stack {self.options.stack}", interval=self.options.interval,
                     dir=str(self.dir))
            result = EXIT_UNCHANGED
            while not self.stopping.is_set():
                outcome, wait = self.cycle()
                if once:
                    return {"changed": EXIT_CHANGED, "error": EXIT_ERROR}.get(outcome, EXIT_UNCHANGED)
                if self._next_scan is not None:  # image scans have their own interval
                    wait = min(wait, max(0.0, self._next_scan - self.clock()))
                if self._stall is None:
                    self._set_status(state="idle", stalled=None, next_cycle_at=utc(time.time() + wait))
                if self._wake.wait(wait):
                    self._wake.clear()
            self.log("watch.stop", "stopped")
            return result
        finally:
            self._set_status(state="stopped")
            self._lock.release()

    def cycle(self) -> tuple[str, float]:
        """One observation and at most one action. Returns (outcome, seconds until the next cycle)."""
        now = self.clock()
        if self._stall is not None:
            if _damage_fingerprint(self._stall_paths) == self._stall[1]:
                self.metrics.count("cycles", "stalled")
                with self._status_lock:
                    stalled = dict(self._status.get("stalled") or {})
                self._set_status(last_cycle_at=utc(), stalled={**stalled, "checks": stalled.get("checks", 0) + 1})
                return "error", self.options.interval
            self.log("stall.cleared", "the damaged state files changed; trying again")
            self._stall = None
        if not self._started:
            if self.state.retry_at is not None and now < self.state.retry_at and not self._webhook.is_set():
                return "error", self.state.retry_at - now
            try:
                self._start()
            except StateDamagedError as e:
                return self._stalled(e)
            except Exception as e:  # noqa: BLE001 - the engine may be unreachable now and fine later
                return self._failure(d.Observation(now=now, fingerprint=""), "engine", e)
        if self._webhook.is_set():
            self._webhook.clear()
            self.state = d.webhook(self.state)
        try:
            settings = read_stack_settings(self.options.project_dir, self.options.stack)
            stack_bytes = stack_file(self.options.project_dir, self.options.stack).read_bytes()
            fingerprint = hashlib.sha256(stack_bytes).hexdigest()
        except (SettingsError, OSError) as e:
            return self._failure(d.Observation(now=now, fingerprint="", source_error=str(e)), "settings", e)
        policy = d.Policy(interval=self.options.interval, drift_interval=settings.drift_interval)
        try:
            source = self._git(settings)
            obs = d.Observation(now=now, fingerprint=fingerprint, head=source.resolve(settings.ref))
            self.metrics.count("ref_checks", "ok")
        except SourceError as e:
            self.metrics.count("ref_checks", "error")
            obs = d.Observation(now=now, fingerprint=fingerprint, source_error=str(e))
            return self._failure(obs, "source", e, policy)
        if settings.image_mode == "off":
            self._next_scan = None
        else:
            head = self._scan_images(source, settings, obs.head, now)  # type: ignore[arg-type]
            if self._image_tags and settings.image_mode == "readonly":
                # Tags deployed in place of git's are part of what is applied: a new choice is a change.
                fingerprint = hashlib.sha256(stack_bytes + images.encode_choices(self._image_tags).encode()).hexdigest()
            obs = replace(obs, head=head, fingerprint=fingerprint)
        decision = d.decide(self.state, obs, policy)
        # Pending work: a commit (or settings) not applied yet, whether it runs now or after a backoff.
        outstanding = obs.head != self.state.applied_commit or fingerprint != self.state.applied_fingerprint
        pending = {"commit": obs.head, "reason": decision.reason} if outstanding else None
        self._set_status(pending=pending, last_cycle_at=utc(), head=obs.head)
        if decision.action in (d.Action.NOTHING, d.Action.WAIT):
            self.metrics.count("cycles", "nothing" if decision.action == d.Action.NOTHING else "backoff")
            return "unchanged", decision.wait
        self.log(f"{decision.action.value}.start", decision.reason, commit=obs.head)
        try:
            with self._engine_turn():
                if decision.action == d.Action.UP:
                    changed = self._apply(source, settings, obs.head, decision.reason)  # type: ignore[arg-type]
                else:
                    changed = self._drift(settings, obs.head)  # type: ignore[arg-type]
        except ManifestError as e:
            return self._failure(obs, "manifest", e, policy)
        except GuardError as e:
            return self._failure(obs, "guard", e, policy)
        except StateDamagedError as e:
            return self._stalled(e)
        except EngineError as e:
            outcome = self._failure(obs, "engine", e, policy, during_drift=decision.action == d.Action.DRIFT)
            try:
                # A crashed or killed engine run may have left leftovers: repair them now, not at the retry.
                with self._engine_turn(deep=True):
                    pass
            except StateDamagedError as again:
                return self._stalled(again)
            except Exception as again:  # noqa: BLE001
                self.log("recover.failed", _tail(again), level="error")
            return outcome
        except LockError as e:  # stopped while waiting for a `gitops up` by hand to finish
            return self._failure(obs, "lock", e, policy)
        except SourceError as e:
            return self._failure(obs, "source", e, policy)
        except Exception as e:  # noqa: BLE001 - e.g. a CommandError of `stack output`: the loop must go on
            return self._failure(obs, "internal", e, policy)
        self.state = d.succeeded(self.state, decision.action, obs.head, fingerprint, self.clock())  # type: ignore[arg-type]
        self.metrics.count("cycles", "changed" if changed else "unchanged")
        self._set_status(applied_commit=obs.head, applied_fingerprint=fingerprint, pending=None, failures=0,
                         last_success_at=utc(), last_error=None,
                         last_drift_check_at=utc() if settings.drift_interval else None)
        return ("changed" if changed else "unchanged"), d.next_wait(self.state, self.clock(), policy)

    def _failure(self, obs: d.Observation, kind: str, error: Exception, policy: d.Policy | None = None,
                 during_drift: bool = False) -> tuple[str, float]:
        policy = policy or d.Policy(interval=self.options.interval)
        self.state = d.failed(self.state, obs, policy, during_drift=during_drift)
        wait = max(0.0, (self.state.retry_at or obs.now) - obs.now)
        self.metrics.count("errors", kind)
        self.metrics.count("cycles", "error")
        self.log("cycle.failed", str(error), level="error", kind=kind, commit=obs.head,
                 failures=self.state.failures, retry_in=round(wait, 1))
        self._set_status(failures=self.state.failures, last_error={"kind": kind, "message": str(error), "at": utc()},
                         last_result={"result": "error", "kind": kind, "commit": obs.head, "at": utc()},
                         pending={"commit": obs.head, "reason": f"retry after {kind} error"} if obs.head else None)
        return "error", wait

    # -- actions --------------------------------------------------------------------------------

    def _apply(self, source: GitSource, settings: StackSettings, commit: str, reason: str) -> bool:
        # Render and validate first: a broken commit never reaches the engine.
        tags = self._image_tags if settings.image_mode == "readonly" else {}
        desired = read_desired_state(source, commit, settings,
                                     rewrite=(lambda files: images.apply_choices(files, tags, settings.path)) if tags else None)
        stack = self._engine_stack()
        if self._subjects is None:
            self._subjects = tuple(engine.outputs(stack).get("subjects") or ())
        current = self._subjects
        verdict = check_deletions(current, desired.subjects, max_delete_percent=settings.max_delete_percent,
                                  allow_mass_delete=settings.allow_mass_delete)
        if not verdict.allowed:
            raise GuardError(f"commit {commit[:12]}: {verdict.message}")
        self._set_status(state="up", running={"action": "up", "commit": commit, "since": utc()})
        record = self._new_record("up", commit)
        started_at, started_epoch = utc(), time.time()
        errors: list[str] = []

        def on_event(event: Any) -> None:
            events.write(json.dumps(engine.event_json(event), default=str) + "\n")
            diagnostic = event.diagnostic_event
            if diagnostic is not None and diagnostic.severity == "error" and len(errors) < 5:
                errors.append(diagnostic.message.strip())

        with (record / "events.jsonl").open("w") as events:
            try:
                result = engine.up(stack, commit, on_output=None, on_event=on_event,
                                   program_env={IMAGE_TAGS_ENV: images.encode_choices(tags)} if tags else None)
            except EngineError as e:
                # The CLI's own text ends with a summary; the typed error events say what failed.
                error = EngineError(f"{e}\n" + "\n".join(errors)) if errors else e
                self._finish_record(record, {"action": "up", "commit": commit, "reason": reason, "result": "error",
                                             "error": str(error)})
                raise error from e
            except BaseException:
                self._subjects = None  # a failed `up` may have changed some: ask the stack next time
                raise
            finally:
                self._set_status(running=None)
        # The guard's "current" is what this `up` left; no `pulumi stack output` call (~1 s) next time.
        self._subjects = tuple(result.outputs.get("subjects") or ())
        summary = {"action": "up", "commit": commit, "reason": reason, "result": "ok", "started_at": started_at,
                   "started_epoch": started_epoch,
                   "changes": dict(result.changes),
                   "changed": result.changed, "seconds": round(result.seconds, 2), "objects": len(desired.manifests),
                   "guard": verdict.message}
        self._finish_record(record, summary)
        self.metrics.record_up(result.seconds, dict(result.changes))
        self.log("up.done", _changes_text(result.changes), commit=commit, seconds=round(result.seconds, 1),
                 changes=dict(result.changes), record=str(record))
        self._set_status(last_result={**summary, "at": utc(), "record": str(record)})
        return result.changed

    def _drift(self, settings: StackSettings, commit: str) -> bool:
        """Refresh against the cluster. `report` only previews the refresh; `correct` refreshes the
        state and then runs `up`, which puts hand-edited fields back to git (verified: a refreshed
        state makes the provider see the edit as a diff)."""
        stack = self._engine_stack()
        record = self._new_record("drift", commit)
        summary_changes: dict[str, int] = {}
        drifted: list[str] = []
        report = settings.drift_mode == "report"

        def on_event(event: Any) -> None:
            events.write(json.dumps(engine.event_json(event), default=str) + "\n")
            if event.summary_event is not None:
                summary_changes.update(event.summary_event.resource_changes or {})
            outputs = event.res_outputs_event
            if outputs is not None and str(getattr(outputs.metadata.op, "value", outputs.metadata.op)) not in ("same", "refresh"):
                drifted.append(outputs.metadata.urn.rsplit("::", 1)[-1])

        self._set_status(state="drift", running={"action": "drift", "commit": commit, "since": utc()})
        started = time.monotonic()
        with (record / "events.jsonl").open("w") as events:
            try:
                # The summary event carries the counts; RefreshResult's own summary is not reliable
                # for preview-only refreshes (it reported "create" for unchanged resources).
                stack.refresh(show_secrets=False, color="never", preview_only=report or None, on_event=on_event)
            except Exception as e:  # noqa: BLE001 - any CommandError flavour
                self._finish_record(record, {"action": "drift", "commit": commit, "result": "error", "error": str(e)})
                self._set_status(running=None)
                raise EngineError(f"refresh failed for stack {stack.name}: {_tail(e)}") from e
        found = bool(drifted)
        self.metrics.drift(found)
        summary = {"action": "drift", "commit": commit, "mode": settings.drift_mode, "drifted": drifted,
                   "seconds": round(time.monotonic() - started, 2), "result": "ok"}
        self._finish_record(record, summary)
        self._set_status(running=None, last_drift={**summary, "at": utc(), "record": str(record)})
        if not found:
            self.log("drift.none", "cluster matches the stack", commit=commit)
            return False
        self.log("drift.found", f"{len(drifted)} object(s) changed outside git", level="warning",
                 objects=drifted, mode=settings.drift_mode)
        if report:
            return False
        source = self._git(settings)
        return self._apply(source, settings, commit, f"drift correction of {len(drifted)} object(s)")

    def _scan_images(self, source: GitSource, settings: StackSettings, head: str, now: float) -> str:
        """Every `imageInterval` (or on a registry webhook): list the tags of the marked images.
        In commit mode, new tags are committed and pushed, and the new head is returned so this
        cycle deploys it; in read-only mode they are kept for `up`. Any failure is logged and
        leaves things as they were: the git side of the cycle goes on."""
        hooked = self._registry_hook.is_set()
        if not settings.image_interval:
            self._next_scan = None
        elif self._next_scan is None:  # scanning was just turned on
            self._next_scan = now
        if not hooked and (self._next_scan is None or now < self._next_scan):
            return head
        self._registry_hook.clear()
        self._next_scan = now + settings.image_interval if settings.image_interval else None
        if self._scanner is None:
            self._scanner = ImageScanner(self.env, settings.insecure_registries, clock=self.clock)
        before = dict(self._scanner.requests_made)
        try:
            result = self._scanner.scan(source.read(head, settings.path), head, settings,
                                        f"{stack_file(self.options.project_dir, self.options.stack).name}: gitops:imagePolicies")
        except (ManifestError, SettingsError, SourceError) as e:
            self.metrics.count("image_scans", "error")
            self.log("images.failed", str(e), level="error", commit=head)
            return head
        finally:
            for host, total in self._scanner.requests_made.items():
                if total - before.get(host, 0):
                    self.metrics.count("registry_requests", host, total - before.get(host, 0))
        self.metrics.count("image_scans", "error" if result.errors else "ok")
        for image, error in result.errors.items():
            self.log("images.registry_error", error, level="warning", image=image)
        for check in result.checks:
            if check.problem and check.image not in result.errors:
                self.log("images.problem", check.problem, level="warning", location=check.marker.location)
        moving = result.moving
        if settings.image_mode == "readonly":
            # Keep earlier choices of images that could not be listed now, so a registry outage
            # does not roll the cluster back to git's tags.
            unlisted = {c.marker.policy_ref for c in result.checks if c.image in result.errors}
            tags = {**{k: v for k, v in self._image_tags.items() if k in unlisted}, **result.choices}
            if tags != self._image_tags:
                self.metrics.count("image_updates", "readonly", len(moving))
                self.log("images.accepted", f"{len(moving)} image field(s) to deploy without a commit",
                         updates=[describe(c) for c in moving])
            self._image_tags = tags
            return head
        if not moving:
            return head
        return self._write_back(settings, result, head)

    def _write_back(self, settings: StackSettings, result, head: str) -> str:
        chosen = result.choices
        target = WriteBack(repo=settings.resolved_repo(self.options.project_dir), branch=settings.ref,
                           push_branch=settings.image_push_branch, author=Author(*split_author(settings.image_author)))
        message = commit_message(images.updates(result.moving), settings.image_commit_message)
        try:
            written = write_back(target, sorted({c.marker.path for c in result.moving}),
                                 lambda path, data: images.rewrite_file(path, data, chosen), message)
        except (SourceError, SettingsError, ManifestError) as e:
            self.metrics.count("image_scans", "error")
            self.log("images.write_failed", str(e), level="error", commit=head)
            return head
        if written.commit is None:
            return head
        self.metrics.count("image_updates", "commit", len(result.moving))
        self.log("images.committed", message.splitlines()[0], commit=written.commit, branch=written.branch,
                 attempts=written.attempts, files=list(written.files))
        if settings.image_push_branch:
            return head  # for review: deployed when it is merged into the stack's ref
        try:
            return self._git(settings).resolve(settings.ref)
        except SourceError:
            return head

    def _initial_state(self) -> d.WatchState:
        """Start from what the stack last applied (its `commit` output), so a restarted watcher does
        not run `up` for a commit that is already there. The settings fingerprint comes from the
        previous status file, if it speaks of the same commit; otherwise the first cycle runs `up`."""
        outputs = engine.outputs(self._engine_stack())
        commit = outputs.get("commit")
        self._subjects = tuple(outputs.get("subjects") or ())
        previous = self._previous
        fingerprint = previous.get("applied_fingerprint") if previous.get("applied_commit") == commit else None
        if commit:
            self._set_status(applied_commit=commit, applied_fingerprint=fingerprint)
        return d.WatchState(applied_commit=commit, applied_fingerprint=fingerprint)

    # -- recovery after a killed run ------------------------------------------------------------

    def _start(self) -> None:
        """The first cycle: repair what a killed run left (a deep look: the watcher may have been
        the one killed), then start from what the stack last applied."""
        self._set_status(state="recovering")
        with self._engine_turn(deep=True):
            self.state = self._initial_state()
        self._started = True

    @contextmanager
    def _engine_turn(self, deep: bool = False) -> Iterator[None]:
        """Holding the stack's run lock (a `gitops up` by hand may hold it: wait for it), repair a
        killed run's leftovers, then let the caller run the engine."""
        lock = engine.run_lock(self.options.project_dir, self.options.stack, self.env)
        lock.acquire(wait=True, cancelled=self.stopping.is_set,
                     on_wait=lambda holder: self.log("run.wait", "another run of the stack is in progress; waiting",
                                                     holder_pid=holder.get("pid")))
        try:
            recovery = engine.recover(self.options.project_dir, self.options.stack, self.env, deep=deep,
                                      stack=self._engine_stack)
            if recovery.changed:
                self.log("recover.repaired", "; ".join(recovery.lines()), level="warning",
                         files=[str(r.path) for r in recovery.repaired],
                         pending=len(recovery.pending))
            for lock_held in recovery.busy:
                self.log("recover.busy", "the stack is locked by a live Pulumi run", level="warning",
                         pid=lock_held.pid, hostname=lock_held.hostname)
            yield
        finally:
            lock.release()

    def _stalled(self, error: StateDamagedError) -> tuple[str, float]:
        """Damaged state: stop trying until the files it names change, and say so."""
        self._stall_paths = [getattr(d, "path", None) for d in error.damage]
        self._stall = (str(error), _damage_fingerprint(self._stall_paths))
        self.metrics.count("errors", "state")
        self.metrics.count("cycles", "error")
        self.log("stalled", str(error), level="error", kind="state")
        self._set_status(state="stalled", stalled={"reason": str(error), "since": utc(),
                                                   "files": [str(p) for p in self._stall_paths if p]},
                         last_error={"kind": "state", "message": str(error), "at": utc()})
        return "error", self.options.interval

    # -- helpers --------------------------------------------------------------------------------

    def _git(self, settings: StackSettings) -> GitSource:
        repo = settings.resolved_repo(self.options.project_dir)
        if self._source is None or self._source[0] != repo:
            self._source = (repo, GitSource(repo))
        return self._source[1]

    def _engine_stack(self):
        if self._stack is None:
            self._stack = engine.select_stack(self.options.project_dir, self.options.stack, self.env)
        return self._stack

    def _new_record(self, action: str, commit: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
        path = self.records / f"{stamp}-{action}-{commit[:12]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _finish_record(record: Path, summary: dict) -> None:
        write_json(record / "summary.json", {**summary, "finished_at": utc(), "finished_epoch": time.time()})


def _changes_text(changes: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(changes.items())) or "no changes"


def _damage_fingerprint(paths: list[Path | None]) -> str:
    """What a person's fix would change: the damaged files' size and time (or their absence)."""
    parts = []
    for path in paths:
        try:
            st = path.stat() if path else None
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}" if st else f"{path}:-")
        except OSError:
            parts.append(f"{path}:-")
    return "|".join(parts)


def _tail(error: Exception, count: int = 8) -> str:
    text = str(getattr(error, "stderr", "") or error).strip().splitlines()
    return "\n".join(line for line in text[-count:] if line.strip())


def install_signal_handlers(watcher: Watcher) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, watcher.stop)
