"""When to run: the watcher's pure decision logic, with the clock passed in.

The loop observes (the ref's commit or a source error, the settings fingerprint, the time)
and asks `decide` what to do; after acting it folds the outcome back with `succeeded` /
`failed`. No I/O here, so every case is a unit test with a fake clock.

Supersede falls out of the shape: the loop resolves the ref once per cycle, so however many
commits arrived during an `up`, the next cycle sees only the newest one and applies it once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Action(str, Enum):
    NOTHING = "nothing"
    UP = "up"
    DRIFT = "drift"
    WAIT = "wait"


@dataclass(frozen=True)
class Policy:
    interval: float = 30.0
    """Seconds between polls of the ref when nothing happens."""
    drift_interval: float | None = None
    """Seconds between drift checks; None: never."""
    backoff_base: float = 2.0
    backoff_cap: float = 300.0

    def backoff(self, failures: int) -> float:
        """Exponential, capped: 2, 4, 8, ... seconds after 1, 2, 3, ... failures in a row."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_cap, self.backoff_base * 2 ** min(failures - 1, 32))


@dataclass(frozen=True)
class WatchState:
    applied_commit: str | None = None
    applied_fingerprint: str | None = None
    last_drift_check: float | None = None
    failures: int = 0
    """Failed cycles in a row; reset by any success."""
    retry_at: float | None = None
    """Not before this time after a failure (backoff)."""
    failed_key: tuple[str | None, str] | None = None
    """(commit, fingerprint) that last failed: a new commit is tried at once, the same one after backoff."""
    webhook_pending: bool = False


@dataclass(frozen=True)
class Observation:
    now: float
    fingerprint: str
    head: str | None = None
    """The ref's commit now; None when the source could not be read."""
    source_error: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    commit: str | None = None
    wait: float = 0.0
    """Seconds to sleep before the next cycle (a webhook may wake it earlier)."""


def decide(state: WatchState, obs: Observation, policy: Policy) -> Decision:
    in_backoff = state.retry_at is not None and obs.now < state.retry_at and not state.webhook_pending
    if obs.source_error is not None or obs.head is None:
        # Nothing to act on; the caller counts it as a failure and sleeps the backoff.
        return Decision(Action.WAIT, f"source unavailable: {obs.source_error or 'no commit'}",
                        wait=policy.backoff(state.failures + 1))
    key = (obs.head, obs.fingerprint)
    if obs.head != state.applied_commit or obs.fingerprint != state.applied_fingerprint:
        if in_backoff and state.failed_key == key:
            return Decision(Action.WAIT, f"retrying {obs.head[:12]} after backoff",
                            wait=max(0.0, state.retry_at - obs.now))  # type: ignore[operator]
        if state.applied_commit is None:
            reason = "first run"
        elif obs.head != state.applied_commit:
            reason = f"new commit {obs.head[:12]} (applied: {state.applied_commit[:12]})"
        else:
            reason = "stack settings changed"
        return Decision(Action.UP, reason, commit=obs.head)
    if in_backoff:
        return Decision(Action.WAIT, "backing off after a failure", wait=max(0.0, state.retry_at - obs.now))  # type: ignore[operator]
    if policy.drift_interval is not None and _drift_due(state, obs.now, policy.drift_interval):
        return Decision(Action.DRIFT, "drift check due", commit=obs.head)
    return Decision(Action.NOTHING, "up to date", wait=next_wait(state, obs.now, policy))


def _drift_due(state: WatchState, now: float, drift_interval: float) -> bool:
    return state.last_drift_check is None or now - state.last_drift_check >= drift_interval


def next_wait(state: WatchState, now: float, policy: Policy) -> float:
    """The poll interval, shortened so a drift check is not late."""
    wait = policy.interval
    if policy.drift_interval is not None and state.last_drift_check is not None:
        wait = min(wait, max(0.0, state.last_drift_check + policy.drift_interval - now))
    return wait


def succeeded(state: WatchState, action: Action, commit: str, fingerprint: str, now: float) -> WatchState:
    """After a successful `up` or drift check. An `up` also counts as a drift check: it just
    made the cluster equal to git, so the next one is a full interval away."""
    return replace(state, applied_commit=commit, applied_fingerprint=fingerprint, last_drift_check=now,
                   failures=0, retry_at=None, failed_key=None, webhook_pending=False)


def failed(state: WatchState, obs: Observation, policy: Policy, *, during_drift: bool = False) -> WatchState:
    """After a failed cycle: count it, and schedule the retry. The applied commit is kept, so the
    last good state is what the watcher keeps reporting and comparing against."""
    failures = state.failures + 1
    return replace(state, failures=failures, retry_at=obs.now + policy.backoff(failures),
                   failed_key=(obs.head, obs.fingerprint) if obs.head else state.failed_key,
                   # A failed drift check must not be retried in a tight loop either.
                   last_drift_check=obs.now if during_drift else state.last_drift_check,
                   webhook_pending=False)


def webhook(state: WatchState) -> WatchState:
    return replace(state, webhook_pending=True)
