"""Before a run: repair what a killed run of this stack left behind, or say why that is not safe.

Called holding the stack's run lock (`workspace.run_lock`), so no run of this project can be
writing; a Pulumi process that is alive (a `pulumi up` by hand) keeps its lock file, and then
nothing is touched. Each repair is reported with its reason; damage that cannot be proved to be a
leftover raises `StateDamagedError`, naming the file and the manual step.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto
from pulumi.automation._stack import ImportResource  # the TypedDict `import_resources` takes; not re-exported

from ..errors import EngineError, StateDamagedError
from ..intent import Intent, read_intent
from ..program import IMAGE_TAGS_ENV, REPLAY_ENV, VERIFIED_ENV
from ..state.leftovers import Leftover, PendingOperation, pending_operations, repair, survey
from ..state.locks import PulumiLock
from .run import refresh, up
from .workspace import backend, cli_error, intent_path, project_name, select_stack


@dataclass(frozen=True)
class Resolved:
    """A killed run's pending operations, settled."""

    pending: tuple[PendingOperation, ...] = ()
    adopted: tuple[str, ...] = ()
    """URNs of objects it had created, now in the state."""
    absent: tuple[str, ...] = ()
    """URNs of pending creates whose object was not there (or could not be imported)."""


@dataclass(frozen=True)
class Settled:
    """A run killed before its end (so it saved no state), settled from its intent."""

    commit: str
    replayed: int
    """Objects of its commit the state lacked, applied again (awaiting nothing) so the state has them."""
    drifted: int
    """Objects the refresh after it found changed or gone (what the killed run updated or deleted)."""


@dataclass(frozen=True)
class Recovery:
    repaired: tuple[Leftover, ...] = ()
    resolved: Resolved = Resolved()
    settled: Settled | None = None
    busy: tuple[PulumiLock, ...] = ()
    """Live Pulumi runs that hold the stack: nothing was touched."""

    @property
    def pending(self) -> tuple[PendingOperation, ...]:
        return self.resolved.pending

    @property
    def changed(self) -> bool:
        return bool(self.repaired or self.pending or self.settled)

    def lines(self) -> list[str]:
        """One line per repair, for a log or a terminal."""
        out = [f"repaired {leftover.path}: removed the {leftover.why}" for leftover in self.repaired]
        if self.pending:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(Counter(op.type for op in self.pending).items()))
            out.append(f"resolved the pending operations of an interrupted run ({kinds}): "
                       f"{len(self.resolved.adopted)} object(s) it had created adopted into the state, "
                       f"{len(self.resolved.absent)} it had not created dropped, the rest refreshed from the cluster")
        if self.settled:
            out.append(f"settled a run of commit {self.settled.commit[:12]} that was killed before it saved the "
                       f"state: {self.settled.replayed} object(s) of that commit the state lacked applied again "
                       f"so the state has them, then {self.settled.drifted} object(s) it had changed or deleted "
                       f"refreshed from the cluster")
        out += [f"the stack is held by a live Pulumi run (pid {lock.pid} on {lock.hostname}); left as it is"
                for lock in self.busy]
        return out


def recover(project_dir: Path, stack_name: str, env: Mapping[str, str], *, deep: bool = False,
            stack: Callable[[], auto.Stack] | None = None) -> Recovery:
    """Repair a killed run's leftovers of one stack. `deep` reads the checkpoint even when no
    killed run is in sight (the watcher's start, and after a failed run); `stack` selects the
    stack lazily, only when pending operations need the engine."""
    files = backend(env).stack_files(project_name(project_dir), stack_name, base=project_dir)
    select = stack or (lambda: select_stack(project_dir, stack_name, env))
    if files is None:
        # Another backend keeps its own files and locks; only pending operations are ours to resolve.
        resolved = Resolved()
        if deep:
            deployment = select().export_stack().deployment or {}
            resolved = _resolve(select, pending_operations(deployment))
        return Recovery(resolved=resolved, settled=_settle(select, intent_path(project_dir, stack_name, env)))
    found = survey(files, deep=deep)
    if found.busy:
        return Recovery(busy=found.live_locks)
    if found.damage:
        raise StateDamagedError(stack_name, found.damage)
    repaired = tuple(repair(found))
    return Recovery(repaired=repaired, resolved=_resolve(select, found.pending or ()),
                    settled=_settle(select, intent_path(project_dir, stack_name, env)))


