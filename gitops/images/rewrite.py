"""Write chosen tags back into manifest text, changing only the marked scalars.

Pure. Every other character of the file stays as it was: comments, key order, indentation,
trailing whitespace, CRLF line endings, a missing final newline. A replaced scalar keeps its
quoting style; a plain scalar is double-quoted only when the new value could not be written
plain without changing what YAML reads (e.g. a tag `1.10` would otherwise become a number).

Each edit names the text it expects at its position, so a file that changed since the markers
were read is refused rather than corrupted.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

import yaml

from ..errors import ManifestError, Problem, SettingsError
from .markers import Marker, line_starts
from .reference import ImageRef, is_tag, parse_image

# Characters a plain scalar may hold without any context rule applying (no `: `, ` #`, flow
# indicators, leading indicators); every image reference and tag fits.
_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Edit:
    """Replace the scalar written as `old_source` at `line`:`column` with `new_value`."""

    path: str
    line: int
    """1-based."""
    column: int
    """0-based character offset in the line."""
    old_source: str
    """The scalar exactly as written, quotes included."""
    new_value: str
    """The new value, unquoted; the old quoting style is kept."""


def _implicit_tag(plain: str) -> str:
    # types-PyYAML leaves BaseResolver.resolve unannotated.
    return str(_RESOLVER.resolve(yaml.ScalarNode, plain, (True, False)))  # type: ignore[no-untyped-call]


def render_scalar(old_source: str, new_value: str) -> str:
    """`new_value` written in the style of `old_source`."""
    if old_source.startswith('"'):
        return _double_quoted(new_value)
    if old_source.startswith("'"):
        return "'" + new_value.replace("'", "''") + "'"
    if (_SAFE_PLAIN.fullmatch(new_value) and not new_value.endswith(":")
            and (_implicit_tag(new_value) == _STR_TAG or _implicit_tag(new_value) == _implicit_tag(old_source))):
        return new_value
    return _double_quoted(new_value)


def _double_quoted(value: str) -> str:
    # JSON's escapes are a subset of YAML's double-quoted ones; keep non-ASCII as written.
    return json.dumps(value, ensure_ascii=False)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with each edit applied; ManifestError (every problem) if any edit does not fit."""
    starts = line_starts(text)
    problems: list[Problem] = []
    placed: dict[int, Edit] = {}
    for edit in edits:
        if not 1 <= edit.line <= len(starts):
            problems.append(Problem(edit.path, edit.line, f"line {edit.line} is past the end of the file"))
            continue
        offset = starts[edit.line - 1] + edit.column
        found = text[offset:offset + len(edit.old_source)]
        if found != edit.old_source or not edit.old_source:
            problems.append(Problem(edit.path, edit.line, f"expected {edit.old_source!r} at column {edit.column + 1}, "
                                                          f"found {found!r}: the file changed since it was read"))
            continue
        other = placed.get(offset)
        if other is not None and other != edit:
            problems.append(Problem(edit.path, edit.line, f"two different edits for {edit.old_source!r}: "
                                                          f"{other.new_value!r} and {edit.new_value!r}"))
            continue
        placed[offset] = edit
    ordered = sorted(placed.items())
    for (a, first), (b, second) in pairwise(ordered):
        if a + len(first.old_source) > b:
            problems.append(Problem(second.path, second.line, f"edit of {second.old_source!r} overlaps "
                                                              f"the edit of {first.old_source!r}"))
    if problems:
        raise ManifestError(problems)
    pieces = []
    pos = 0
    for offset, edit in ordered:
        pieces.append(text[pos:offset])
        pieces.append(render_scalar(edit.old_source, edit.new_value))
        pos = offset + len(edit.old_source)
    pieces.append(text[pos:])
    return "".join(pieces)


def updates_for(markers: Iterable[Marker], chosen: Mapping[str, str]) -> list[Edit]:
    """The edits that bring each unlocked marker to its policy's choice.

    `chosen` maps a marker's `policy_ref` to a tag (`1.4.0`) or a full image (`repo:1.4.0`).
    - `image` fields get the new tag and keep the name as written (a digest is dropped: it
      pinned the old tag); a full image from another repository replaces the name as well.
    - `tag` fields get the tag.
    - `name` fields change only when the choice is a full image from another repository.
    Markers already at the choice, locked ones and those without a choice produce no edit.
    """
    edits = []
    for marker in markers:
        if marker.locked or marker.policy_ref not in chosen:
            continue
        choice = chosen[marker.policy_ref]
        new_value = _new_value(marker, choice)
        if new_value is not None and new_value != marker.value:
            edits.append(Edit(marker.path, marker.line, marker.column, marker.source, new_value))
    return edits


def _new_value(marker: Marker, choice: str) -> str | None:
    tag, image = _split_choice(marker, choice)
    if marker.field == "tag":
        return tag
    current = _parse(marker, marker.value)
    moved = image is not None and image.canonical_name != current.canonical_name
    if marker.field == "name":
        return image.name if moved and image is not None else None
    if moved and image is not None:
        return str(image)
    if current.tag == tag:
        return None  # already there; a pinned digest stays pinned
    return str(current.with_tag(tag))


def _split_choice(marker: Marker, choice: str) -> tuple[str, ImageRef | None]:
    if is_tag(choice):
        return choice, None
    image = _parse(marker, choice)
    if image.tag is None:
        raise ManifestError([Problem(marker.path, marker.line,
                                     f"the choice for {marker.policy_ref} ({choice!r}) has no tag")])
    return image.tag, image


def _parse(marker: Marker, text: str) -> ImageRef:
    try:
        return parse_image(text)
    except SettingsError as e:
        raise ManifestError([Problem(marker.path, marker.line, f"{marker.policy_ref}: {e}")]) from e
