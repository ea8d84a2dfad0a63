"""What an engine run may create, and what the last run that succeeded applied.

This project's runs save the state once, when the engine ends (`PULUMI_SKIP_CHECKPOINTS`): saving
it after every step made a cold `up` grow with the square of the stack. A run killed before its end
leaves the state as it was before the run, while the cluster may hold objects the run created. So
the program writes the run's intent before its first object is registered: every resource it
registers, by URN, with a digest of what the engine is given for it. The next run puts back into
the state what a killed run left out of it (`engine/recover.py`) instead of leaving it orphaned.

A run that succeeds keeps its intent as the last run: the next commit then sends through the engine
only the objects whose digest changed or that are new (`delta_targets`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError


@dataclass(frozen=True)
class Intent:
    commit: str
    provider: str
    """URN of the provider every object is registered with."""
    digests: Mapping[str, str]
    """URN -> digest of each resource the run registers (`resources.spec_digests`)."""
    settings: str
    """Digest of the settings that reach every resource (`resources.settings_digest`)."""
    image_tags: str | None = None
    """The run's read-only image tags (program.IMAGE_TAGS_ENV), as it was given them."""

    @property
    def urns(self) -> tuple[str, ...]:
        return tuple(self.digests)

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "provider": self.provider, "digests": dict(self.digests),
                "settings": self.settings, "imageTags": self.image_tags}

    def write(self, path: Path) -> None:
        _write(path, self.to_json())


@dataclass(frozen=True)
class LastRun:
    """The intent of the stack's last run, which succeeded, and what its end left."""

    intent: Intent
    stamp: tuple[int, int]
    """Size and modification time (ns) of the checkpoint that run saved: another one means another
    run (a `pulumi up` by hand, a refresh) changed the state since."""
    full_at: float
    """When the last run that sent every object through the engine started (epoch seconds)."""

    def write(self, path: Path) -> None:
        _write(path, {**self.intent.to_json(), "stamp": list(self.stamp), "fullAt": self.full_at})


def read_intent(path: Path) -> Intent | None:
    """The intent of a run that did not end, or None when every run ended."""
    record = _read(path)
    return _intent(path, record) if record is not None else None


def read_last_run(path: Path) -> LastRun | None:
    record = _read(path)
    if record is None:
        return None
    try:
        size, mtime = record["stamp"]
        return LastRun(_intent(path, record), (int(size), int(mtime)), float(record["fullAt"]))
    except (KeyError, TypeError, ValueError) as e:
        raise _unreadable(path, e) from e


def delta_targets(last: LastRun | None, digests: Mapping[str, str], settings: str, stamp: tuple[int, int] | None,
                  now: float, full_every: float | None) -> tuple[str, ...] | None:
    """The URNs a run of `digests` must send through the engine, or None: every one (a full run).

    Only the last run's own state can be trusted to equal its digests: one that succeeded, whose
    checkpoint is still the one it saved, under the same settings, and recently enough after a full
    run that drift checks and periodic full runs bound how long a hand edit elsewhere can stay."""
    if (last is None or stamp is None or last.stamp != stamp or last.intent.settings != settings
            or not full_every or now - last.full_at >= full_every):
        return None
    before = last.intent.digests
    # A commit that deletes objects, or moves one to another type (an apiVersion changed: one
    # resource under an alias), is a full run: a targeted delete takes what the state says depends
    # on it along, and refuses when that is not targeted too.
    if any(urn not in digests for urn in before):
        return None
    # An empty digest (a Secret) is never taken as unchanged.
    return tuple(urn for urn, digest in digests.items() if not digest or before.get(urn) != digest)


def _intent(path: Path, record: Mapping[str, Any]) -> Intent:
    try:
        digests = record["digests"]
        if not isinstance(digests, dict):
            raise TypeError("digests is no mapping")
        tags = record.get("imageTags")
        return Intent(commit=str(record["commit"]), provider=str(record["provider"]),
                      digests={str(k): str(v) for k, v in digests.items()}, settings=str(record["settings"]),
                      image_tags=tags if isinstance(tags, str) else None)
    except (KeyError, TypeError) as e:
        raise _unreadable(path, e) from e


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from e
    if not isinstance(record, dict):
        raise _unreadable(path, TypeError("not a mapping"))
    return record


def _unreadable(path: Path, error: Exception) -> EngineError:
    # Only this project writes these files, always through a rename: something else changed it.
    return EngineError(f"{path}: unreadable record of a run ({error}); remove it and run `gitops up --refresh`")


def _write(path: Path, record: Mapping[str, Any]) -> None:
    """Written whole or not at all: a kill mid-write leaves the previous file or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
