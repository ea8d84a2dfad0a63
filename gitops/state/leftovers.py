"""What a killed run can leave in a file backend, told apart from damage nobody can prove safe to repair.

A SIGKILL can land between any two system calls of the Pulumi CLI. In the file backend that leaves:
- its lock file, naming a pid that is gone: every later update is refused until it is removed;
- a metadata side file (`<blob>.attrs`) created but not filled: the blob cannot be read at all
  ("failed to load checkpoint: EOF"), though a missing side file is read as "no metadata";
- temporaries (`<blob>.<hex>.tmp`) that were never renamed into place: harmless, but they pile up;
- pending operations in the checkpoint (the engine's own record of steps it started): the engine
  handles those itself (see `gitops.engine.recover`).
Blobs themselves are written aside and renamed, so a kill never truncates a checkpoint. A checkpoint
that is truncated anyway, or missing while its backup is there, came from something else (a full
disk, a hand edit): that is damage, reported with the manual step, never repaired here.

`survey` only reads; `repair` deletes exactly what the survey listed.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import StackFiles
from .locks import PulumiLock, pulumi_locks


@dataclass(frozen=True)
class Leftover:
    path: Path
    why: str


@dataclass(frozen=True)
class Damage:
    path: Path
    problem: str
    manual_step: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}. {self.manual_step}"


@dataclass(frozen=True)
class PendingOperation:
    """A step the engine started and never saw finish: `creating`, `updating`, `deleting`, ..."""

    type: str
    urn: str
    resource: dict[str, Any] = field(repr=False, hash=False, compare=False)


@dataclass(frozen=True)
class Survey:
    live_locks: tuple[PulumiLock, ...] = ()
    """Held by a process that is alive (or on another host): someone may be writing, so nothing is touched."""
    leftovers: tuple[Leftover, ...] = ()
    damage: tuple[Damage, ...] = ()
    pending: tuple[PendingOperation, ...] | None = None
    """From the checkpoint, when the survey read it (deep); None when it did not."""
    killed_run: bool = False
    """A dead run's lock was found: some update of this stack was killed."""

    @property
    def busy(self) -> bool:
        return bool(self.live_locks)


EMPTY_SIDE_FILE = ("metadata side file left empty or cut short by an interrupted write (the backend reads a missing "
                   "one as no metadata)")
TEMPORARY = "temporary file of a write that was interrupted before it was renamed into place"


def survey(files: StackFiles, *, deep: bool = False) -> Survey:
    """What is left behind for one stack. `deep` also reads the checkpoint (its integrity and
    pending operations); it is done anyway when a killed run's lock is found."""
    locks = pulumi_locks(files)
    live = tuple(lock for lock in locks if not lock.owner_gone())
    if live:
        return Survey(live_locks=live)
    leftovers = [Leftover(lock.path, f"lock of a Pulumi run (pid {lock.pid}) that is gone") for lock in locks]
    killed = bool(leftovers)
    deep = deep or killed
    # Where an interrupted write can leave something: this stack's own files, and the files the
    # backend writes only during an update (history, backups), which need a look only after a kill.
    folders = [(files.stacks_dir, files.own_file), *((d, None) for d in files.lock_dirs)]
    if deep:
        folders += [(files.history_dir, None), (files.backups_dir, None)]
    candidates = [files.meta.with_name(files.meta.name + ".attrs")]
    for folder, own in folders:
        if folder.is_dir():
            candidates += [p for p in folder.iterdir() if p.is_file() and (own is None or own(p.name))]
    # Pending operations outlive the run that left them (the engine keeps pending creates until told
    # what became of them), so look for them whenever the checkpoint mentions any: a byte search,
    # cheap beside parsing a large state.
    deep = deep or _mentions_pending(files)
    known = {leftover.path for leftover in leftovers}
    for path in sorted(candidates):
        if path in known:
            continue
        if path.name.endswith(".attrs") and path.is_file() and not _valid_side_file(path):
            leftovers.append(Leftover(path, EMPTY_SIDE_FILE))
        elif path.name.endswith(".tmp") and _temporary(path):
            leftovers.append(Leftover(path, TEMPORARY))
    # A dead lock's own side file goes with it.
    for lock in locks:
        side = lock.path.with_name(lock.path.name + ".attrs")
        if side.exists() and side not in {leftover.path for leftover in leftovers}:
            leftovers.append(Leftover(side, "metadata side file of that lock"))
    damage, pending = _checkpoint(files) if deep else ([], None)
    if not files.checkpoint():
        backups = (p.with_name(p.name + ".bak") for p in files.checkpoints)
        backup = next((b for b in backups if b.is_file()), None)
        if backup is not None:
            damage.append(Damage(backup, "the stack's checkpoint is missing but this backup of it is here",
                                 f"Restore it (`cp {backup} {backup.with_suffix('')}`) and run `gitops up --refresh`, "
                                 f"or delete the backup to start the stack afresh"))
    return Survey(leftovers=tuple(leftovers), damage=tuple(damage), pending=pending, killed_run=killed)


