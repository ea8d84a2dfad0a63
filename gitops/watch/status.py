"""The watcher's status: one typed value, saved as `status.json` and served at `/status`.

Conditions are derived from the fields when the status is written, never stored beside them, so
they cannot disagree: `Ready` (the applied commit is the ref's head, and the last cycle did not
fail), `Reconciling` (a run is going, or a commit waits to be applied), `Stalled` (a failure that
retrying cannot fix: it waits for a person to change the commit, the settings or the state).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def utc(wall: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall if wall is not None else time.time()))


class Phase(StrEnum):
    STARTING = "starting"
    RECOVERING = "recovering"
    IDLE = "idle"
    UP = "up"
    DRIFT = "drift"
    STALLED = "stalled"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Pending:
    commit: str | None
    reason: str


@dataclass(frozen=True)
class Running:
    action: str
    commit: str
    since: str


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    message: str
    at: str


@dataclass(frozen=True)
class StallInfo:
    kind: str
    reason: str
    since: str
    files: tuple[str, ...] = ()
    """Damaged state files, when that is what it waits on."""
    checks: int = 0
    """Cycles that found it still stuck."""


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class WatchStatus:
    stack: str
    pid: int
    started_at: str = field(default_factory=utc)
    state: Phase = Phase.STARTING
    head: str | None = None
    applied_commit: str | None = None
    applied_fingerprint: str | None = None
    pending: Pending | None = None
    running: Running | None = None
    failures: int = 0
    last_result: dict[str, Any] | None = None
    """The last run's summary (`runs/*/summary.json`), with when and where it was recorded."""
    last_drift: dict[str, Any] | None = None
    last_error: ErrorInfo | None = None
    stalled: StallInfo | None = None
    last_success_at: str | None = None
    last_cycle_at: str | None = None
    last_drift_check_at: str | None = None
    next_cycle_at: str | None = None
    updated_at: str | None = None

    def conditions(self) -> tuple[Condition, ...]:
        if self.stalled is not None:
            stalled = Condition("Stalled", True, self.stalled.kind.capitalize() + "Failure", self.stalled.reason)
        else:
            stalled = Condition("Stalled", False, "NotStalled")
        if self.running is not None:
            reconciling = Condition("Reconciling", True, "Running", f"{self.running.action} of {self.running.commit}")
        elif self.pending is not None:
            reconciling = Condition("Reconciling", True, "Pending", self.pending.reason)
        else:
            reconciling = Condition("Reconciling", False, "UpToDate")
        if self.stalled is not None:
            ready = Condition("Ready", False, "Stalled", self.stalled.reason)
        elif self.last_error is not None:
            ready = Condition("Ready", False, self.last_error.kind.capitalize() + "Failure", self.last_error.message)
        elif self.applied_commit is not None and self.applied_commit == self.head:
            ready = Condition("Ready", True, "Applied", f"commit {self.applied_commit} is applied")
        else:
            ready = Condition("Ready", False, "Progressing", "the ref's commit is not applied yet")
        return ready, reconciling, stalled

    def to_json(self) -> dict[str, Any]:
        out = {**dataclasses.asdict(self), "conditions": [dataclasses.asdict(c) for c in self.conditions()]}
        # Exactly what a reader of status.json gets: enums as their values, tuples as lists.
        value: dict[str, Any] = json.loads(json.dumps(out, default=str))
        return value
