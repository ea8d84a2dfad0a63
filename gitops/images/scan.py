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
from ..manifests.isolate import load_isolated
from ..manifests.load import KUSTOMIZE_FILES, MANIFEST_SUFFIXES
from ..renderers import Built, helm, kustomize
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
        self._read: tuple[tuple[object, ...], frozenset[str], tuple[SourceFile, ...]] | None = None
        """The last commit read (with the settings it was read with), its files holding objects or
        marks, and those of them outside the stack's path."""

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

        A kustomize folder's objects come from its resources, wherever in the repo they are (an
        overlay's `../base`), and its own files mark fields too (`images: - newTag: 1.2.3 #
        {"$imagepolicy": ...}`, as Flux's image automation marks them): those are scanned as
        well, each once the bounded parser has read it.
        """
        key = (commit, settings.source.path, settings.program.namespace, settings.program.cluster_kinds)
        if self._read is None or self._read[0] != key:
            state = read_desired_state(source, commit, settings) if source is not None else \
                desired_state_from_files(files, repo="", commit=commit, path=settings.source.path,
                                         namespace=settings.program.namespace,
                                         cluster_kinds=settings.program.cluster_kinds)
            holding = {m.origin.path for m in state.manifests}
            outside = _kustomized(files, holding, commit, settings, source) if source is not None else ()
            self._read = (key, frozenset(holding | {f.path for f in outside}), outside)
        _, holding_paths, outside_files = self._read
        return [f for f in files if f.path in holding_paths] + list(outside_files)

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


def _kustomized(files: Sequence[SourceFile], holding: set[str], commit: str, settings: StackSettings,
                source: FileSource) -> tuple[SourceFile, ...]:
    """Adds to `holding` the files of the kustomize folders under the path that the bounded
    parser reads as YAML, and returns the files outside the path that hold objects."""
    folder = "" if settings.source.path in ("", ".") else settings.source.path.strip("/")
    paths = [f.path for f in files]
    if settings.render.helm_chart or helm.is_chart(paths, folder):
        return ()
    roots = kustomize.kustomize_roots(paths, folder)
    if not roots:
        return ()
    own = [f for f in files if f.unread_size is None and kustomize.under(f.path, roots) and f.path not in holding
           and (f.path.endswith(MANIFEST_SUFFIXES) or posixpath.basename(f.path) in KUSTOMIZE_FILES)]
    if own:
        _, problems = load_isolated({}, folder, None, rendered={f.path: f.data for f in own})
        refused = {p.path for p in problems}
        holding.update(f.path for f in own if f.path not in refused)
    # Objects of a remote base stay placed at the build's output: no file of this repo to read.
    read = set(paths) | {Built("kustomize", root, b"", None).name for root in roots}
    outside: list[SourceFile] = []
    directories: list[str] = []
    for directory in sorted({posixpath.dirname(p) for p in holding if p not in read}):
        if not any(directory == d or directory.startswith(d + "/") for d in directories):
            directories.append(directory)  # sorted: a parent comes first, and is read whole
    for directory in directories:
        outside += [f for f in source.read(commit, directory or ".") if f.path in holding and f.path not in read]
    return tuple(outside)