def repair(found: Survey) -> list[Leftover]:
    """Delete the leftovers of a survey; never anything while the stack is busy or damaged."""
    if found.busy or found.damage:
        return []
    done = []
    for leftover in found.leftovers:
        try:
            leftover.path.unlink()
        except FileNotFoundError:
            continue
        done.append(leftover)
    return done


def _mentions_pending(files: StackFiles) -> bool:
    path = files.checkpoint()
    if path is None:
        return False
    if not path.name.endswith(".json"):
        return True  # compressed: no cheap look inside
    try:
        return b'"pending_operations"' in path.read_bytes()
    except OSError:
        return True


def _valid_side_file(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_bytes() or b"null"), dict)
    except (OSError, ValueError):
        return False


def _temporary(path: Path) -> bool:
    # fileblob's temporaries end in ".<nanoseconds in hex>.tmp".
    stem = path.name[: -len(".tmp")]
    _, _, stamp = stem.rpartition(".")
    return bool(stamp) and all(c in "0123456789abcdef" for c in stamp)


def _checkpoint(files: StackFiles) -> tuple[list[Damage], tuple[PendingOperation, ...] | None]:
    path = files.checkpoint()
    if path is None:
        return [], None
    backup = path.with_name(path.name + ".bak")
    restore = (f"Restore the backup the backend kept (`cp {backup} {path}`) and run `gitops up --refresh`, "
               f"which reads the cluster again" if backup.is_file() else
               "Import a good copy with `pulumi stack import`, then run `gitops up --refresh`")
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        elif path.name.endswith(".zst"):
            return [], None  # no zstd reader here; the engine reports its own errors for it
        document = json.loads(raw)
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as e:
        problem = (f"the checkpoint cannot be read ({type(e).__name__}: {str(e)[:120]}); an interrupted run "
                   "cannot cut it short, so this is not repaired automatically")
        return [Damage(path, problem, restore)], None
    latest = (document.get("checkpoint") or {}).get("latest") if isinstance(document, dict) else None
    if latest is None:
        return [], ()
    if not isinstance(latest, dict):
        return [Damage(path, "the checkpoint has no deployment in it", restore)], None
    return [], pending_operations(latest)


def pending_operations(deployment: Mapping[str, Any]) -> tuple[PendingOperation, ...]:
    """The pending operations of a deployment (a checkpoint's `latest`, or `pulumi stack export`'s)."""
    operations = []
    for op in deployment.get("pending_operations") or []:
        if isinstance(op, dict):
            found = op.get("resource")
            resource: dict[str, Any] = found if isinstance(found, dict) else {}
            operations.append(PendingOperation(type=str(op.get("type", "?")), urn=str(resource.get("urn", "?")),
                                               resource=resource))
    return tuple(operations)
