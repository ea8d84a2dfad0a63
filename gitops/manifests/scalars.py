"""YAML scalars and mapping keys as Kubernetes reads them. Pure.

kubectl and the API server read YAML with sigs.k8s.io/yaml: go-yaml v2 resolves each scalar
(YAML 1.1 booleans such as `y` and `on`, octal `0755`, `1_000`; timestamps and base 60 left as
strings), the result is written as JSON (mapping keys made strings; `.inf` and `.nan` refused),
and that JSON is read back keeping integers as int64 and every other number as float64. The
functions here give the value that JSON ends as, so a manifest means to gitops exactly what it
means to kubectl. The rules are go-yaml's resolve.go and decode.go, sigs.k8s.io/yaml's
convertToJSONableObject, and Go's strconv and encoding/json, checked against kubectl itself in
tests/integration/test_parse_differential.py.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import math
import re
import struct
from decimal import Decimal
from typing import Any

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
TIMESTAMP = "tag:yaml.org,2002:timestamp"
BINARY = "tag:yaml.org,2002:binary"
MERGE = "tag:yaml.org,2002:merge"
_UINT = "uint64"  # go-yaml's own type for integers between 2^63 and 2^64: valid values, invalid keys
_RESOLVABLE = frozenset({"", STR, INT, FLOAT, BOOL, NULL, TIMESTAMP})

_INT64_MIN, _INT64_END, _UINT64_END = -(2**63), 2**63, 2**64


class ScalarError(ValueError):
    """A scalar or key Kubernetes cannot turn into JSON; the message says why, for a Problem."""


def _table() -> dict[str, tuple[str, Any]]:
    table: dict[str, tuple[str, Any]] = {}
    for words, tag, value in (
            ("y Y yes Yes YES true True TRUE on On ON", BOOL, True),
            ("n N no No NO false False FALSE off Off OFF", BOOL, False),
            ("~ null Null NULL", NULL, None),
            (".nan .NaN .NAN", FLOAT, math.nan),
            (".inf .Inf .INF +.inf +.Inf +.INF", FLOAT, math.inf),
            ("-.inf -.Inf -.INF", FLOAT, -math.inf),
            ("<<", MERGE, "<<")):
        for word in words.split():
            table[word] = (tag, value)
    table[""] = (NULL, None)
    return table


_WORDS = _table()
# go-yaml's resolveTable: the first character says whether a plain scalar can be anything but a string.
_HINTS = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M"),
          ".": "."}
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_DOT_FLOAT = re.compile(r"\.[0-9_]*(?:[eE][-+]?[0-9][0-9_]*)?")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"
                        r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[-+]\d{2}:\d{2}))"
                        r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _go_int(plain: str) -> tuple[str, int] | None:
    """strconv.ParseInt(s, 0, 64), then ParseUint: base prefixes, a leading 0 for octal."""
    m = _GO_INT.fullmatch(plain)
    if m is None:
        return None
    sign, body = m.groups()
    base, digits = 10, body
    if len(body) > 1 and body[0] == "0":
        prefix = body[1].lower()
        base, digits = {"x": (16, body[2:]), "b": (2, body[2:]), "o": (8, body[2:])}.get(prefix, (8, body[1:]))
    digits = digits.lstrip("0")
    if len(digits) > 64:  # more digits than any 64-bit value has, in any base: never converted
        return None
    value = int(digits or "0", base)
    if sign == "-":
        value = -value
    if _INT64_MIN <= value < _INT64_END:
        return INT, value
    if not sign and value < _UINT64_END:
        return _UINT, value
    return None


def _underscores_ok(s: str) -> bool:
    """strconv's underscoreOK: an underscore only between digits."""
    saw = "^"
    for c in s:
        if c.isdigit():
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # strconv.ParseFloat's range error


def _is_timestamp(s: str) -> bool:
    """go-yaml's parseTimestamp: the four layouts it tries with time.Parse, with their ranges."""
    m = _TIMESTAMP.fullmatch(s)
    if m is None:
        return False
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1]:
        return False
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return False
    clock = [int(v) for v in (m[4], m[5], m[6]) if v] or [int(v) for v in (m[7], m[8], m[9]) if v]
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)


