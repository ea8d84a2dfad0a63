"""When to run what: the watcher's pure scheduler, with the clock passed in.

The loop observes (the ref's commit or a source error, the settings fingerprint, the time) and
asks `decide` what is due: the first start, a deploy of a new commit or settings, a drift check,
an image scan, a retry after a failure, or nothing. After each step it folds the step's outcome
back with `succeeded`, `failed` (transient: retried with exponential backoff) or `stalled`
(deterministic: not tried again until its input changes). No I/O here, so every case is a unit
test with a fake clock.

Supersede falls out of the shape: the loop resolves the ref once per cycle, so however many
commits arrived during an `up`, the next cycle sees only the newest one and applies it once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Action(StrEnum):
    START = "start"
    """Repair a killed run's leftovers and read what the stack last applied."""
    DEPLOY = "up"
    DRIFT = "drift"
    NOTHING = "nothing"
    WAIT = "wait"
    """In backoff after a transient failure."""
    STALLED = "stalled"
    """A deterministic failure: nothing is tried until its input changes."""


class Failure(StrEnum):
    """What failed, and so whether trying again can help."""

    SOURCE = "source"
    CLUSTER = "cluster"
    """The API server could not be asked (discovery, the dry run)."""
    ENGINE = "engine"
    LOCK = "lock"
    INTERNAL = "internal"
    MANIFEST = "manifest"
    GUARD = "guard"
    REJECTED = "rejected"
    """The API server's dry run refused objects of the commit."""
    SETTINGS = "settings"
    STATE = "state"

    @property
    def transient(self) -> bool:
        """Retried with backoff; the others fail the same way until a person changes their input."""
        return self in (Failure.SOURCE, Failure.CLUSTER, Failure.ENGINE, Failure.LOCK, Failure.INTERNAL)


@dataclass(frozen=True)
class Policy:
    interval: float = 30.0
    """Seconds between polls of the ref when nothing happens."""
    drift_interval: float | None = None
    """Seconds between drift checks; None: never."""
    image_interval: float | None = None
    """Seconds between image scans; None: only on a registry webhook."""
    images: bool = False
    """Whether image automation is on at all."""
    backoff_base: float = 2.0
    backoff_cap: float = 300.0

    def backoff(self, failures: int) -> float:
        """Exponential, capped: 2, 4, 8, ... seconds after 1, 2, 3, ... failures in a row."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_cap, self.backoff_base * 2.0 ** min(failures - 1, 32))


@dataclass(frozen=True)
class Stall:
    failure: Failure
    key: str
    """The input it is stuck on (commit and settings, the stack file, the damaged state files):
    when the observation's key for the same input differs, it is tried again."""
    reason: str
    since: float


@dataclass(frozen=True)
class WatchState:
    started: bool = False
    applied_commit: str | None = None
    applied_fingerprint: str | None = None
    last_drift_check: float | None = None
    failures: int = 0
    """Failed cycles in a row; reset by any success."""
    retry_at: float | None = None
    """Not before this time after a failure (backoff)."""
    failed_key: str | None = None
    """The deploy key (commit and fingerprint) that last failed: a new commit is tried at once, the
    same one after backoff."""
    stall: Stall | None = None
    next_scan: float | None = None
    """When the next image scan is due; None: at the first chance."""
    webhook: bool = False
    """A git webhook arrived: cut any backoff short."""
    registry_hook: bool = False
    """A registry webhook arrived: scan now."""


@dataclass(frozen=True)
class Observation:
    now: float
    fingerprint: str
    """Of the stack file (and read-only image tags): a change is a reason to deploy."""
    head: str | None = None
    """The ref's commit now; None when the source could not be read."""
    source_error: str | None = None
    settings_error: str | None = None
    damage: str = ""
    """While stalled on damaged state: the damaged files' fingerprint now."""

    @property
    def deploy_key(self) -> str:
        return f"{self.head}|{self.fingerprint}"

    def key_for(self, failure: Failure) -> str:
        """The input a failure of this kind depends on, as observed now."""
        if failure is Failure.STATE:
            return self.damage
        if failure is Failure.SETTINGS:
            return self.fingerprint
        return self.deploy_key


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    scan: bool = False
    """An image scan is due before the action."""
    wait: float = 0.0
    """Seconds to sleep before the next cycle (a webhook may wake it earlier)."""
    failure: Failure | None = None
    """What the observation itself failed on (the source, the settings), for the loop to fold in."""