def _settle(select: Callable[[], auto.Stack], path: Path) -> Settled | None:
    """Settle a run killed before its end from its intent.

    Its state was never saved: the cluster may hold objects it created that the state does not
    know (which a later commit could then never prune), and objects it updated or deleted. So the
    objects of its commit that the state lacks are applied again with a targeted `up` of that
    commit, which takes existing ones over and creates the rest, awaiting no readiness: the next
    `up` updates them to git's commit and waits for them, or deletes them. Then a refresh reads
    the cluster for the rest. A kill during either leaves the intent, and the next turn does both
    again. The intent goes only when both are done."""
    intent = read_intent(path)
    if intent is None:
        return None
    stack = select()
    present = {r.get("urn") for r in (stack.export_stack().deployment or {}).get("resources") or []}
    missing = [urn for urn in intent.urns if urn not in present]
    if missing:
        # The provider is not named: the engine always includes it (creating it if the state lacks
        # it), and naming it would take every object that uses it as a target too.
        up(stack, intent.commit, on_output=None, program_env=_replay_env(intent), targets=missing)
    drifted = refresh(stack, preview_only=False).drifted
    path.unlink(missing_ok=True)
    return Settled(intent.commit, len(missing), len(drifted))


def _replay_env(intent: Intent) -> dict[str, str]:
    # The killed run's commit had passed the dry run before its program registered anything.
    env = {VERIFIED_ENV: intent.commit, REPLAY_ENV: "1"}
    if intent.image_tags:
        env[IMAGE_TAGS_ENV] = intent.image_tags
    return env


def _resolve(select: Callable[[], auto.Stack], pending: tuple[PendingOperation, ...]) -> Resolved:
    """Settle a killed run's pending operations with the engine.

    A pending create is an object the killed run may or may not have created. The ones that exist
    are adopted into the state with Pulumi's own import, so the next `up` updates them if git still
    has them and deletes them if not: nothing is lost from the state, nothing is left behind in the
    cluster. Then a refresh drops the pending records (the engine keeps pending creates until told
    to) and settles interrupted updates and deletes against the cluster."""
    if not pending:
        return Resolved()
    stack = select()
    adopted, missed = _adopt(stack, [op for op in pending if op.type == "creating"])
    try:
        stack.refresh(show_secrets=False, color="never", clear_pending_creates=True, on_output=None,
                      suppress_progress=True)
    except auto.errors.CommandError as e:
        raise EngineError(f"cannot resolve the pending operations of an interrupted run: {cli_error(e)}") from e
    return Resolved(pending, adopted, missed)


def _adopt(stack: auto.Stack, creates: list[PendingOperation]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Import the objects of pending creates that exist; (adopted, not there) by logical name."""
    imports: list[ImportResource] = []
    names: dict[str, str] = {}
    for op in creates:
        entry = _import_entry(op, names)
        if entry is not None:
            imports.append(entry)
    if not imports:
        return (), tuple(op.urn for op in creates)
    # Objects the killed run never created "do not exist" and fail the import; what was there is
    # imported all the same, and the state says which.
    with contextlib.suppress(auto.errors.CommandError):
        stack.import_resources(resources=imports, name_table=names, protect=False, generate_code=False,
                               show_secrets=False, on_output=lambda _: None)
    present = {r.get("urn") for r in (stack.export_stack().deployment or {}).get("resources") or []}
    adopted = tuple(op.urn for op in creates if op.urn in present)
    return adopted, tuple(op.urn for op in creates if op.urn not in present)


def _import_entry(op: PendingOperation, names: dict[str, str]) -> ImportResource | None:
    """What `pulumi import` needs for one Kubernetes object: its type, logical name, the provider's
    id for it (`namespace/name`, or `name`), and the same provider and parent the program uses."""
    resource = op.resource
    metadata = (resource.get("inputs") or {}).get("metadata") or {}
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or "::" not in op.urn:
        return None
    namespace = metadata.get("namespace")
    entry = ImportResource(
        type=str(resource.get("type")), name=op.urn.rsplit("::", 1)[1],
        id=f"{namespace}/{metadata['name']}" if isinstance(namespace, str) and namespace else metadata["name"])
    provider = str(resource.get("provider") or "")
    if provider:
        names.setdefault("provider", provider.rsplit("::", 1)[0])
        entry["provider"] = "provider"
    parent = str(resource.get("parent") or "")
    if parent and "::pulumi:pulumi:Stack::" not in parent:
        names.setdefault(f"parent{len(names)}", parent)
        entry["parent"] = next(k for k, v in names.items() if v == parent)
    return entry
