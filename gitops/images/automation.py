"""Markers + policies + tag lists -> which image fields move to which tag, and the files after.

Pure. The scanner (`images.scan`) does the I/O around it: reading the files at a commit and
listing tags; the watcher then writes the choices back to git or hands them to the program.
"""
from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ManifestError, Problem, SettingsError
from ..manifests.load import IGNORE_FILE, load_documents, select_manifest_files
from ..source.git import SourceFile
from .markers import Marker, find_markers
from .message import ImageUpdate
from .policy import Selection, TagPolicy, policy_from_mapping, select_tag
from .reference import parse_image
from .rewrite import apply_edits, updates_for


@dataclass(frozen=True)
class ImageCheck:
    """One marked field, the policy it follows, and what that policy picks now."""

    marker: Marker
    policy: TagPolicy | None
    image: str
    """The repository whose tags the policy chooses from."""
    current: str
    """The tag written in the field now."""
    selection: Selection | None = None
    problem: str | None = None
    """Why no choice could be made: an unknown policy, a registry error."""

    @property
    def chosen(self) -> str | None:
        return self.selection.tag if self.selection else None

    @property
    def moves(self) -> bool:
        """The field would be rewritten: an unlocked marker whose policy picks another tag.
        A `name` field holds no tag, so a tag choice never rewrites it (see `rewrite.updates_for`)."""
        return (not self.marker.locked and self.marker.field != "name"
                and self.chosen is not None and self.chosen != self.current)


def marked_files(files: Sequence[SourceFile], path: str) -> list[SourceFile]:
    """The files that may carry markers: the manifest files of the desired state."""
    folder = "" if path in ("", ".") else path.strip("/")
    by_path = {f.path: f for f in files}
    ignore = by_path.get(posixpath.join(folder, IGNORE_FILE) if folder else IGNORE_FILE)
    chosen = select_manifest_files(by_path, folder, ignore.data.decode("utf-8", "replace") if ignore else None)
    return [by_path[p] for p in chosen]


def find_all_markers(files: Iterable[SourceFile]) -> tuple[Marker, ...]:
    """Markers of every file; ManifestError lists the problems of all files at once."""
    markers: list[Marker] = []
    problems: list[Problem] = []
    for file in files:
        try:
            markers.extend(find_markers(file.path, file.data))
        except ManifestError as e:
            problems.extend(e.problems)
    if problems:
        raise ManifestError(problems)
    return tuple(markers)


def load_policies(declared: Mapping[str, object], declared_where: str,
                  policy_file: SourceFile | None) -> dict[str, TagPolicy]:
    """Policies from the stack settings and the config repo's policy file (`policies:` mapping).
    A name in both is an error: which one wins would be a guess."""
    policies = {name: policy_from_mapping(name, data, declared_where) for name, data in declared.items()}
    if policy_file is None:
        return policies
    document = _policy_document(policy_file)
    table = document.get("policies") if isinstance(document, dict) else None
    if not isinstance(table, dict):
        raise SettingsError(f"{policy_file.path}: expected a `policies:` mapping of name -> policy")
    for name, data in table.items():
        if name in policies:
            raise SettingsError(f"{policy_file.path}: policies.{name} is also declared in {declared_where}")
        policies[name] = policy_from_mapping(name, data, f"{policy_file.path}: policies")
    return policies


def policy_for(marker: Marker, policies: Mapping[str, TagPolicy]) -> TagPolicy | None:
    """A v1 marker carries its own policy; a v2 reference `ns:name` matches a policy named
    `ns:name` or, as Flux users write them without namespaces here, `name`."""
    if marker.inline_policy is not None:
        return marker.inline_policy
    if marker.policy_ref in policies:
        return policies[marker.policy_ref]
    return policies.get(marker.policy_ref.rpartition(":")[2])


def tag_of(marker: Marker) -> str:
    if marker.field == "tag":
        return marker.value
    if marker.field == "name":
        return ""
    ref = parse_image(marker.value)
    return ref.tag or ""


def image_of(marker: Marker, policy: TagPolicy) -> str:
    if policy.image:
        return policy.image
    return parse_image(marker.value).name if marker.field != "tag" else ""


