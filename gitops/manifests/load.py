"""Config-repo files -> YAML documents that remember where they were written.

Pure: takes file contents, returns documents and problems. Uses PyYAML's C parser; documents
are built from composed nodes so each keeps its line, which every later error message needs.
"""
from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pathspec
import yaml

from ..errors import Problem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# kustomize build files are instructions, not objects; rendering overlays is later work.
KUSTOMIZE_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
IGNORE_FILE = ".gitopsignore"

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """One YAML document (or one item of a `List`) and the lines of the fields we validate."""

    path: str
    line: int
    data: Any
    field_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, field_path: str) -> int:
        return self.field_lines.get(field_path, self.line)


def select_manifest_files(paths: Iterable[str], folder: str, ignore_text: str | None) -> list[str]:
    """The files under `folder` that hold objects, in a stable order.

    Hidden files and folders (`.github/`, `.gitlab-ci.yml`) are CI or tool config, never objects.
    """
    prefix = "" if folder in ("", ".") else folder.strip("/") + "/"
    spec = pathspec.GitIgnoreSpec.from_lines(ignore_text.splitlines()) if ignore_text else None
    chosen = []
    for path in paths:
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        name = posixpath.basename(relative)
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        if not name.endswith(MANIFEST_SUFFIXES) or name in KUSTOMIZE_FILES:
            continue
        if spec is not None and spec.match_file(relative):
            continue
        chosen.append(path)
    return sorted(chosen)


def load_documents(path: str, data: bytes) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of one file, with `List` kinds expanded."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [], [Problem(path, 1, f"not UTF-8 text: {e.reason} at byte {e.start}")]
    if path.endswith(".json"):
        return _load_json(path, text)
    documents: list[Document] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = cast(yaml.Node, loader.get_node())  # None only at the end, which check_node() ruled out
            documents.extend(_documents_from_node(path, node, _construct(loader, node)))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(e, "problem", None) or str(e)
        return documents, [Problem(path, line, f"invalid YAML: {reason}")]
    finally:
        loader.dispose()
    return documents, []


def _load_json(path: str, text: str) -> tuple[list[Document], list[Problem]]:
    # YAML parsers reject the tab indentation common in JSON, so JSON gets its own parser.
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [], [Problem(path, e.lineno, f"invalid JSON: {e.msg}")]
    return list(_expand(path, 1, data, {})), []


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """Plain values from a composed document, several times faster than PyYAML's constructor.

    Timestamps stay strings, as Kubernetes' own YAML-to-JSON conversion leaves them; anything
    unusual (merge keys, explicit tags) falls back to PyYAML's full constructor.
    """
    built: dict[int, Any] = {}
    scalars = loader.yaml_constructors

    def value(n: yaml.Node) -> Any:
        if isinstance(n, yaml.ScalarNode):
            if n.tag == _STR or n.tag == _TIMESTAMP:
                return n.value
            return scalars[n.tag](loader, n) if n.tag in scalars else _Fallback.raise_()
        known = built.get(id(n))
        if known is not None:
            return known  # an alias: the same object, as PyYAML gives
        if isinstance(n, yaml.MappingNode):
            mapping: dict[Any, Any] = {}
            built[id(n)] = mapping
            for key_node, value_node in n.value:
                if key_node.tag == _MERGE:
                    _Fallback.raise_()
                key = value(key_node)
                mapping[key] = value(value_node)
            return mapping
        sequence: list[Any] = []
        built[id(n)] = sequence
        sequence.extend(value(item) for item in n.value)
        return sequence

    try:
        return value(node)
    except (_Fallback, TypeError):
        return loader.construct_document(node)


class _Fallback(Exception):
    @staticmethod
    def raise_() -> Any:
        raise _Fallback


def _documents_from_node(path: str, node: yaml.Node, data: Any) -> Iterator[Document]:
    line = node.start_mark.line + 1
    if data is None:
        return  # empty documents (`---` alone, or only comments) are allowed and skipped
    lines = _field_lines(node)
    items_node = _child(node, "items")
    if _is_list(data) and isinstance(items_node, yaml.SequenceNode):
        for item_node, item in zip(items_node.value, data["items"]):
            yield Document(path, item_node.start_mark.line + 1, item, _field_lines(item_node))
        return
    yield Document(path, line, data, lines)


def _expand(path: str, line: int, data: Any, lines: dict[str, int]) -> Iterator[Document]:
    if _is_list(data):
        for item in data["items"]:
            yield Document(path, line, item, {})
    else:
        yield Document(path, line, data, lines)


def _is_list(data: Any) -> bool:
    """`kind: List` and the typed lists kubectl prints (`ConfigMapList`, ...)."""
    return (isinstance(data, dict) and isinstance(data.get("kind"), str) and data["kind"].endswith("List")
            and isinstance(data.get("items"), list))


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    pairs: list[tuple[yaml.Node, yaml.Node]] = node.value  # the stubs leave a node's value untyped
    for key_node, value_node in pairs:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _field_lines(node: yaml.Node) -> dict[str, int]:
    """Lines of the top-level keys and of `metadata.*`: the fields validation talks about."""
    lines: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            lines[key_node.value] = key_node.start_mark.line + 1
            if key_node.value == "metadata" and isinstance(value_node, yaml.MappingNode):
                for meta_key, _ in value_node.value:
                    if isinstance(meta_key, yaml.ScalarNode):
                        lines[f"metadata.{meta_key.value}"] = meta_key.start_mark.line + 1
    return lines
