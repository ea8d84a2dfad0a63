"""The mass-deletion guard (pure): refuse a commit that would delete too much of a stack.

A folder emptied or renamed by mistake is a valid commit that deletes everything; a person,
not the watcher, must confirm that. Objects that only change `apiVersion` keep their subject,
so they never count as deletions.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ManifestError, Problem
from .model import DesiredState


@dataclass(frozen=True)
class GuardVerdict:
    allowed: bool
    deleted: tuple[str, ...]
    total: int
    message: str

    @property
    def share(self) -> float:
        return len(self.deleted) / self.total if self.total else 0.0


def check_deletions(current: Iterable[str], desired: Iterable[str], *, max_delete_percent: float,
                    allow_mass_delete: bool = False) -> GuardVerdict:
    """`current`: the stack's subjects after its last `up`; `desired`: the new commit's subjects."""
    now = sorted(set(current))
    wanted = set(desired)
    deleted = tuple(s for s in now if s not in wanted)
    total = len(now)
    percent = 100.0 * len(deleted) / total if total else 0.0
    summary = f"{len(deleted)} of {total} objects ({percent:.0f}%) would be deleted"
    if not deleted or percent <= max_delete_percent:
        return GuardVerdict(True, deleted, total, summary)
    if allow_mass_delete:
        return GuardVerdict(True, deleted, total, f"{summary}; allowed by gitops:allowMassDelete")
    shown = ", ".join(deleted[:10]) + (f", and {len(deleted) - 10} more" if len(deleted) > 10 else "")
    return GuardVerdict(False, deleted, total,
                        f"refused: {summary}, more than gitops:maxDeletePercent {max_delete_percent:g}%: {shown}. "
                        "If this is intended, run `gitops up --allow-mass-delete` once, set gitops:allowMassDelete: "
                        "true, or raise gitops:maxDeletePercent")


def check_not_empty(state: DesiredState, allow_empty: bool) -> None:
    """An empty desired state prunes everything the stack holds; it is far more often a mistyped
    path or an emptied folder than a wish. ManifestError unless the stack allows it."""
    if state.manifests or allow_empty:
        return
    raise ManifestError([Problem(state.path, 1, f"no objects in {state.path!r} at commit {state.commit[:12]}: an "
                                                "empty desired state would delete everything the stack holds; set "
                                                "gitops:allowEmpty: true if that is meant")])
