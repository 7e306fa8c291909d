"""The JSON dialect and pretty style of the original dbd's files (OpenXT ``libs/json``).

Reading (:func:`parse_document`, :func:`loads`) accepts everything the original's parser
accepted, so any file the original wrote, and any ``inject`` text it took, loads here:

* the first complete JSON value is the document; whatever follows it is ignored (the original
  stopped at the first value; its temporary files were written without truncation and could
  carry the tail of an older, longer file). :attr:`Parsed.trailing` tells the caller so it can
  warn;
* numbers as the original scanned them: ``1.``, ``-.5``, ``1.e5`` and ``-01`` are numbers,
  ``01`` is an error (leading zero); integers must fit in 64 bits; a number with ``.`` or an
  exponent is a float;
* strings may hold raw control characters and raw newlines; the escapes are the standard ones
  (``\\uXXXX`` with surrogate pairs);
* an empty array ``[]`` is an empty array (the original's ``["xyz"]`` bug is in
  rpc-proxy's JSON-to-D-Bus conversion, not in this dialect; nothing of it exists here);
* duplicate object keys: the first occurrence wins (the original kept both, but every lookup
  found the first).

Deliberate deviations, all on input the original could not round-trip: a float that overflows
to infinity (``1e999``) is refused (the original stored ``inf`` and then wrote a file it could
not read back), and an unpaired surrogate escape (``\\udc00``) is refused (it has no UTF-8
form).

Writing (:func:`dumps_pretty`) is byte-for-byte the original's pretty printer: two-space indent,
one member or element per line, ``"key": value``, ``,`` at line ends, ``{ }`` for an empty
object, ``[]`` for an empty array, ``/`` escaped as ``\\/``, only ``" \\ / \\b \\f \\n \\r \\t``
escaped (everything else, including other control characters and non-ASCII, raw UTF-8), floats
as C ``%f`` (six decimals), integers in decimal, and a trailing newline. :func:`dumps_compact`
is the original's one-line form (used to render scalars for ``read``).

Bounds and failures: input longer than ``max_chars`` or nested deeper than ``max_depth`` and
every malformed input raise :class:`JsonFormatError`, which carries line, column and offset.
A fast path uses the standard library's C decoder for the (common) subset of the dialect it
parses identically; anything it rejects or cannot decide is re-parsed by the reference parser
below, which is what defines the accepted language. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from persistence._limits import DbError

__all__ = [
    "MAX_CHARS",
    "MAX_DEPTH",
    "JsonFormatError",
    "JsonValue",
    "Parsed",
    "decode_utf8",
    "dumps_compact",
    "dumps_pretty",
    "format_float",
    "loads",
    "parse_document",
    "quote",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

# Deepest nesting accepted. The recursive reference parser uses two Python frames per level;
# 256 levels stay well inside the default recursion limit of 1000. Trees are limited to 64
# levels for clients (see _limits); this bound only protects the parser.
MAX_DEPTH = 256
# Largest text accepted (characters). The biggest real file is the main `db` (a few MiB); a file
# of more than 256 Mi characters is not a database.
MAX_CHARS = 256 << 20

_WS = " \t\n\r"
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class JsonFormatError(DbError):
    """Malformed JSON text; ``line`` and ``column`` are 1-based, ``offset`` 0-based."""

    def __init__(self, message: str, *, line: int, column: int, offset: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.reason = message
        self.line = line
        self.column = column
        self.offset = offset


def _error_at(text: str, offset: int, message: str) -> JsonFormatError:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return JsonFormatError(message, line=line, column=column, offset=offset)


@dataclass(frozen=True, slots=True)
class Parsed:
    """Result of :func:`parse_document`: the first value and where it ended."""

    value: JsonValue
    end: int  # offset just after the value
    trailing: bool  # True when non-whitespace text follows the value (ignored, as the original)


# --------------------------------------------------------------------------- reference parser


_STR_PLAIN = re.compile(r'[^"\\]*')
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_NUM_INT = re.compile(r"-?[0-9]*")
_DIGITS = re.compile(r"[0-9]*")
_EXP = re.compile(r"[-+0-9]*")
# escape letter -> character (the JSON escapes; \uXXXX is handled apart)
_SIMPLE_ESCAPES = dict(zip('"\\/bfnrt', '"\\/\b\f\n\r\t', strict=True))


class _Parser:
    """Recursive-descent parser of the original's dialect (see the module docstring)."""

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, message: str, offset: int | None = None) -> JsonFormatError:
        return _error_at(self.text, self.pos if offset is None else offset, message)

    def skip_ws(self) -> None:
        text, pos, n = self.text, self.pos, len(self.text)
        while pos < n and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def value(self, depth: int) -> JsonValue:
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of input, expecting a value")
        c = self.text[self.pos]
        if c == "{":
            return self.obj(depth + 1)
        if c == "[":
            return self.array(depth + 1)
        if c == '"':
            return self.string()
        if c == "-" or "0" <= c <= "9":
            return self.number()
        for word, result in (("null", None), ("true", True), ("false", False)):
            if c == word[0]:
                if self.text.startswith(word, self.pos):
                    self.pos += len(word)
                    return result
                raise self.fail(f"invalid literal, expecting {word!r}")
        raise self.fail(f"unexpected character {c!r}, expecting a value")

    def enter(self, depth: int) -> None:
        if depth > self.max_depth:
            raise self.fail(f"nesting deeper than {self.max_depth} levels")

    def obj(self, depth: int) -> dict[str, JsonValue]:
        self.enter(depth)
        self.pos += 1
        result: dict[str, JsonValue] = {}
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            self.skip_ws()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expecting a string key")
            key = self.string()
            self.skip_ws()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expecting ':' after an object key")
            self.pos += 1
            item = self.value(depth)
            if key not in result:  # duplicate keys: the first occurrence wins
                result[key] = item
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("}", self.pos):
                self.pos += 1
                return result
            else:
                raise self.fail("expecting ',' or '}' in an object")

    def array(self, depth: int) -> list[JsonValue]:
        self.enter(depth)
        self.pos += 1
        result: list[JsonValue] = []
        self.skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.append(self.value(depth))
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("]", self.pos):
                self.pos += 1
                return result
            else:
                raise self.fail("expecting ',' or ']' in an array")

    def string(self) -> str:
        text = self.text
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        while True:
            m = _STR_PLAIN.match(text, self.pos)
            assert m is not None  # the pattern matches the empty string
            parts.append(m.group())
            self.pos = m.end()
            if self.pos >= len(text):
                raise self.fail("unterminated string", start)
            if text[self.pos] == '"':
                self.pos += 1
                return "".join(parts)
            parts.append(self.escape())

    def hex4(self) -> int:
        m = _HEX4.match(self.text, self.pos)
        if m is None:
            raise self.fail("expecting four hex digits after \\u")
        self.pos = m.end()
        return int(m.group(), 16)

    def escape(self) -> str:
        at = self.pos
        self.pos += 1
        if self.pos >= len(self.text):
            raise self.fail("unterminated string", at)
        c = self.text[self.pos]
        self.pos += 1
        simple = _SIMPLE_ESCAPES.get(c)
        if simple is not None:
            return simple
        if c != "u":
            raise self.fail(f"invalid escape \\{c}", at)
        code = self.hex4()
        if 0xDC00 <= code <= 0xDFFF:
            raise self.fail("unpaired low surrogate escape", at)
        if 0xD800 <= code <= 0xDBFF:
            if not self.text.startswith("\\u", self.pos):
                raise self.fail("high surrogate escape not followed by a low surrogate", at)
            self.pos += 2
            low = self.hex4()
            if not 0xDC00 <= low <= 0xDFFF:
                raise self.fail("high surrogate escape not followed by a low surrogate", at)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return chr(code)

    def number(self) -> int | float:
        text, start = self.text, self.pos
        m = _NUM_INT.match(text, start)
        assert m is not None
        int_part = m.group()
        pos = m.end()
        frac: str | None = None
        exp: str | None = None
        if text.startswith(".", pos):
            fm = _DIGITS.match(text, pos + 1)
            assert fm is not None
            frac, pos = fm.group(), fm.end()
        if pos < len(text) and text[pos] in "eE":
            em = _EXP.match(text, pos + 1)
            assert em is not None
            exp, pos = em.group(), em.end()
        self.pos = pos
        if pos < len(text) and text[pos] not in _WS and text[pos] not in ",]}":
            raise self.fail(f"unexpected character {text[pos]!r} in a number")
        token = text[start:pos]
        if int_part.startswith("0") and len(int_part) > 1:
            raise self.fail(f"number {token!r} has a leading zero", start)
        if frac is None and exp is None:
            try:
                number = int(int_part)
            except ValueError:
                raise self.fail(f"{token!r} is not a valid number", start) from None
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise self.fail(f"integer {token!r} does not fit in 64 bits", start)
            return number
        spelled = f"{int_part}.{frac or ''}" + (f"e{exp}" if exp is not None else "")
        try:
            real = float(spelled)
        except ValueError:
            raise self.fail(f"{token!r} is not a valid number", start) from None
        if math.isinf(real):
            raise self.fail(f"number {token!r} is out of range", start)
        return real


