"""One image scan: the config repo's files at a commit -> the marked fields, each with the tag its
policy picks now. I/O at the edges (the registry); the choosing is `images.automation`.

One `RegistryClient` lives as long as the scanner, so bearer tokens are reused across scans, and
a registry that asked us to back off (429 `Retry-After`) is not asked again until then.
"""
from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..desired import FileSource, desired_state_from_files, read_desired_state
from ..errors import RegistryError
from ..settings import StackSettings
from ..source.git import SourceFile
from . import automation as auto
from .markers import Marker
from .policy import TagPolicy
from .reference import parse_image
from .registry import CredentialStore, RegistryClient


@dataclass(frozen=True)
class ScanResult:
    commit: str
    checks: tuple[auto.ImageCheck, ...]
    errors: Mapping[str, str]
    """Image repository -> why its tags could not be listed this time."""

    @property
    def moving(self) -> tuple[auto.ImageCheck, ...]:
        return tuple(c for c in self.checks if c.moves)

    @property
    def choices(self) -> dict[str, str]:
        return auto.choices(self.checks)


class ImageScanner:
    def __init__(self, env: Mapping[str, str], insecure_registries: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic, client: RegistryClient | None = None):
        self.client = client or RegistryClient(CredentialStore.from_environment(env),
                                               insecure_hosts=insecure_registries)
        self.clock = clock
        self._backoff: dict[str, float] = {}
        """Registry host -> monotonic time before which it is not asked again."""
        self._read: tuple[tuple[object, ...], frozenset[str]] | None = None
        """The last commit read (with the settings it was read with) and its files holding objects."""

    def scan(self, files: Sequence[SourceFile], commit: str, settings: StackSettings,
             settings_where: str, source: FileSource | None = None) -> ScanResult:
        """ManifestError for malformed markers, SettingsError for bad policies: both before any
        registry request, so a typo costs nothing. `source` (the files' own) lets kustomize
        folders be built, so markers in their files are found too."""
        markers = auto.find_all_markers(self._manifest_files(files, commit, settings, source))
        policies = self.policies(files, settings, settings_where)
        self.client.begin_scan()
        tags: dict[str, Sequence[str] | str] = {}
        errors: dict[str, str] = {}
        for image in auto.images_to_list(markers, policies):
            host = parse_image(image).api_host
            until = self._backoff.get(host, 0.0)
            if until > self.clock():
                errors[image] = tags[image] = f"registry {host} asked to wait; next try in {until - self.clock():.0f} s"
                continue
            try:
                tags[image] = self.client.list_tags(image)
            except RegistryError as e:
                errors[image] = tags[image] = str(e)
                if e.retry_after:
                    self._backoff[host] = self.clock() + e.retry_after
        return ScanResult(commit, auto.plan_checks(markers, policies, tags), errors)

    def _manifest_files(self, files: Sequence[SourceFile], commit: str, settings: StackSettings,
                        source: FileSource | None) -> list[SourceFile]:
        """The files that hold the commit's objects, once the commit has been read as `up` reads it.

        The files are untrusted and markers are read in this process: only a commit whose files
        passed the bounded parse and validation (in a child process) is scanned, so no file can
        crash, exhaust or hang the watcher here. ManifestError otherwise, with every problem. The
        last commit read is remembered: scans of an unchanged commit cost no parse.
        """
        key = (commit, settings.source.path, settings.program.namespace, settings.program.cluster_kinds)
        if self._read is None or self._read[0] != key:
            state = read_desired_state(source, commit, settings) if source is not None else \
                desired_state_from_files(files, repo="", commit=commit, path=settings.source.path,
                                         namespace=settings.program.namespace,
                                         cluster_kinds=settings.program.cluster_kinds)
            self._read = (key, frozenset(m.origin.path for m in state.manifests))
        holding = self._read[1]
        return [f for f in files if f.path in holding]

    @staticmethod
    def policies(files: Sequence[SourceFile], settings: StackSettings,
                 settings_where: str) -> dict[str, TagPolicy]:
        folder = "" if settings.source.path in ("", ".") else settings.source.path.strip("/")
        policy_path = posixpath.normpath(posixpath.join(folder, settings.images.policy_file))
        policy_file = next((f for f in files if f.path == policy_path), None)
        return auto.load_policies(settings.images.policies, settings_where, policy_file)

    @property
    def requests_made(self) -> Mapping[str, int]:
        return self.client.requests_made

    def close(self) -> None:
        self.client.close()


def describe(check: auto.ImageCheck) -> dict[str, object]:
    """One line of `gitops images` / one entry of the watcher's log."""
    marker: Marker = check.marker
    return {"location": marker.location, "subject": marker.subject, "container": marker.container,
            "field": marker.field,
            "policy": check.policy.name if check.policy and check.policy.name else marker.policy_ref,
            "image": check.image, "current": check.current, "chosen": check.chosen, "locked": marker.locked,
            "moves": check.moves, "reason": check.problem or (check.selection.reason if check.selection else "")}
