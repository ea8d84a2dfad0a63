"""Config-repo files -> documents that remember where they were written, read as kubectl reads them.

Pure: takes file contents, returns documents and problems. kubectl (cli-runtime's StreamVisitor
over apimachinery's YAMLOrJSONDecoder) decides by content, not by file name: a stream whose first
character is `{` is read as JSON values, falling back to YAML if the first two are not JSON; YAML
is cut into documents at lines starting with `---`, and each part is one document. The values are
built as Kubernetes' YAML-to-JSON conversion makes them (scalars.py, yamldoc.py), so an object
means the same to gitops as to kubectl; and each document keeps the lines that error messages need.
Untrusted input is bounded by limits.py; isolate.py runs all of this in a child process.
"""
from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..deep import recursion_room
from ..errors import Problem
from . import scalars
from .limits import MAX_DEPTH, MAX_DOCUMENTS_PER_FILE, MAX_FILE_BYTES, MIB
from .yamldoc import Parsed, error_line, parse_document

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Jsonnet programs are read only to be refused by name (Argo CD renders them; gitops does not), so
# a folder of them is a clear error, never an empty desired state; `.gitopsignore` may skip them.
JSONNET_SUFFIX = ".jsonnet"
# kustomize build files are instructions, not objects: renderers/kustomize.py builds their folders.
KUSTOMIZE_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
IGNORE_FILE = ".gitopsignore"

# What Go's unicode.IsSpace calls space: kubectl skips it before looking for a JSON `{`.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
_JSON_SNIFF_BYTES = 4096  # how far kubectl looks for that `{` (NewYAMLOrJSONDecoder(r, 4096))
_SEPARATOR = re.compile(r"^---(.*)$", re.MULTILINE)
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = re.compile(r"[ \t\n\r]*")
_LEADING_SPACE = re.compile(f"[{re.escape(_GO_SPACE)}]*")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


@dataclass(frozen=True)
class Document:
    """One YAML document (or one item of a `List`) and the lines of the fields we validate."""

    path: str
    line: int
    data: Any
    field_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, field_path: str) -> int:
        return self.field_lines.get(field_path, self.line)


@dataclass(frozen=True)
class FileRead:
    """What one file held: its documents, its problems, and how many documents it counted
    (empty ones too: each costs a parse, so they count against the limits)."""

    documents: list[Document]
    problems: list[Problem]
    count: int


def manifest_candidates(paths: Iterable[str], folder: str) -> list[str]:
    """The files under `folder` that may hold objects, before `.gitopsignore`, in a stable order.

    Hidden files and folders (`.github/`, `.gitlab-ci.yml`) are CI or tool config, never objects.
    """
    prefix = "" if folder in ("", ".") else folder.strip("/") + "/"
    chosen = []
    for path in paths:
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        name = posixpath.basename(relative)
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        if not name.endswith((*MANIFEST_SUFFIXES, JSONNET_SUFFIX)) or name in KUSTOMIZE_FILES:
            continue
        chosen.append(path)
    return sorted(chosen)


def not_ignored(candidates: Iterable[str], folder: str, ignore_text: str | None) -> list[str]:
    """`candidates` less what `.gitopsignore` (gitignore syntax, relative to `folder`) skips.

    pathspec's patterns are Python regular expressions, which can backtrack for a very long time
    on a hostile pattern: isolate.py runs this in the child process, under a deadline.
    """
    if not ignore_text:
        return list(candidates)
    import pathspec  # only for a repo that has the file: its import is a tenth of the child's start

    prefix = "" if folder in ("", ".") else folder.strip("/") + "/"
    spec = pathspec.GitIgnoreSpec.from_lines(ignore_text.splitlines())
    return [path for path in candidates if not spec.match_file(path[len(prefix):])]


def select_manifest_files(paths: Iterable[str], folder: str, ignore_text: str | None) -> list[str]:
    """The files under `folder` that hold objects, in a stable order."""
    return not_ignored(manifest_candidates(paths, folder), folder, ignore_text)