def _resolve(tag: str, s: str) -> tuple[str, Any]:
    """go-yaml v2's resolve(): (tag, value) of a scalar that is plain (`tag` "") or explicitly tagged."""
    if tag not in _RESOLVABLE:
        return tag, s
    kind: str = STR
    value: Any = s
    hint = _HINTS.get(s[0]) if s else "N"
    if hint is not None and tag != STR:
        known = _WORDS.get(s)
        if known is not None:
            kind, value = known
        elif hint == ".":
            if _GO_DOT_FLOAT.fullmatch(s) and any(c.isdigit() for c in s.partition("e")[0].partition("E")[0]) \
                    and ("_" not in s or _underscores_ok(s)):
                number = _finite(s.replace("_", ""))
                if number is not None:
                    kind, value = FLOAT, number
        elif hint in "DS":
            if tag == TIMESTAMP and _is_timestamp(s):
                kind = TIMESTAMP  # kept as its text: go-yaml gives interface{} targets a string
            else:
                plain = s.replace("_", "")
                integer = _go_int(plain)
                if integer is not None:
                    kind, value = integer
                elif _YAML_STYLE_FLOAT.fullmatch(plain):
                    number = _finite(plain)
                    if number is not None:
                        kind, value = FLOAT, number
    if tag in ("", kind) or (tag == INT and kind == _UINT):
        return kind, value
    if tag == FLOAT and kind == INT:
        return FLOAT, float(value)
    raise ScalarError(f"cannot decode {_short(INT if kind == _UINT else kind)} `{s}` as a {_short(tag)}")


def _go_bytes_to_str(data: bytes) -> str:
    # encoding/json writes each byte that is not valid UTF-8 as U+FFFD.
    return data.decode("utf-8", errors="gitops-per-byte-replace")


codecs.register_error("gitops-per-byte-replace",
                      lambda e: ("\ufffd" * (e.end - e.start), e.end))  # type: ignore[attr-defined]


def _binary(s: str) -> str:
    try:
        data = base64.b64decode(s.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise ScalarError("!!binary value contains invalid base64 data") from None
    return _go_bytes_to_str(data)


def json_number(value: float) -> int | float:
    """A float as it comes back from Kubernetes' JSON: encoding/json writes integral values below
    1e21 as digits, which are then read as an integer."""
    if not math.isfinite(value):
        raise ScalarError(f"{_go_float_text(value)} cannot be written as JSON: Kubernetes refuses .inf and .nan")
    if value.is_integer() and abs(value) < 1e21:
        return int(Decimal(repr(value)))
    return value


def _go_float_text(value: float) -> str:
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def _json_value(kind: str, value: Any, s: str) -> Any:
    if kind in (STR, TIMESTAMP, BOOL, NULL, MERGE):
        return s if kind == TIMESTAMP else value
    if kind == INT:
        return value
    if kind == _UINT:
        return json_number(float(value))
    if kind == FLOAT:
        return json_number(value)
    if kind == BINARY:
        return _binary(s)
    return s  # any other tag (!foo, !!python/object, !!map on a scalar): go-yaml keeps the text


def value(tag: str | None, s: str, plain: bool) -> Any:
    """The JSON value of a scalar; `tag` None when it has none, `plain` when it is unquoted."""
    if tag is None:
        if not plain:
            return s
        tag = ""
    kind, resolved = _resolve(tag, s)
    return _json_value(kind, resolved, s)


def key(tag: str | None, s: str, plain: bool) -> str:
    """A mapping key as sigs.k8s.io/yaml makes it a JSON string."""
    if tag is None:
        if not plain:
            return s
        tag = ""
    kind, resolved = _resolve(tag, s)
    if kind == BOOL:
        return "true" if resolved else "false"
    if kind == INT:
        return str(resolved)
    if kind == FLOAT:
        return float32_text(resolved)
    if kind == NULL:
        raise ScalarError(f"a mapping key cannot be null (`{s}`): Kubernetes cannot make it a JSON key; quote it")
    if kind == _UINT:
        raise ScalarError(f"a mapping key cannot be an integer above 2^63 (`{s}`): Kubernetes cannot make it a "
                          "JSON key; quote it")
    if kind == BINARY:
        return _binary(s)
    return s


def float32_text(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 32), as sigs.k8s.io/yaml writes a float key."""
    if math.isnan(value):
        return ".nan"
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        single = math.inf if value > 0 else -math.inf
    if math.isinf(single):
        return ".inf" if single > 0 else "-.inf"
    if single == 0:
        return "-0" if math.copysign(1, single) < 0 else "0"
    for precision in range(1, 10):
        text = f"{single:.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, _, exponent_text = text.partition("e")
    digits = mantissa.replace(".", "").lstrip("-")
    exponent = int(exponent_text)
    sign = "-" if single < 0 else ""
    if exponent < -4 or exponent >= 6:  # %e for the shortest form, as Go's 'g' decides it
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def is_merge_key(tag: str | None, s: str, plain: bool) -> bool:
    """go-yaml's isMerge: an unquoted (or `!`-tagged, or `!!merge`) `<<`."""
    return s == "<<" and ((tag is None and plain) or tag in ("!", MERGE))