def decide(state: WatchState, obs: Observation, policy: Policy) -> Decision:
    now = obs.now
    in_backoff = state.retry_at is not None and now < state.retry_at and not state.webhook
    backoff_wait = max(0.0, (state.retry_at or now) - now)
    if state.stall is not None and obs.key_for(state.stall.failure) == state.stall.key:
        return Decision(Action.STALLED, state.stall.reason, wait=policy.interval, failure=state.stall.failure)
    if obs.settings_error is not None:
        return Decision(Action.STALLED, obs.settings_error, wait=policy.interval, failure=Failure.SETTINGS)
    if not state.started:
        if in_backoff:
            return Decision(Action.WAIT, "retrying the start after backoff", wait=backoff_wait)
        return Decision(Action.START, "starting")
    if obs.source_error is not None or obs.head is None:
        # Nothing to act on; the caller counts it as a failure and sleeps the backoff.
        return Decision(Action.WAIT, f"source unavailable: {obs.source_error or 'no commit'}",
                        wait=policy.backoff(state.failures + 1), failure=Failure.SOURCE)
    scan = scan_due(state, now, policy)
    if obs.head != state.applied_commit or obs.fingerprint != state.applied_fingerprint:
        if in_backoff and state.failed_key == obs.deploy_key:
            return Decision(Action.WAIT, f"retrying {obs.head[:12]} after backoff", scan=scan, wait=backoff_wait)
        if state.applied_commit is None:
            reason = "first run"
        elif obs.head != state.applied_commit:
            reason = f"new commit {obs.head[:12]} (applied: {state.applied_commit[:12]})"
        else:
            reason = "stack settings changed"
        return Decision(Action.DEPLOY, reason, scan=scan)
    if in_backoff:
        return Decision(Action.WAIT, "backing off after a failure", scan=scan, wait=backoff_wait)
    if policy.drift_interval is not None and _drift_due(state, now, policy.drift_interval):
        return Decision(Action.DRIFT, "drift check due", scan=scan)
    return Decision(Action.NOTHING, "up to date", scan=scan, wait=next_wait(state, now, policy))


def scan_due(state: WatchState, now: float, policy: Policy) -> bool:
    if not policy.images:
        return False
    if state.registry_hook:
        return True
    return policy.image_interval is not None and (state.next_scan is None or now >= state.next_scan)


def _drift_due(state: WatchState, now: float, drift_interval: float) -> bool:
    return state.last_drift_check is None or now - state.last_drift_check >= drift_interval


def next_wait(state: WatchState, now: float, policy: Policy) -> float:
    """The poll interval, shortened so a drift check or an image scan is not late."""
    wait = policy.interval
    if policy.drift_interval is not None and state.last_drift_check is not None:
        wait = min(wait, max(0.0, state.last_drift_check + policy.drift_interval - now))
    if policy.images and policy.image_interval is not None and state.next_scan is not None:
        wait = min(wait, max(0.0, state.next_scan - now))
    return wait


# ---------------------------------------------------------------- folding outcomes back


def started(state: WatchState, applied_commit: str | None, applied_fingerprint: str | None) -> WatchState:
    return replace(state, started=True, applied_commit=applied_commit, applied_fingerprint=applied_fingerprint,
                   failures=0, retry_at=None)


def succeeded(state: WatchState, action: Action, obs: Observation) -> WatchState:
    """After a successful `up` or drift check. An `up` also counts as a drift check: it just
    made the cluster equal to git, so the next one is a full interval away."""
    return replace(state, applied_commit=obs.head, applied_fingerprint=obs.fingerprint, last_drift_check=obs.now,
                   failures=0, retry_at=None, failed_key=None, stall=None, webhook=False)


def failed(state: WatchState, obs: Observation, policy: Policy, *, during_drift: bool = False) -> WatchState:
    """After a transient failure: count it, and schedule the retry. The applied commit is kept, so
    the last good state is what the watcher keeps reporting and comparing against."""
    failures = state.failures + 1
    return replace(state, failures=failures, retry_at=obs.now + policy.backoff(failures),
                   failed_key=obs.deploy_key if obs.head else state.failed_key,
                   # A failed drift check must not be retried in a tight loop either.
                   last_drift_check=obs.now if during_drift else state.last_drift_check,
                   webhook=False)


def stalled(state: WatchState, obs: Observation, failure: Failure, reason: str) -> WatchState:
    """After a deterministic failure: stuck until the input it failed on changes."""
    return replace(state, stall=Stall(failure, obs.key_for(failure), reason, obs.now), retry_at=None,
                   failures=state.failures + 1, webhook=False)


def unstalled(state: WatchState) -> WatchState:
    return replace(state, stall=None)


def scanned(state: WatchState, now: float, policy: Policy) -> WatchState:
    return replace(state, registry_hook=False,
                   next_scan=now + policy.image_interval if policy.image_interval is not None else None)


def webhook(state: WatchState) -> WatchState:
    return replace(state, webhook=True)


def registry_hook(state: WatchState) -> WatchState:
    return replace(state, registry_hook=True)
