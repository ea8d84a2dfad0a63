"""Tag policies: which of a repository's tags an image should follow, and why.

Pure. A policy filters tags (Flux v1 `glob`, a regex `pattern`), turns each into a sort key
(`extract`, as Flux v2's `filterTags.extract`) and picks the best by `order`:

- `semver`: the highest version inside a range. Ranges follow Masterminds/semver v3, which
  Flux v2 uses (`^1.2`, `~1.2.3`, `>=1.0 <2.0`, `1.x`, `1.2.3 - 1.4`, `||`, ...). Tags are read
  as Flux reads them: strict `MAJOR.MINOR.PATCH` with an optional leading `v`, so a date or a
  build number (`20240115`, `1234`) is never mistaken for a huge major version; partial
  versions (`1.2` = 1.2.0) are accepted in ranges only. A pre-release tag is a candidate only
  for an `||` branch that names a pre-release itself (`>=1.2.3-0`, `^2.0.0-rc`).
- `numerical`: keys read as decimal numbers; anything else is skipped.
- `alphabetical`: plain string order (RFC 3339-like timestamps sort by time).

`direction: desc` (the default) picks the largest key, `asc` the smallest. Flux v2 spells the
same default `order: asc`; our policies name the direction of the sort that puts the winner
first.

Every selection comes with a reason a person can read ("1.4.2 is the highest of 37 tags
matching ^1.2 (3 pre-releases excluded)"). Each tag is parsed once and ranges are reduced to
intervals when parsed, so 10,000 tags take some tens of milliseconds.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from ..errors import SettingsError
from .reference import parse_image

ORDERS = ("semver", "numerical", "alphabetical")
DIRECTIONS = ("desc", "asc")
MAPPING_KEYS = ("image", "semver", "pattern", "extract", "order", "direction")
_POLICY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?")


@dataclass(frozen=True)
class TagPolicy:
    """How to choose a tag for one image repository."""

    name: str
    image: str = ""
    """The repository the policy follows; empty means the marked container's own image."""
    semver: str | None = None
    """A version range; None with `order: semver` means every release (`*`)."""
    pattern: str | None = None
    """A regex a tag must match (searched, as Go's MatchString does)."""
    extract: str | None = None
    """A template (`$1`, `$ts`, `${ts}`) built from the pattern's match: the sort key."""
    order: str = "semver"
    direction: str = "desc"
    glob: str | None = None
    """A Flux v1 glob the whole tag must match; `*` is the only wildcard."""


@dataclass(frozen=True)
class Selection:
    """The tag a policy chose among the tags a registry listed, and why."""

    tag: str | None
    reason: str
    considered: int
    """Tags given."""
    matched: int = 0
    """Tags that passed the filters and the range: the candidates."""
    filtered_out: int = 0
    """Tags the glob or pattern left out."""
    unparsable: int = 0
    """Tags skipped because the order could not read them (not semver, not a number)."""
    rejected_prerelease: int = 0
    """Pre-releases inside the range, excluded because the range does not ask for them."""
    key: str | None = None
    """The chosen tag's sort key when it differs from the tag (after `extract`)."""


# --- Versions ------------------------------------------------------------------------------

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
# Loose about the pre-release here (checked by _PRERELEASE when there is one): most tags have
# none, and this regex runs once per tag.
_VERSION = re.compile(
    rf"v?({_NUM})\.({_NUM})\.({_NUM})(?:-([0-9A-Za-z.-]+?))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_PRERELEASE = re.compile(rf"(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*")

VersionKey = tuple[Any, ...]
_RELEASE_MARK = 1  # releases sort after every pre-release of the same MAJOR.MINOR.PATCH


def _key(major: int, minor: int, patch: int, pre: str | None) -> VersionKey:
    if not pre:
        return (major, minor, patch, _RELEASE_MARK, ())
    # SemVer 2.0 precedence: numeric identifiers compare as numbers and sort before
    # alphanumeric ones; a longer list wins when the shorter is its prefix (tuple order).
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def _floor(major: int, minor: int, patch: int) -> VersionKey:
    """Below every version (pre-releases included) of MAJOR.MINOR.PATCH."""
    return (major, minor, patch, 0, ())


def parse_version(tag: str) -> tuple[VersionKey, bool] | None:
    """A tag's sort key and whether it is a pre-release; None for a non-semver tag.

    Build metadata is ignored, as SemVer says; `v1.2.3` and `1.2.3` are the same version.
    """
    m = _VERSION.fullmatch(tag)
    if m is None:
        return None
    major, minor, patch, pre = m.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), _RELEASE_MARK, ()), False
    if not _PRERELEASE.fullmatch(pre):
        return None
    return _key(int(major), int(minor), int(patch), pre), True