def plan_checks(markers: Iterable[Marker], policies: Mapping[str, TagPolicy],
                tags: Mapping[str, Sequence[str] | str]) -> tuple[ImageCheck, ...]:
    """Each marker against its policy. `tags` maps an image repository to its tag list, or to
    the error that kept it from being listed."""
    checks = []
    for marker in markers:
        policy = policy_for(marker, policies)
        if policy is None:
            known = ", ".join(sorted(policies)) or "none"
            checks.append(ImageCheck(marker, None, "", tag_of(marker),
                                     problem=f"no image policy named {marker.policy_ref!r} (known: {known})"))
            continue
        image = image_of(marker, policy)
        if not image:
            checks.append(ImageCheck(marker, policy, "", tag_of(marker),
                                     problem=f"policy {policy.name!r} names no image for this tag-only field"))
            continue
        listed = tags.get(image)
        if listed is None or isinstance(listed, str):
            checks.append(ImageCheck(marker, policy, image, tag_of(marker), problem=listed or "tags not listed"))
            continue
        checks.append(ImageCheck(marker, policy, image, tag_of(marker), select_tag(policy, listed)))
    return tuple(checks)


def images_to_list(markers: Iterable[Marker], policies: Mapping[str, TagPolicy]) -> list[str]:
    """Each repository once, however many fields follow it: one tag list per image per scan."""
    seen: dict[str, None] = {}
    for marker in markers:
        policy = policy_for(marker, policies)
        if policy is not None and (image := image_of(marker, policy)):
            seen.setdefault(image, None)
    return list(seen)


def choices(checks: Iterable[ImageCheck]) -> dict[str, str]:
    """policy_ref -> the tag to write, for every field that moves."""
    return {c.marker.policy_ref: c.chosen for c in checks if c.moves and c.chosen}


def updates(checks: Iterable[ImageCheck]) -> list[ImageUpdate]:
    """For the commit message: each image's old and new tag and the files it is written in."""
    grouped: dict[tuple[str, str, str], set[str]] = {}
    for check in checks:
        if check.moves and check.chosen:
            grouped.setdefault((check.image, check.current, check.chosen), set()).add(check.marker.path)
    return [ImageUpdate(image, old, new, tuple(sorted(paths))) for (image, old, new), paths in sorted(grouped.items())]


def rewrite_file(path: str, data: bytes, chosen: Mapping[str, str]) -> bytes | None:
    """The file with its marked fields at the chosen tags (markers found afresh in `data`, so
    it works on a newer head too); None when nothing in it changes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    edits = updates_for(find_markers(path, text), chosen)
    if not edits:
        return None
    # Keep the file's own line endings: decode/encode round-trips every byte but the edits.
    return apply_edits(text, edits).encode("utf-8")


def apply_choices(files: Sequence[SourceFile], chosen: Mapping[str, str], path: str) -> list[SourceFile]:
    """The files with every marked field at its chosen tag (read-only mode: nothing is written).

    Only the files the scanner reads (`marked_files` under the stack's `path`) are touched, so an
    ignored or hidden file (a Helm template is not even YAML) can never fail the deploy."""
    if not chosen:
        return list(files)
    candidates = {f.path for f in marked_files(files, path)}
    result = []
    for file in files:
        new = rewrite_file(file.path, file.data, chosen) if file.path in candidates else None
        result.append(SourceFile(file.path, new) if new is not None else file)
    return result


# A policy file names a few policies; past this it is not one (and is not read into memory whole).
POLICY_FILE_MAX_BYTES = 1024 * 1024


def _policy_document(policy_file: SourceFile) -> object:
    """The policy file's one document, read with the manifests' bounded parser (the file is in the
    config repo, so it is as untrusted as they are: no alias bomb or nesting can take the watcher down)."""
    if policy_file.size > POLICY_FILE_MAX_BYTES:
        raise SettingsError(f"{policy_file.path}: {policy_file.size} bytes; a policy file may hold at most "
                            f"{POLICY_FILE_MAX_BYTES // 1024} KiB")
    documents, problems = load_documents(policy_file.path, policy_file.data)
    if problems:
        raise SettingsError("; ".join(str(p) for p in problems[:3]))
    if len(documents) > 1:
        raise SettingsError(f"{policy_file.path}:{documents[1].line}: one document expected, "
                            "with a `policies:` mapping")
    return documents[0].data if documents else {}


def encode_choices(chosen: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(chosen.items())), separators=(",", ":"))


def decode_choices(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"image choices are not valid JSON: {e}") from e
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingsError("image choices must map policy names to tags")
    return value
