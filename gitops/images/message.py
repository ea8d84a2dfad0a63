"""The commit message for an image tag write-back, from the updates it makes. Pure: no I/O.

The default message has a one-line subject (`Update image <name> to <tag>`, or `Update images:
web 1.2.4, api 2.0.1` for several) and one body line per image and old tag, naming the files. A
user template may rearrange these with `{summary}` (the subject) and `{images}` (the body lines);
any other placeholder is a settings error, found when the settings are read, not mid-run.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..errors import SettingsError
from ..settings import check_template

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
    check_template(template)
    return template.format(**fields)
