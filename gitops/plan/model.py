"""A plan: what applying a ref would change, object by object and field by field.

Built from the engine's typed preview events (never from its text output), rendered by
`plan.render`. Values only: no I/O, no Pulumi imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import Problem


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True)
class FieldChange:
    """One changed field of an object, by its path in the manifest (`spec.replicas`, `data.password`)."""

    path: str
    kind: str
    """`add`, `delete` or `update`."""
    old: Any = None
    """The value before (JSON-able); None when the field was absent or is secret."""
    new: Any = None
    """The value after (JSON-able); None when the field is removed or is secret."""
    secret: bool = False
    """The value is secret: renderers say "changed" and show neither value."""
    replaces: bool = False
    """Changing this field forces the object to be replaced (an immutable field)."""


@dataclass(frozen=True)
class Change:
    """One object the plan creates, updates, replaces or deletes."""

    subject: str
    """`kind/namespace/name`, or `kind/name` when cluster-scoped."""
    op: Op
    fields: tuple[FieldChange, ...] = ()
    replace_reasons: tuple[str, ...] = ()
    """For a replace: the field paths that force it."""


@dataclass(frozen=True)
class Plan:
    """The preview of one stack at one ref. When the manifests are invalid, `problems` is the plan."""

    stack: str
    ref: str
    commit: str | None
    changes: tuple[Change, ...] = ()
    unchanged: int = 0
    problems: tuple[Problem, ...] = ()
    error: str | None = None
    """The preview could not run (engine or source failure), in one message."""

    @property
    def counts(self) -> dict[Op, int]:
        counts = {op: 0 for op in Op}
        for change in self.changes:
            counts[change.op] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)
