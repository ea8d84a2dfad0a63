"""The desired state as people read it: a YAML stream, each object headed by where it was written,
Secret values hidden. Pure."""
from __future__ import annotations

from typing import Any

import yaml

from .model import DesiredState, Manifest, is_secret

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


REDACTED = "<redacted>"


def redacted_secret(manifest: Manifest) -> dict[str, Any]:
    """A Secret with its keys kept and values hidden. No hash either: short secrets would fall to guessing."""
    body = dict(manifest.body)
    for key in ("data", "stringData"):
        values = body.get(key)
        if isinstance(values, dict):
            body[key] = dict.fromkeys(values, REDACTED)
    return body


def to_yaml(state: DesiredState, show_secrets: bool = False) -> str:
    """A YAML stream of the desired state, each object headed by where it was written."""
    parts = [f"# repo: {state.repo}\n# commit: {state.commit}\n# path: {state.path}\n"
             f"# objects: {len(state.manifests)}\n"]
    for manifest in state.manifests:
        body = manifest.body if show_secrets or not is_secret(manifest) else redacted_secret(manifest)
        parts.append(f"---\n# {manifest.id.subject} from {manifest.origin}\n"
                     + yaml.dump(dict(body), Dumper=_Dumper, sort_keys=False, default_flow_style=False))
    return "".join(parts)
