"""One YAML document -> its value as Kubernetes reads it, with the lines validation needs. Pure.

libyaml (PyYAML's C parser) gives parse events; the value is built here from them in a loop, not
by recursion, so no depth of nesting can overflow a stack. What go-yaml v2 does while decoding is
done here too: merge keys (`<<`) in its order, aliases counted against its "excessive aliasing"
ratio, `anchor value contains itself`, mapping keys made JSON strings; and what Kubernetes'
strict decoding refuses, a key given twice in one mapping, is a problem naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml._yaml import CParser

from . import scalars
from .limits import MAX_DEPTH, excessive_aliasing

_NO_KEY: Any = object()  # a mapping waiting for its next key
_MERGE: Any = object()  # the key just read is `<<`
_SKIP: Any = object()  # the key just read was refused; its value is read and dropped
_INVALID_KEY: Any = object()  # a mapping or sequence in the place of a key

_ROOT, _META, _ITEMS, _ITEM = 1, 2, 3, 4

# Plain scalars repeat across documents ("true", "80", "v1", names): each is resolved once. Only
# immutable values are kept, and the caches are emptied past this size so hostile input cannot grow them.
_CACHE_SIZE = 50_000
_VALUES: dict[str, Any] = {}
_KEYS: dict[str, str] = {}  # where a collection is, for the lines validation talks about


@dataclass(frozen=True)
class Parsed:
    """One document: its value, and the lines of its top-level and `metadata.*` keys (and of the
    elements of a top-level `items` list and their keys, for `List` documents)."""

    line: int
    data: Any
    field_lines: dict[str, int]
    item_lines: list[tuple[int, dict[str, int]]] | None
    problems: list[tuple[int, str]] = field(default_factory=list)


class _Fatal(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Frame:
    __slots__ = ("anchor", "height", "is_map", "item_lines", "key", "lines", "merged", "prefix", "role", "start",
                 "value")

    def __init__(self, is_map: bool, start: int, anchor: str | None):
        self.is_map = is_map
        self.value: Any = {} if is_map else []
        self.key: Any = _NO_KEY
        self.height = 1
        self.start = start
        self.anchor = anchor
        self.merged: set[str] | None = None  # keys only merges put here, which an explicit key may override
        self.lines: dict[str, int] | None = None
        self.prefix = ""
        self.role = 0
        self.item_lines: list[tuple[int, dict[str, int]]] | None = None


@dataclass(frozen=True)
class _Anchor:
    """A finished anchored node: what an alias to it expands to, and what that expansion costs."""

    value: Any
    size: int
    height: int
    scalar: tuple[str | None, str, bool] | None = None  # a scalar re-resolves by position (key or value)


def parse_document(text: str, offset: int) -> Parsed | None:
    """The one document in `text` (lines counted from `offset`), or None if it holds none.

    Raises `yaml.YAMLError` for invalid YAML, with marks relative to `text`.
    """
    parser = CParser(text)
    try:
        return _Builder(parser, offset).run()
    finally:
        parser.dispose()


class _Builder:
    def __init__(self, parser: Any, offset: int):
        self.parser = parser
        self.offset = offset + 1  # libyaml counts lines from 0
        self.problems: list[tuple[int, str]] = []
        self.anchors: dict[str, _Frame | _Anchor] = {}
        self.count = 1  # go-yaml counts the document node too
        self._count = 1  # the same, while the loop keeps it in a local
        self.alias_count = 0
        self.stack: list[_Frame] = []
        self.root: Any = _NO_KEY
        self.root_line = 0
        self.root_lines: dict[str, int] = {}
        self.item_lines: list[tuple[int, dict[str, int]]] | None = None

    def run(self) -> Parsed | None:
        get = self.parser.get_event
        event = get()
        assert isinstance(event, StreamStartEvent)
        event = get()
        if isinstance(event, StreamEndEvent):
            return None  # nothing but comments
        assert isinstance(event, DocumentStartEvent)
        try:
            self._events()
        except _Fatal as fatal:
            return Parsed(fatal.line, None, {}, None, [(fatal.line, fatal.message)])
        end = get()
        assert isinstance(end, DocumentEndEvent)
        try:
            following = get()
            line = 0 if isinstance(following, StreamEndEvent) else following.start_mark.line + self.offset
        except yaml.YAMLError as e:
            line = error_line(e, "", self.offset - 1)
        if line:
            self.problems.append((line, "a second document after '...' without '---': kubectl reads only the first "
                                        "and ignores the rest; separate documents with a '---' line"))
        return Parsed(self.root_line, self.root, self.root_lines, self.item_lines, self.problems)

    def _check_aliasing(self, line: int) -> None:
        if excessive_aliasing(self.alias_count, self._count):
            raise _Fatal(line, f"document contains excessive aliasing: {self._count:,} nodes decoded, "
                               f"{self.alias_count:,} of them from aliases (go-yaml's limit, which kubectl applies)")

    def _events(self) -> None:
        try:
            self._loop()
        finally:
            self.count = self._count

    def _loop(self) -> None:
        # One loop over the events, with locals for what it touches on every one: this is the hot path.
        get = self.parser.get_event
        stack = self.stack
        anchors = self.anchors
        values, keys = _VALUES, _KEYS
        if len(values) > _CACHE_SIZE or len(keys) > _CACHE_SIZE:
            values.clear()
            keys.clear()
        top: _Frame | None = None
        is_merge_key, scalar_key, scalar_value = scalars.is_merge_key, scalars.key, scalars.value
        count = self.count
        while True:
            event = get()
            cls = event.__class__
            if cls is ScalarEvent:
                count += 1
                if self.alias_count > 100:
                    self._count = count
                    self._check_aliasing(event.start_mark.line + self.offset)
                tag, text, plain = event.tag, event.value, event.implicit[0]
                if event.anchor is not None:
                    anchors[event.anchor] = _Anchor(None, 1, 0, (tag, text, plain))
                if top is not None and top.is_map and top.key is _NO_KEY:
                    if tag is None and plain:
                        if text == "<<":
                            count -= 1  # go-yaml never decodes a merge key itself
                            top.key = _MERGE
                            continue
                        key = keys.get(text)
                        if key is None:
                            try:
                                key = keys[text] = scalar_key(None, text, True)
                            except scalars.ScalarError as e:
                                self.problems.append((self._line(event), str(e)))
                                key = _SKIP
                    elif is_merge_key(tag, text, plain):
                        count -= 1
                        top.key = _MERGE
                        continue
                    else:
                        key = text if tag is None else self._key(tag, text, plain, event)
                    if key.__class__ is str and key not in top.value:
                        top.key = key
                        if top.lines is not None:
                            top.lines.setdefault(top.prefix + key, event.start_mark.line + self.offset)
                    else:
                        self._set_key(top, key, event)
                    continue
                if tag is None:
                    if plain:
                        value = values.get(text, _NO_KEY)
                        if value is _NO_KEY:
                            try:
                                value = values[text] = scalar_value(None, text, True)
                            except scalars.ScalarError as e:
                                self.problems.append((self._line(event), str(e)))
                                value = None
                    else:
                        value = text
                else:
                    value = self._value(tag, text, plain, event)
                if top is None:
                    self._set_root(value, event)
                    self._count = count
                    return
                if top.is_map:
                    key = top.key
                    top.key = _NO_KEY
                    if key.__class__ is str:
                        top.value[key] = value
                    else:
                        self._put(top, key, value, event)
                else:
                    if top.role == _ITEMS:
                        self._item_line(top, event, None)
                    top.value.append(value)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                count += 1
                if self.alias_count > 100:
                    self._count = count
                    self._check_aliasing(event.start_mark.line + self.offset)
                if len(stack) >= MAX_DEPTH:
                    raise _Fatal(event.start_mark.line + self.offset,
                                 f"nested deeper than {MAX_DEPTH:,} levels: Kubernetes' JSON decoding refuses it "
                                 "(exceeded max depth)")
                frame = _Frame(cls is MappingStartEvent, count - 1, event.anchor)
                if event.anchor is not None:
                    anchors[event.anchor] = frame
                if top is None or top.role or (top.is_map and top.key is _NO_KEY):
                    self._place(frame, top, event)
                stack.append(frame)
                top = frame
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                frame = stack.pop()
                top = stack[-1] if stack else None
                if frame.anchor is not None:
                    anchors[frame.anchor] = _Anchor(frame.value, count - frame.start, frame.height)
                if top is None:
                    self._set_root(frame.value, event)
                    self._count = count
                    return
                if top.height <= frame.height:
                    top.height = frame.height + 1
                if top.is_map:
                    key = top.key
                    top.key = _NO_KEY
                    if key.__class__ is str:
                        top.value[key] = frame.value
                    elif key is _INVALID_KEY:
                        top.key = _SKIP
                    elif key is _MERGE:
                        if not frame.is_map:
                            count -= 1  # go-yaml merges a sequence's maps without decoding the sequence
                        self._merge(top, [frame.value] if frame.is_map else frame.value, event)
                else:
                    top.value.append(frame.value)
            elif cls is AliasEvent:
                self._count = count
                self._alias(top, event)
                count = self._count
                if top is None:
                    return
            else:  # pragma: no cover - libyaml gives nothing else inside a document
                raise _Fatal(event.start_mark.line + self.offset, f"unexpected {cls.__name__}")

    def _line(self, event: Any) -> int:
        return int(event.start_mark.line) + self.offset

    def _value(self, tag: str | None, text: str, plain: bool, event: Any) -> Any:
        try:
            return scalars.value(tag, text, plain)
        except scalars.ScalarError as e:
            self.problems.append((self._line(event), str(e)))
            return None

    def _key(self, tag: str | None, text: str, plain: bool, event: Any) -> Any:
        try:
            return scalars.key(tag, text, plain)
        except scalars.ScalarError as e:
            self.problems.append((self._line(event), str(e)))
            return _SKIP

    def _set_key(self, top: _Frame, key: Any, event: Any) -> None:
        if key is _SKIP:
            top.key = _SKIP
            return
        mapping = top.value
        if key in mapping:
            merged = top.merged
            if merged is not None and key in merged:
                merged.discard(key)  # an explicit key overrides what a merge put there
            else:
                self.problems.append((self._line(event), f"duplicate key {key!r} in one mapping: Kubernetes' strict "
                                                         "decoding refuses it, and which value wins is undefined"))
                top.key = _SKIP
                return
        top.key = key
        if top.lines is not None:
            top.lines.setdefault(top.prefix + key, self._line(event))

    def _put(self, top: _Frame, key: Any, value: Any, event: Any) -> None:
        if key is _MERGE:
            self._merge(top, None, event)  # a scalar
        elif key is _INVALID_KEY:
            top.key = _SKIP
        elif key is not _SKIP:
            top.value[key] = value

    def _merge(self, top: _Frame, sources: list[Any] | None, event: Any) -> None:
        """Merge `sources` (mappings, earlier ones taking precedence) into `top`, as go-yaml v2 does."""
        if sources is None or not all(isinstance(source, dict) for source in sources):
            self.problems.append((self._line(event), "map merge requires map or sequence of maps as the value"))
            return
        mapping = top.value
        if top.merged is None:
            top.merged = set()
        merged = top.merged
        for source in reversed(sources):
            for key, item in source.items():
                if key not in mapping:
                    merged.add(key)
                mapping[key] = item  # in document order, over keys already set: go-yaml v2's order

    def _set_root(self, value: Any, event: Any) -> None:
        self.root = value
        if not self.root_line:
            self.root_line = self._line(event)

    def _item_line(self, top: _Frame, event: Any, lines: dict[str, int] | None) -> None:
        assert top.item_lines is not None
        top.item_lines.append((self._line(event), lines if lines is not None else {}))

    def _place(self, frame: _Frame, top: _Frame | None, event: Any) -> None:
        """Where a new collection is: the root, a key (refused), or the value of what it is under."""
        if top is None:
            self.root_line = self._line(event)
            if frame.is_map:
                frame.role, frame.lines = _ROOT, self.root_lines
            return
        if top.is_map:
            key = top.key
            if key is _NO_KEY:
                self.problems.append((self._line(event), "a mapping or sequence cannot be a mapping key: Kubernetes "
                                                         "cannot make it a JSON key (invalid map key)"))
                top.key = _INVALID_KEY
                return
            if top.role in (_ROOT, _ITEM) and key == "metadata" and frame.is_map:
                frame.role, frame.lines, frame.prefix = _META, top.lines, "metadata."
            elif top.role == _ROOT and key == "items" and not frame.is_map:
                frame.role, frame.item_lines = _ITEMS, []
                self.item_lines = frame.item_lines
            return
        if top.role == _ITEMS:
            lines: dict[str, int] = {}
            self._item_line(top, event, lines)
            if frame.is_map:
                frame.role, frame.lines = _ITEM, lines

    def _alias(self, top: _Frame | None, event: Any) -> None:
        self._count += 1
        line = self._line(event)
        name = event.anchor
        target = self.anchors.get(name)
        if target is None:
            raise _Fatal(line, f"unknown anchor '{name}' referenced")
        if isinstance(target, _Frame):
            raise _Fatal(line, f"anchor '{name}' value contains itself")
        self._count += target.size
        self.alias_count += target.size
        self._check_aliasing(line)
        if len(self.stack) + target.height > MAX_DEPTH:
            raise _Fatal(line, f"alias '{name}' makes the document nested deeper than {MAX_DEPTH:,} levels: "
                               "Kubernetes' JSON decoding refuses it (exceeded max depth)")
        if target.scalar is not None:
            tag, text, plain = target.scalar
        if top is not None and top.is_map and top.key is _NO_KEY:
            if target.scalar is None:
                self.problems.append((line, f"alias '{name}' to a mapping or sequence cannot be a mapping key "
                                            "(invalid map key)"))
                top.key = _SKIP
                return
            self._set_key(top, self._key(tag, text, plain, event), event)
            return
        value = target.value if target.scalar is None else self._value(tag, text, plain, event)
        if top is None:
            self._set_root(value, event)
            return
        if top.height <= target.height:
            top.height = target.height + 1
        if top.is_map:
            key = top.key
            top.key = _NO_KEY
            if key is _MERGE:
                self._merge(top, [value] if isinstance(value, dict) else None, event)
            elif key is _INVALID_KEY:
                top.key = _SKIP
            elif key is not _SKIP:
                top.value[key] = value
        else:
            if top.role == _ITEMS:
                self._item_line(top, event, None)
            top.value.append(value)


def error_line(error: yaml.YAMLError, text: str, offset: int) -> int:
    """The file line of a libyaml error, whose marks count from the start of `text`."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        return int(mark.line) + offset + 1
    position = getattr(error, "position", None)  # a ReaderError: a byte offset into the UTF-8 text
    if isinstance(position, int):
        return text.encode("utf-8", "surrogatepass")[:position].count(b"\n") + offset + 1
    return offset + 1