def load_documents(path: str, data: bytes) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of one file, with `List` kinds expanded."""
    read = read_file(path, data)
    return read.documents, read.problems


def read_file(path: str, data: bytes) -> FileRead:
    """One file, as kubectl reads it: BOM, UTF-8 or UTF-16, then JSON or YAML by content."""
    if path.endswith(JSONNET_SUFFIX):
        return FileRead([], [Problem(path, 1, "Jsonnet is not rendered by gitops: render it to YAML (for instance in "
                                              "CI) and commit that, or skip the file in .gitopsignore")], 0)
    too_large = file_too_large(path, len(data))
    if too_large is not None:
        return FileRead([], [too_large], 0)
    text = _decode(path, data)
    if isinstance(text, Problem):
        return FileRead([], [text], 0)
    text = text.replace("\r\n", "\n")  # kubectl's line reader drops the \r of every \r\n
    reader = _Reader(path)
    yaml_from = _json_prefix(text, reader) if _looks_like_json(text) else 0
    if yaml_from is not None:
        reader.yaml_stream(text[yaml_from:] if yaml_from else text, 1 + text.count("\n", 0, yaml_from))
    return FileRead(reader.documents, reader.problems, reader.count)


def file_too_large(path: str, size: int) -> Problem | None:
    if size <= MAX_FILE_BYTES:
        return None
    return Problem(path, 1, f"the file is {size / MIB:.1f} MiB; at most {MAX_FILE_BYTES // MIB} MiB is read (ten times "
                            "the largest object the API server accepts): split it")


def _decode(path: str, data: bytes) -> str | Problem:
    # kubectl's FileVisitor reads through unicode.BOMOverride: a UTF-8 BOM is dropped and a UTF-16
    # one converts the file. It also turns invalid UTF-8 into U+FFFD without a word; that silent
    # change is refused here instead.
    body, encoding = data, "utf-8"
    for bom, bom_encoding in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            body, encoding = data[len(bom):], bom_encoding
            break
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as e:
        line = body[:e.start].count(b"\n" if encoding == "utf-8" else "\n".encode(encoding)) + 1
        return Problem(path, line, f"not {encoding.upper()} text: {e.reason} at byte {e.start + len(data) - len(body)}")


def _looks_like_json(text: str) -> bool:
    start = _LEADING_SPACE.match(text).end()  # type: ignore[union-attr]  # * always matches
    return (text[start:start + 1] == "{"
            and len(text[:start].encode("utf-8", "surrogatepass")) < _JSON_SNIFF_BYTES)


class _Reader:
    """Documents and problems of one file, as they are found."""

    def __init__(self, path: str):
        self.path = path
        self.documents: list[Document] = []
        self.problems: list[Problem] = []
        self.count = 0

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def counted(self, line: int) -> bool:
        """Count one more document; False (with a problem, once) past the file's limit."""
        self.count += 1
        if self.count == MAX_DOCUMENTS_PER_FILE + 1:
            self.problem(line, f"more than {MAX_DOCUMENTS_PER_FILE:,} documents in one file; the rest is not read")
        return self.count <= MAX_DOCUMENTS_PER_FILE

    def yaml_stream(self, text: str, line: int) -> None:
        """Documents split at `---` lines, as apimachinery's YAMLReader does, each parsed alone;
        `text` starts at file line `line`."""
        position = 0
        for separator in _SEPARATOR.finditer(text):
            if not self._yaml_part(text[position:separator.start()], line):
                return
            line += text.count("\n", position, separator.start())
            rest = separator.group(1).strip(_GO_SPACE)
            if rest and not rest.startswith("#"):
                self.problem(line, f"invalid document separator '---{separator.group(1)}': kubectl refuses anything "
                                   "but a comment after '---'; start the document on the next line")
            position = separator.end() + 1
            line += 1
        self._yaml_part(text[position:], line)

    def _yaml_part(self, part: str, line: int) -> bool:
        if not part:
            return True  # two separators in a row: kubectl sees no document at all
        if not self.counted(line):
            return False
        if _BLANK.fullmatch(part):
            return True
        try:
            parsed = parse_document(part, line - 1)
        except yaml.YAMLError as e:
            reason = getattr(e, "problem", None) or str(e)
            self.problem(error_line(e, part, line - 1), f"invalid YAML: {reason}")
            return True
        if parsed is not None:
            self._parsed(parsed)
        return True

    def _parsed(self, parsed: Parsed) -> None:
        for line, message in parsed.problems:
            self.problem(line, message)
        if parsed.problems or parsed.data is None:
            return  # an empty document (or `~`): kubectl skips it too
        self.objects(parsed.line, parsed.data, parsed.field_lines, parsed.item_lines)

    def objects(self, line: int, data: Any, field_lines: dict[str, int],
                item_lines: list[tuple[int, dict[str, int]]] | None) -> None:
        """The document, or the items of a list: kubectl reads any document with `items` as one."""
        if not isinstance(data, dict) or "items" not in data:
            self.documents.append(Document(self.path, line, data, field_lines))
            return
        items = data["items"]
        if items is None:
            return  # `items: null` is a list too, an empty one, for kubectl's decoder: no object at all
        if not isinstance(items, list):
            self.problem(field_lines.get("items", line), "items must be a list: kubectl reads every document that "
                                                         "has items as a List of objects")
            return
        # Each item is an object of its own: the items count against the file's limit as documents do.
        if self.count + len(items) - 1 > MAX_DOCUMENTS_PER_FILE:
            self.problem(line, f"the list has {len(items):,} items: more than {MAX_DOCUMENTS_PER_FILE:,} documents in "
                               "one file")
            return
        self.count += len(items) - 1
        if item_lines is None or len(item_lines) != len(items):
            item_lines = [(line, {})] * len(items)
        # Items that name neither kind nor apiVersion get the list's, as kubectl's decodeToList does.
        kind, api_version = _text(data.get("kind")).removesuffix("List"), _text(data.get("apiVersion"))
        for item, (item_line, lines) in zip(items, item_lines):
            if isinstance(item, dict) and not _text(item.get("kind")) and not _text(item.get("apiVersion")):
                item = {**item, "kind": kind, "apiVersion": api_version}
            self.documents.append(Document(self.path, item_line, item, lines))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _JSONProblem(ValueError):
    """A JSON value Kubernetes refuses, though the text is valid JSON."""