# --- Ranges (Masterminds/semver v3 constraints) ---------------------------------------------

_WILD = r"[xX*]"
_PART = rf"[0-9]+|{_WILD}"
_CV = (rf"v?({_PART})(?:\.({_PART}))?(?:\.({_PART}))?"
       r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_CV_PLAIN = re.sub(r"\((?!\?)", "(?:", _CV)
_OPS = r"!=|>=|=>|<=|=<|~>|>|<|=|~|\^"
_COMPARATOR = re.compile(rf"\s*({_OPS}|)\s*{_CV}\s*")
_HYPHEN = re.compile(rf"\s*({_CV_PLAIN})\s+-\s+({_CV_PLAIN})\s*")


@dataclass(frozen=True)
class _Bound:
    """One comparator as an interval of version keys (or its complement, for `!=`)."""

    lo: VersionKey | None = None
    lo_inclusive: bool = True
    hi: VersionKey | None = None
    hi_inclusive: bool = False
    negate: bool = False

    def admits(self, key: VersionKey) -> bool:
        inside = ((self.lo is None or (key >= self.lo if self.lo_inclusive else key > self.lo))
                  and (self.hi is None or (key <= self.hi if self.hi_inclusive else key < self.hi)))
        return inside != self.negate


_ANY = _Bound()


@dataclass(frozen=True)
class _Branch:
    """One `||` alternative: the intersection of its comparators, as one interval less the
    versions its `!=` comparators exclude."""

    interval: _Bound
    excluded: tuple[_Bound, ...]
    allows_prerelease: bool
    """Masterminds v3: pre-releases are candidates only for a branch that names one."""


def _intersect(bounds: list[_Bound], allows_prerelease: bool) -> _Branch:
    lo: VersionKey | None = None
    lo_inclusive = True
    hi: VersionKey | None = None
    hi_inclusive = False
    for b in bounds:
        if b.negate:
            continue
        if b.lo is not None and (lo is None or b.lo > lo or (b.lo == lo and not b.lo_inclusive)):
            lo, lo_inclusive = b.lo, b.lo_inclusive
        if b.hi is not None and (hi is None or b.hi < hi or (b.hi == hi and not b.hi_inclusive)):
            hi, hi_inclusive = b.hi, b.hi_inclusive
    excluded = tuple(_Bound(b.lo, b.lo_inclusive, b.hi, b.hi_inclusive) for b in bounds if b.negate)
    return _Branch(_Bound(lo, lo_inclusive, hi, hi_inclusive), excluded, allows_prerelease)


@dataclass(frozen=True)
class SemverRange:
    """A parsed range: `||` branches, each an interval of versions."""

    text: str
    branches: tuple[_Branch, ...]

    @property
    def asks_for_prereleases(self) -> bool:
        return any(b.allows_prerelease for b in self.branches)

    def admits(self, key: VersionKey, prerelease: bool, *, any_prerelease: bool = False) -> bool:
        """Whether a version is in the range; `any_prerelease` lifts the pre-release rule."""
        for branch in self.branches:
            if prerelease and not (branch.allows_prerelease or any_prerelease):
                continue
            if not branch.interval.admits(key):
                continue
            if branch.excluded and any(x.admits(key) for x in branch.excluded):
                continue
            return True
        return False

    def __str__(self) -> str:
        return self.text


def _comparator(op: str, parts: tuple[str | None, str | None, str | None], pre: str | None) -> _Bound:
    """Masterminds' meaning of one comparator, as an interval.

    Where Masterminds contradicts its own documentation (`^*`, `<=*` match only 0.0.x there),
    we follow the documentation: a wildcard major version means any version.
    """
    nums: list[int | None] = []
    for part in parts:
        # Everything after the first wildcard or missing part is a wildcard too.
        if part is None or part in "xX*" or (nums and nums[-1] is None):
            nums.append(None)
        else:
            nums.append(int(part))
    major, minor, patch = nums
    con = _key(major or 0, minor or 0, patch or 0, pre)
    dirty = patch is None

    if op == "<":
        return _Bound(hi=con)
    if op in (">=", "=>"):
        return _Bound(lo=con)
    if op == ">":
        if major is not None and minor is None:
            return _Bound(lo=_floor(major + 1, 0, 0))
        if major is not None and minor is not None and patch is None:
            return _Bound(lo=_floor(major, minor + 1, 0))
        return _Bound(lo=con, lo_inclusive=False)
    if op in ("<=", "=<"):
        if not dirty:
            return _Bound(hi=con, hi_inclusive=True)
        if major is None:
            return _ANY
        if minor is None:
            return _Bound(hi=_floor(major + 1, 0, 0))
        return _Bound(hi=_floor(major, minor + 1, 0))
    if op == "^":
        if major is None:
            return _ANY
        if major > 0 or minor is None:
            return _Bound(lo=con, hi=_floor(major + 1, 0, 0))
        if minor > 0 or patch is None:
            return _Bound(lo=con, hi=_floor(0, minor + 1, 0))
        return _Bound(lo=con, hi=_floor(0, 0, (patch or 0) + 1))
    if op in ("~", "~>") or (op in ("", "=", "!=") and dirty):
        if major is None:
            tilde = _ANY
        elif minor is None:
            tilde = _Bound(lo=con, hi=_floor(major + 1, 0, 0))
        elif op in ("~", "~>") and (major, minor, patch) == (0, 0, 0):
            tilde = _Bound(lo=con)  # Masterminds: ~0.0.0 is >=0.0.0
        else:
            tilde = _Bound(lo=con, hi=_floor(major, minor + 1, 0))
        if op == "!=":
            return _Bound(tilde.lo, tilde.lo_inclusive, tilde.hi, tilde.hi_inclusive, negate=True)
        return tilde
    exact = _Bound(lo=con, hi=con, hi_inclusive=True)  # "", "=" and "!=" on a full version
    return _Bound(con, True, con, True, negate=True) if op == "!=" else exact


@lru_cache(maxsize=256)
def parse_range(text: str) -> SemverRange:
    """`>=1.0.0 <2.0.0 || ^3` -> SemverRange; SettingsError names the part that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SettingsError("empty semver range")
    # `1.2 - 1.4` means `>=1.2, <=1.4`, before anything else (Masterminds does the same).
    rewritten = _HYPHEN.sub(lambda m: f" >={m.group(1)}, <={m.group(2)} ", text)
    branches = []
    for branch in rewritten.split("||"):
        bounds: list[_Bound] = []
        allows_pre = False
        pos = 0
        while True:
            m = _COMPARATOR.match(branch, pos)
            if m is None:
                part = branch[pos:].strip() or branch.strip() or "(empty)"
                raise SettingsError(f"invalid semver range {text!r}: cannot read {part!r}")
            op, major, minor, patch, pre = m.groups()
            bounds.append(_comparator(op, (major, minor, patch), pre))
            allows_pre = allows_pre or pre is not None
            pos = m.end()
            if pos == len(branch):
                break
            if branch[pos] == ",":
                pos += 1
            elif not branch[pos - 1].isspace():
                raise SettingsError(f"invalid semver range {text!r}: separate comparators with "
                                    f"a space or a comma near {branch[pos:].strip()!r}")
        branches.append(_intersect(bounds, allows_pre))
    return SemverRange(text.strip(), tuple(branches))


# --- Filters and keys ----------------------------------------------------------------------

_TEMPLATE_REF = re.compile(r"\$(?:(\$)|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _template(extract: str) -> tuple[str | int, ...]:
    """Go's regexp.Expand template as literals (str) and group references (int or `=name`)."""
    parts: list[str | int] = []
    pos = 0
    for m in _TEMPLATE_REF.finditer(extract):
        parts.append(extract[pos:m.start()])
        dollar, braced, bare = m.groups()
        if dollar:
            parts.append("$")
        else:
            name = braced or bare
            # Go: all digits without a leading zero is a group number, anything else a name.
            if name.isdigit() and not (len(name) > 1 and name[0] == "0"):
                parts.append(int(name))
            else:
                parts.append("=" + name)
        pos = m.end()
    parts.append(extract[pos:])
    return tuple(p for p in parts if p != "")


def _template_refs(extract: str) -> list[str | int]:
    return [p if isinstance(p, int) else p[1:] for p in _template(extract)
            if isinstance(p, int) or p.startswith("=")]


def _glob_regex(glob: str) -> re.Pattern[str]:
    # Flux v1 (ryanuber/go-glob): `*` matches any run of characters; nothing else is special.
    return re.compile(".*".join(re.escape(piece) for piece in glob.split("*")), re.DOTALL)


def _number(text: str) -> int | float | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        value: int | float = int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


@dataclass(frozen=True)
class _Compiled:
    glob: re.Pattern[str] | None
    pattern: re.Pattern[str] | None
    template: tuple[str | int, ...] | None
    range: SemverRange | None


@lru_cache(maxsize=256)
def _compile(policy: TagPolicy) -> _Compiled:
    if policy.order not in ORDERS:
        raise SettingsError(f"policy {policy.name}: unknown order {policy.order!r} (one of {', '.join(ORDERS)})")
    if policy.direction not in DIRECTIONS:
        raise SettingsError(f"policy {policy.name}: unknown direction {policy.direction!r} (asc or desc)")
    try:
        pattern = re.compile(policy.pattern) if policy.pattern is not None else None
    except re.error as e:
        raise SettingsError(f"policy {policy.name}: invalid pattern {policy.pattern!r}: {e}") from e
    return _Compiled(
        glob=_glob_regex(policy.glob) if policy.glob is not None else None,
        pattern=pattern,
        template=_template(policy.extract) if policy.extract is not None and pattern is not None else None,
        range=parse_range(policy.semver or "*") if policy.order == "semver" else None,
    )


def _filter(compiled: _Compiled, tags: list[str]) -> list[tuple[str, str]]:
    """(sort key text, tag) for each tag the glob and pattern let through."""
    if compiled.glob is None and compiled.pattern is None:
        return [(tag, tag) for tag in tags]
    out = []
    for tag in tags:
        if compiled.glob is not None and not compiled.glob.fullmatch(tag):
            continue
        if compiled.pattern is None:
            out.append((tag, tag))
            continue
        m = compiled.pattern.search(tag)
        if m is not None:
            out.append((_expand(compiled.template, m) if compiled.template else tag, tag))
    return out


def _expand(template: tuple[str | int, ...], m: re.Match[str]) -> str:
    out = []
    groups = m.re.groupindex
    for part in template:
        if isinstance(part, int):
            value = m.group(part) if part <= m.re.groups else None
        elif part.startswith("="):
            name = part[1:]
            value = m.group(name) if name in groups else None
        else:
            value = part
        out.append(value or "")
    return "".join(out)


# --- Selection -----------------------------------------------------------------------------

def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _filter_text(policy: TagPolicy) -> str:
    parts = []
    if policy.glob is not None:
        parts.append(f"glob {policy.glob}")
    if policy.pattern is not None:
        parts.append(f"pattern {policy.pattern}")
    return " and ".join(parts)


def select_tag(policy: TagPolicy, tags: Iterable[str]) -> Selection:
    """The tag `policy` chooses among `tags`, with the reason; `tag` is None when none fits.

    Ties (one version written `v1.2.3` and `1.2.3`, or with different build metadata; equal
    extracted keys) are broken by the tag text, so the choice never depends on listing order.
    """
    compiled = _compile(policy)
    tags = list(tags)
    considered = len(tags)
    candidates = _filter(compiled, tags)
    filtered_out = considered - len(candidates)

    # Keyed candidates as (sort key, tag, key text); the winner is their max (or min), which
    # also breaks ties by tag text.
    keyed: list[tuple[Any, str, str]] = []
    unparsable = prerelease_out = 0
    if policy.order == "semver":
        assert compiled.range is not None
        admits = compiled.range.admits
        for text, tag in candidates:
            parsed = parse_version(text)
            if parsed is None:
                unparsable += 1
            elif admits(*parsed):
                keyed.append((parsed[0], tag, text))
            elif parsed[1] and admits(*parsed, any_prerelease=True):
                prerelease_out += 1
    else:
        for text, tag in candidates:
            value: Any = _number(text) if policy.order == "numerical" else (text or None)
            if value is None:
                unparsable += 1
            else:
                keyed.append((value, tag, text))
    best = None
    if keyed:
        best = min(keyed) if policy.order != "semver" and policy.direction == "asc" else max(keyed)

    counts = Selection(tag=None, reason="", considered=considered, matched=len(keyed), filtered_out=filtered_out,
                       unparsable=unparsable, rejected_prerelease=prerelease_out)
    reason = _reason(policy, compiled, best, counts)
    if best is None:
        return replace(counts, reason=reason)
    _, tag, text = best
    return replace(counts, tag=tag, reason=reason, key=text if text != tag else None)


def _reason(policy: TagPolicy, compiled: _Compiled, best: tuple[Any, str, str] | None,
            counts: Selection) -> str:
    filters = _filter_text(policy)
    scope_parts = [filters] if filters else []
    if compiled.range is not None and (policy.semver or not filters):
        scope_parts.append(f"range {compiled.range}" if filters else str(compiled.range))
    scope = " and ".join(scope_parts)
    unreadable = {"semver": "not semver", "numerical": "not numbers",
                  "alphabetical": "with an empty key"}[policy.order]
    pre = counts.rejected_prerelease
    unparsable = counts.unparsable

    if best is None:
        if not counts.considered:
            return f"no tag matches {scope}: the repository lists no tags"
        outside = (counts.considered - counts.filtered_out - unparsable - pre)
        breakdown = [
            (counts.filtered_out, f"not matching {filters}"),
            (unparsable, unreadable),
            (pre, "pre-releases excluded" if pre != 1 else "pre-release excluded"),
            (outside, f"outside {compiled.range}" if compiled.range is not None else ""),
        ]
        detail = ", ".join(f"{n} {what}".rstrip() for n, what in breakdown if n)
        return f"no tag matches {scope} (of {_plural(counts.considered, 'tag')}: {detail})"

    notes = []
    if pre:
        notes.append(f"{_plural(pre, 'pre-release')} excluded")
    if unparsable:
        notes.append(f"{_plural(unparsable, 'tag')} {unreadable}")
    _, tag, text = best
    shown = tag if text == tag else f"{tag} (key {text})"
    n = _plural(counts.matched, "tag")
    if policy.order == "semver":
        head = f"{shown} is the highest of {n}"
    elif policy.order == "numerical":
        head = f"{shown} is the {'highest' if policy.direction == 'desc' else 'lowest'} number of {n}"
    else:
        head = f"{shown} is {'last' if policy.direction == 'desc' else 'first'} alphabetically of {n}"
    head += f" matching {scope}" if scope else ""
    return f"{head} ({', '.join(notes)})" if notes else head


# --- Policies from YAML and from Flux v1 annotations ----------------------------------------

def policy_from_mapping(name: str, data: object, where: str) -> TagPolicy:
    """Validate one policy declared in YAML; SettingsError names `where.name.key`.

    `where` locates the table of policies, e.g. `stacks/Pulumi.dev.yaml: gitops:imagePolicies`.
    With no `semver` and no `order`, a policy follows the highest release (`semver: "*"`).
    """
    here = f"{where}.{name}"
    if not isinstance(name, str) or not _POLICY_NAME.fullmatch(name):
        raise SettingsError(f"{here}: a policy name is letters, digits, '.', '_' and '-' "
                            "(optionally `namespace:name`)")
    if not isinstance(data, Mapping):
        raise SettingsError(f"{here}: must be a mapping with image and semver or pattern/order")
    unknown = sorted(str(k) for k in data if k not in MAPPING_KEYS)
    if unknown:
        raise SettingsError(f"{here}.{unknown[0]}: unknown key (known: {', '.join(MAPPING_KEYS)})")

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{here}.{key}: must be a non-empty string"
                                + (f" (quote it: \"{value}\")" if isinstance(value, (int, float)) else ""))
        return value

    image = text("image")
    if image is None:
        raise SettingsError(f"{here}.image: missing: the image repository this policy follows")
    try:
        ref = parse_image(image)
    except SettingsError as e:
        raise SettingsError(f"{here}.image: {e}") from e
    if ref.tag is not None or ref.digest is not None:
        raise SettingsError(f"{here}.image: {image!r} names a tag or digest; give the repository only ({ref.name})")

    semver_range = text("semver")
    pattern = text("pattern")
    extract = text("extract")
    order = text("order") or "semver"
    direction = text("direction")
    if order not in ORDERS:
        raise SettingsError(f"{here}.order: {order!r} is not one of {', '.join(ORDERS)}")
    if semver_range is not None:
        if order != "semver":
            raise SettingsError(f"{here}.semver: a semver range needs order: semver (order is {order})")
        try:
            parse_range(semver_range)
        except SettingsError as e:
            raise SettingsError(f"{here}.semver: {e}") from e
    if direction is not None:
        if order == "semver":
            raise SettingsError(f"{here}.direction: applies to numerical and alphabetical order only")
        if direction not in DIRECTIONS:
            raise SettingsError(f"{here}.direction: {direction!r} is not asc or desc")
    compiled: re.Pattern[str] | None = None
    if pattern is not None:
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise SettingsError(f"{here}.pattern: invalid regular expression {pattern!r}: {e}") from e
    if extract is not None:
        if compiled is None:
            raise SettingsError(f"{here}.extract: needs a pattern with the group(s) to extract")
        for ref_name in _template_refs(extract):
            if isinstance(ref_name, int) and ref_name > compiled.groups:
                raise SettingsError(f"{here}.extract: ${ref_name} but the pattern has "
                                    f"{_plural(compiled.groups, 'group')}")
            if isinstance(ref_name, str) and ref_name not in compiled.groupindex:
                raise SettingsError(f"{here}.extract: the pattern has no group named {ref_name!r} "
                                    f"(write (?P<{ref_name}>...), or ${{1}}x to follow a group with text)")
    return TagPolicy(name=name, image=image, semver=semver_range, pattern=pattern, extract=extract,
                     order=order, direction=direction or "desc")


def policy_from_flux_v1(container_image: str, spec: str, *, name: str = "") -> TagPolicy:
    """A Flux v1 tag filter (`semver:~1.2`, `glob:1.2.*`, `regex:^v1\\.`, `regexp:...`).

    A bare filter is a glob, as in Flux v1. Flux v1 ordered glob and regex matches by image
    build time, which a registry's tag list does not give; we order them as versions (the
    highest release among the matches) and say so in the reason when none is one.
    """
    image = ""
    if container_image:
        image = parse_image(container_image).name
    spec = spec.strip()
    kind, sep, value = spec.partition(":")
    if sep and kind == "semver":
        parse_range(value)
        return TagPolicy(name=name, image=image, semver=value.strip(), order="semver")
    if sep and kind in ("regex", "regexp"):
        try:
            re.compile(value)
        except re.error as e:
            raise SettingsError(f"invalid regex in tag filter {spec!r}: {e}") from e
        return TagPolicy(name=name, image=image, pattern=value, order="semver")
    glob = value if sep and kind == "glob" else spec
    return TagPolicy(name=name, image=image, glob=glob or "*", order="semver")
