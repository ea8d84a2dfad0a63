"""The desired state as people read it: a YAML stream, each object headed by where it was written,
Secret values hidden. Pure.

Everything printed comes from the config repo, which is hostile input: a file name or a value
must never end a comment line, start a document of its own, or reach a terminal as a control
character. Values are safe in YAML's own quoting (PyYAML escapes what is not printable); the
comment lines, which YAML cannot quote, are escaped here.
"""
from __future__ import annotations

from typing import Any

import yaml

from .deep import call_deep, nesting_depth
from .model import LAST_APPLIED, DesiredState, Manifest, is_secret
from .text import escape

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


REDACTED = "<redacted>"
SECRET_FIELDS = ("data", "stringData")
# Block style indents every level, so a document's size grows with the square of its depth
# (10,000 levels, which the API server takes, would print 100 MB): deeper ones are printed in flow
# style, on one line. Real objects (the deepest CRD schemas) stay well below it.
BLOCK_STYLE_MAX_DEPTH = 64


def redacted_secret(manifest: Manifest) -> dict[str, Any]:
    """A Secret with its keys kept and values hidden. No hash either: short secrets would fall to guessing.

    Whatever shape the values have: a field that is not a mapping (validation refuses those) is
    hidden whole rather than printed.
    """
    body = dict(manifest.body)
    for key in SECRET_FIELDS:
        if key in body:
            values = body[key]
            body[key] = dict.fromkeys(values, REDACTED) if isinstance(values, dict) else REDACTED
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict) \
            and LAST_APPLIED in metadata["annotations"]:
        body["metadata"] = {**metadata, "annotations": {**metadata["annotations"], LAST_APPLIED: REDACTED}}
    return body


def to_yaml(state: DesiredState, show_secrets: bool = False) -> str:
    """A YAML stream of the desired state, each object headed by where it was written."""
    parts = [f"# repo: {escape(state.repo)}\n# commit: {escape(state.commit)}\n# path: {escape(state.path)}\n"
             f"# objects: {len(state.manifests)}\n"]
    for manifest in state.manifests:
        body = manifest.body if show_secrets or not is_secret(manifest) else redacted_secret(manifest)
        parts.append(f"---\n# {escape(manifest.id.subject)} from {escape(str(manifest.origin))}\n"
                     + _dump(dict(body)))
    return "".join(parts)


def _dump(body: dict[str, Any]) -> str:
    depth = nesting_depth(body)
    flow = depth > BLOCK_STYLE_MAX_DEPTH
    return call_deep(lambda: yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=flow,
                                       width=1 << 30 if flow else 80), depth)