class _NotJSON(ValueError):
    """Text Go's JSON decoder calls a syntax error though Python's accepts it (NaN, Infinity)."""


def _json_int(text: str) -> int | float:
    if len(text) <= 20:
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value  # int64, as sigs.k8s.io/json keeps integers
    return _json_float(text)


def _json_float(text: str) -> int | float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _JSONProblem(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is out of range for a "
                           "float64: Kubernetes cannot read it")
    return scalars.json_number(value)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _JSONProblem(f"duplicate key {duplicate!r} in one object: Kubernetes' strict decoding refuses it, "
                           "and which value wins is undefined")
    return mapping


def _not_json(text: str) -> Any:
    raise _NotJSON(text)


_DECODER = json.JSONDecoder(object_pairs_hook=_json_object, parse_float=_json_float, parse_int=_json_int,
                            parse_constant=_not_json)


def _json_prefix(text: str, reader: _Reader) -> int | None:
    """JSON values from the start of `text`; where YAML takes over if the first two are not all
    (kubectl switches to YAML when its first or second JSON value fails), or None when done."""
    position, count, line = 0, 0, 1
    while True:
        start = _JSON_SPACE.match(text, position).end()  # type: ignore[union-attr]
        if start == len(text):
            return None
        line += text.count("\n", position, start)
        try:
            value, end = _decode_json(text, start)
        except (json.JSONDecodeError, _NotJSON) as e:
            if count > 1:
                where = e.lineno if isinstance(e, json.JSONDecodeError) else line
                reader.problem(where, f"invalid JSON: {e.msg if isinstance(e, json.JSONDecodeError) else e}")
                return None
            # As kubectl: YAML from the end of the last JSON value, less its spaces up to the first newline,
            # which it reads 4 bytes at a time: nearer the end than that, the JSON error stands.
            while True:
                if len(text[position:position + 4].encode("utf-8", "surrogatepass")) < 4:
                    where = e.lineno if isinstance(e, json.JSONDecodeError) else line
                    reader.problem(where, f"invalid JSON: {e.msg if isinstance(e, json.JSONDecodeError) else e}")
                    return None
                if text[position] not in _GO_SPACE:
                    return position
                position += 1
                if text[position - 1] == "\n":
                    return position
        except _JSONProblem as e:
            reader.problem(line, str(e))
            value, end = None, _skip_json_value(text, start)
        except _TooDeep as e:
            reader.problem(e.line, f"nested deeper than {MAX_DEPTH:,} levels: Kubernetes' JSON decoding refuses it "
                                   "(exceeded max depth)")
            return None
        count += 1
        if not reader.counted(line):
            return None
        if value is not None:
            reader.objects(line, value, {}, None)
        line += text.count("\n", start, end)
        position = end


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


def _decode_json(text: str, start: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        depth, line = _json_depth(text, start)
        if depth > MAX_DEPTH:
            raise _TooDeep(line) from None
        with recursion_room(depth):
            value, end = _DECODER.raw_decode(text, start)
    if _SURROGATE_ESCAPE.search(text, start, end):
        value = _replace_lone_surrogates(value)
    return value, end


def _json_depth(text: str, start: int) -> tuple[int, int]:
    """The nesting of the JSON value at `start`, without recursion; and the line where it passes MAX_DEPTH."""
    depth = deepest = 0
    for token in _BRACKETS.finditer(text, start):
        c = token.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if depth > MAX_DEPTH:
                    return depth, text.count("\n", 0, token.start()) + 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                break
    return deepest, 1


def _replace_lone_surrogates(value: Any) -> Any:
    """Go's JSON decoder turns an escaped lone surrogate (`\\ud800`) into U+FFFD; Python's keeps it."""
    def fix(item: Any) -> Any:
        return _LONE_SURROGATE.sub("\ufffd", item) if isinstance(item, str) else item

    root = [fix(value)]
    pending: list[Any] = [root]
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            for i, item in enumerate(container):
                container[i] = fix(item)
                if isinstance(item, (dict, list)):
                    pending.append(container[i])
        else:
            fixed = {fix(k): fix(v) for k, v in container.items()}
            container.clear()
            container.update(fixed)
            pending.extend(v for v in fixed.values() if isinstance(v, (dict, list)))
    return root[0]


_PLAIN_DECODER = json.JSONDecoder(parse_int=len, parse_float=len, parse_constant=len)


def _skip_json_value(text: str, start: int) -> int:
    """The end of the JSON value at `start`, read again without the hooks that refused it."""
    try:
        return int(_PLAIN_DECODER.raw_decode(text, start)[1])
    except (ValueError, RecursionError):
        return len(text)  # cannot tell where it ends: read no further
