"""Engine preview events -> the plan's changes. Pure: reads the JSON shape of Pulumi's typed
engine events (`engine.event_json`), so recorded runs and live runs go through one path.

Only `resource_pre_event`s matter: each names the step (create, update, replace, delete), the
resource's old and new inputs and outputs, the provider's detailed diff (field paths) and, for a
replace, the fields that force it. Values come from those events too, never from the CLI's text.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .model import Change, FieldChange, Op

# Pulumi's marker for a secret value in engine events; with secrets hidden its value is "[secret]".
SECRET_SIG = "4dabf18193072939515e22adb298388d"
_STEP_OPS = {"create": Op.CREATE, "update": Op.UPDATE, "replace": Op.REPLACE, "delete": Op.DELETE}
# Steps that are halves of a replace (reported once, as `replace`) or that change nothing.
_IGNORED_OPS = {"same", "read", "refresh", "delete-replaced", "create-replacement", "discard", "discard-replaced",
                "remove-pending-replace", "read-discard", "import", "import-replacement"}
_DIFF_KINDS = {"add": "add", "add-replace": "add", "delete": "delete", "delete-replace": "delete",
               "update": "update", "update-replace": "update"}
_IDENTITY_PATHS = {"apiVersion", "kind", "metadata.name", "metadata.namespace"}
_PATH_TOKEN = re.compile(r'\.?([^.\[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def changes_from_events(events: Iterable[Mapping[str, Any]]) -> tuple[tuple[Change, ...], int]:
    """The changed objects, in event order, and how many objects stay the same."""
    changes: dict[str, Change] = {}
    unchanged = 0
    for event in events:
        step = (event.get("resource_pre_event") or {}).get("metadata")
        if not step or str(step.get("type", "")).startswith("pulumi:"):
            continue  # the stack and the provider are not cluster objects
        op = str(step.get("op"))
        if op == "same":
            unchanged += 1
            continue
        if op in _IGNORED_OPS or op not in _STEP_OPS:
            continue
        subject = subject_from_urn(str(step.get("urn", "")))
        changes[subject] = _change(subject, _STEP_OPS[op], step)
    return tuple(changes.values()), unchanged


def subject_from_urn(urn: str) -> str:
    """`...::apps/Deployment:demo/web` -> `Deployment/demo/web` (the program's logical names)."""
    name = urn.rsplit("::", 1)[-1]
    group_kind, _, scoped = name.partition(":")
    return f"{group_kind.rsplit('/', 1)[-1]}/{scoped}"


def _change(subject: str, op: Op, step: Mapping[str, Any]) -> Change:
    secret_object = subject.startswith("Secret/")
    new_inputs = (step.get("new") or {}).get("inputs") or {}
    if op == Op.DELETE:
        return Change(subject, op)
    if op == Op.CREATE:
        fields = tuple(FieldChange(path, "add", new=None if hidden else value, secret=hidden)
                       for path, value in _leaves(new_inputs)
                       if path not in _IDENTITY_PATHS
                       for hidden in [_is_secret(path, value, secret_object)])
        return Change(subject, op, fields)
    old = step.get("old") or {}
    replace_keys = tuple(step.get("keys") or ()) if op == Op.REPLACE else ()
    changed: list[FieldChange] = []
    for path, diff in sorted((step.get("detailed_diff") or {}).items()):
        kind_text = str(diff.get("diff_kind") or diff.get("kind") or "update")
        # input_diff False: the provider compared with the live object (old outputs).
        before = old.get("inputs") if diff.get("input_diff") else (old.get("outputs") or old.get("inputs"))
        old_value, new_value = _lookup(before or {}, path), _lookup(new_inputs, path)
        hidden = _is_secret(path, old_value, secret_object) or _is_secret(path, new_value, secret_object)
        changed.append(FieldChange(
            path=path, kind=_DIFF_KINDS.get(kind_text, "update"),
            old=None if hidden else old_value, new=None if hidden else new_value, secret=hidden,
            replaces=kind_text.endswith("-replace") or path in replace_keys))
    reasons = replace_keys or tuple(f.path for f in changed if f.replaces)
    return Change(subject, op, tuple(changed), reasons if op == Op.REPLACE else ())


def _is_secret(path: str, value: Any, secret_object: bool) -> bool:
    if secret_object and _parse_path(path)[:1] in (["data"], ["stringData"]):
        return True
    return value == "[secret]" or (isinstance(value, Mapping) and SECRET_SIG in value)


def _leaves(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Flatten to (path, scalar) in the provider's path syntax; a secret stays one leaf."""
    if isinstance(value, Mapping) and value and SECRET_SIG not in value:
        for key, item in value.items():
            if str(key).startswith("__"):
                continue
            step = f"{prefix}.{key}" if prefix and _plain(key) else (str(key) if _plain(key) else f'{prefix}["{key}"]')
            yield from _leaves(item, step)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def _plain(key: Any) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+", str(key)))


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in _PATH_TOKEN.finditer(path):
        key, index, quoted = match.groups()
        parts.append(int(index) if index is not None else (quoted if quoted is not None else key))
    return parts


def _lookup(value: Any, path: str) -> Any:
    for part in _parse_path(path):
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(value, Mapping) and SECRET_SIG in value:
            return value  # inside a secret: the whole value is hidden
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value