# --------------------------------------------------------------------------- fast path


class _Fallback(Exception):
    """Raised inside the C decoder's hooks to hand the text to the reference parser."""


def _pairs(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    result = dict(pairs)
    if len(result) != len(pairs):
        result = {}
        for key, item in pairs:
            result.setdefault(key, item)
    return result


def _float(token: str) -> float:
    real = float(token)
    if math.isinf(real):
        raise _Fallback
    return real


def _int(token: str) -> int:
    number = int(token)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise _Fallback
    return number


def _constant(token: str) -> float:
    raise _Fallback


_DECODER = json.JSONDecoder(
    strict=False,
    object_pairs_hook=_pairs,
    parse_float=_float,
    parse_int=_int,
    parse_constant=_constant,
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _depth_exceeds(value: JsonValue, max_depth: int) -> bool:
    stack: list[tuple[JsonValue, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[JsonValue] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _fast(text: str, start: int, max_depth: int) -> Parsed | None:
    if _SURROGATE_ESCAPE.search(text):
        return None
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError, _Fallback):
        return None
    if text[end:].strip(_WS):
        return None  # trailing text: let the reference parser decide exactly
    if _depth_exceeds(value, max_depth):
        return None
    return Parsed(value, end, False)


def parse_document(
    text: str, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS
) -> Parsed:
    """Parse the first JSON value of ``text`` in the original's dialect.

    Raises :class:`JsonFormatError` on malformed input, on input of more than ``max_chars``
    characters, on nesting deeper than ``max_depth``, and on whitespace-only input.
    """
    if len(text) > max_chars:
        raise JsonFormatError(
            f"input of {len(text)} characters exceeds the limit of {max_chars}",
            line=1,
            column=1,
            offset=0,
        )
    start = 0
    while start < len(text) and text[start] in _WS:
        start += 1
    if start == len(text):
        raise _error_at(text, start, "no JSON value (empty or whitespace-only input)")
    fast = _fast(text, start, max_depth)
    if fast is not None:
        return fast
    parser = _Parser(text, max_depth)
    parser.pos = start
    value = parser.value(0)
    end = parser.pos
    return Parsed(value, end, bool(text[end:].strip(_WS)))


def loads(text: str, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS) -> JsonValue:
    """The value of :func:`parse_document` (trailing text ignored, as the original did)."""
    return parse_document(text, max_depth=max_depth, max_chars=max_chars).value


def decode_utf8(data: bytes) -> str:
    """Decode file bytes as UTF-8; invalid bytes raise :class:`JsonFormatError` at their place."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", "replace")
        raise _error_at(prefix, len(prefix), f"invalid UTF-8 ({exc.reason})") from None


# --------------------------------------------------------------------------- writer

# character -> its escape on output: exactly the set the original's printer escaped
_ESCAPES = str.maketrans({c: "\\" + e for c, e in zip('"\\/\n\t\r\b\f', '"\\/ntrbf', strict=True)})


def quote(text: str) -> str:
    """A JSON string literal escaped as the original did."""
    return '"' + text.translate(_ESCAPES) + '"'


def format_float(real: float) -> str:
    """C ``%f``, as the original printed every float (so ``1.5`` is ``1.500000``)."""
    if not math.isfinite(real):
        raise ValueError(f"cannot write the non-finite float {real!r}")
    return "%f" % real  # noqa: UP031 - exactly printf's %f


Convert = Callable[[object], JsonValue]


def _scalar(value: object) -> str | None:
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    return None


def _emit(
    value: object, level: int, out: list[str], convert: Convert | None, pretty: bool
) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
        return
    if isinstance(value, dict):
        items = [(quote(key) + ": ", item) for key, item in value.items()]
        empty, opening, closing = ("{ }" if pretty else "{}"), "{", "}"
    elif isinstance(value, list):
        items = [("", item) for item in value]
        empty, opening, closing = "[]", "[", "]"
    elif convert is not None:
        _emit(convert(value), level, out, None, pretty)
        return
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
    if not items:
        out.append(empty)
        return
    indent = "  " * (level + 1) if pretty else ""
    out.append(opening + "\n" if pretty else opening)
    for i, (prefix, item) in enumerate(items):
        if i:
            out.append(",\n" if pretty else ", ")
        out.append(indent + prefix)
        _emit(item, level + 1, out, convert, pretty)
    out.append("\n" + "  " * level + closing if pretty else closing)


def dumps_pretty(value: object, *, convert: Convert | None = None) -> str:
    """The original's pretty form of ``value``, with its trailing newline.

    ``convert`` maps objects that are not JSON values (the tree's binary nodes) to a JSON value.
    """
    out: list[str] = []
    _emit(value, 0, out, convert, True)
    out.append("\n")
    return "".join(out)


def dumps_compact(value: object, *, convert: Convert | None = None) -> str:
    """The original's one-line form: ``{"a": 1, "b": [true, 2.000000]}``, no newline."""
    out: list[str] = []
    _emit(value, 0, out, convert, False)
    return "".join(out)
