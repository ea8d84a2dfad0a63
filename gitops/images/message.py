"""The commit message for an image tag write-back, from the updates it makes. Pure: no I/O.

The default message has a one-line subject (`Update image <name> to <tag>`, or `Update images:
web 1.2.4, api 2.0.1` for several) and one body line per image and old tag, naming the files. A
user template may rearrange these with `{summary}` (the subject) and `{images}` (the body lines);
any other placeholder is a settings error, found when the template is checked, not mid-run.
"""
from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..errors import SettingsError

FIELDS = ("summary", "images")
DEFAULT_TEMPLATE = "{summary}\n\n{images}"


class ImageUpdate(NamedTuple):
    """One image moved from `old` to `new` tag in `paths`; a plain 4-tuple works as well."""

    image: str
    """The repository as written in the manifests, e.g. `127.0.0.1:5000/demo/web`."""
    old: str
    """The tag before; empty when the manifest had none."""
    new: str
    paths: Sequence[str] = ()


def commit_message(updates: Iterable[ImageUpdate | tuple[str, str, str, Sequence[str]]],
                   template: str | None = None) -> str:
    """The message for a commit making `updates`, through `template` (default: subject, blank
    line, body). Sorted, so the message does not depend on the order files were scanned in."""
    items = sorted({_normalise(u) for u in updates})
    if not items:
        raise ValueError("commit_message needs at least one image update")
    fields = {"summary": _summary(items), "images": "\n".join(_line(u) for u in items)}
    text = _render(template if template is not None else DEFAULT_TEMPLATE, fields)
    # git strips trailing blank lines anyway; stripping here keeps what tests and logs see equal.
    text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    if not text.strip():
        raise SettingsError("the commit message template gives an empty message")
    return text


def check_template(template: str) -> None:
    """Raise SettingsError unless `template` uses only `{summary}` and `{images}`; for settings
    loading, so a bad template fails at startup rather than at the first update."""
    _render(template, {name: "" for name in FIELDS})


def _normalise(update: ImageUpdate | tuple[str, str, str, Sequence[str]]) -> ImageUpdate:
    image, old, new, paths = update
    return ImageUpdate(image, old or "", new, tuple(sorted(set(paths))))


def _summary(items: list[ImageUpdate]) -> str:
    # The same image and new tag may appear once per old tag; the subject names it once.
    targets = list(dict.fromkeys((u.image, u.new) for u in items))
    if len(targets) == 1:
        image, new = targets[0]
        return f"Update image {image} to {new}"
    shorts = {image: image.rsplit("/", 1)[-1] for image, _ in targets}
    clashing = {s for s in shorts.values() if len({i for i, short in shorts.items() if short == s}) > 1}
    names = [image if shorts[image] in clashing else shorts[image] for image, _ in targets]
    return "Update images: " + ", ".join(f"{name} {new}" for name, (_, new) in zip(names, targets))


def _line(update: ImageUpdate) -> str:
    change = f"{update.old} -> {update.new}" if update.old else f"set to {update.new}"
    where = f" ({', '.join(update.paths)})" if update.paths else ""
    return f"- {update.image}: {change}{where}"


def _render(template: str, fields: dict[str, str]) -> str:
    allowed = ", ".join("{" + name + "}" for name in FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise SettingsError(f"commit message template is malformed ({e}); use {allowed}, and {{{{ }}}} for braces") from e
    for _literal, name, _spec, _conversion in parsed:
        # Attribute and index lookups (`{summary.__class__}`) are refused with the rest.
        if name is not None and name not in fields:
            shown = "{" + name + "}" if name else "{} (positional)"
            raise SettingsError(f"commit message template has unknown placeholder {shown}; use {allowed}")
    try:
        return template.format(**fields)
    except (ValueError, TypeError) as e:  # a bad format spec such as `{summary:d}`
        raise SettingsError(f"commit message template cannot be rendered: {e}") from e
