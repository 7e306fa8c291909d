"""xec's argument grammar: a command-line string to a DBus value of a given type.

Values come out in jeepney's conventions: ints, bools, floats, str (``s``, ``o``), bytes (``ay``),
list (other arrays), dict (``a{..}``), tuple (structs).

Grammar, per type:

- top-level ``s`` and ``o``: the whole argument verbatim (may be empty, no quoting);
- inside a container, ``s`` and ``o`` are quoted with ``"`` or ``'``; a backslash escapes only a
  backslash or the active quote character, any other backslash stays literal;
- integers (``y n q i u x t h``): optional ``-`` then digits. Unsigned types (``y q u t h``)
  wrap modulo 2^bits, so ``-1`` as ``u`` is 4294967295 (as the original);
- ``d``: optional ``-``, digits, optional ``.digits`` (no exponent, no leading ``.``);
- ``b``: ``true`` or ``1``, ``false`` or ``0`` (case-sensitive);
- arrays and structs ``[a, b, ...]``, dicts ``{k: v, ...}``; whitespace around separators;
- ``v`` and ``g`` cannot be written (as the original).

Deliberate fixes (docs/compatibility.md): the whole argument must be consumed (the original
ignored trailing garbage: ``12abc`` was 12, ``truex`` true); a signed integer out of its range
is an error (the original wrapped it); object paths must be valid; strings must be valid
UTF-8 without NUL (the bus would refuse them); a dict key given twice is an error. Leading
and trailing whitespace around a non-string top-level argument is allowed.

Every failure raises `LiteralError`: ``error parsing argument N: <reason>`` (N counts from 1).
Pure; recursion is bounded by the signature's nesting (at most 64 levels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rpc.idl import DBusType, parse_signature, parse_single_type

__all__ = ["LiteralError", "parse_argument", "parse_arguments"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_UNSIGNED_BITS = {"y": 8, "q": 16, "u": 32, "t": 64, "h": 32}
_SIGNED_BITS = {"n": 16, "i": 32, "x": 64}
_INT_RE = re.compile(r"-?[0-9]+")
_DOUBLE_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_PATH_RE = re.compile(r"/|(?:/[A-Za-z0-9_]+)+")


class LiteralError(ValueError):
    """An argument string does not parse as its DBus type."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"error parsing argument {index}: {reason}")


class _Fail(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def where(self) -> str:
        if self.pos >= len(self.text):
            return "at the end"
        return f"at position {self.pos + 1} ({self.text[self.pos : self.pos + 10]!r})"

    def spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _Fail(f"expected {char!r} {self.where()}")
        self.pos += 1

    def match(self, regex: re.Pattern[str], what: str) -> str:
        m = regex.match(self.text, self.pos)
        if m is None:
            raise _Fail(f"expected {what} {self.where()}")
        self.pos = m.end()
        return m.group()

    def value(self, t: DBusType) -> Any:
        code = t.code
        if code in _UNSIGNED_BITS or code in _SIGNED_BITS:
            return _integer(self.match(_INT_RE, f"an integer for type {code!r}"), code)
        if code == "b":
            for word, result in (("true", True), ("1", True), ("false", False), ("0", False)):
                if self.text.startswith(word, self.pos):
                    self.pos += len(word)
                    return result
            raise _Fail(f"expected true, false, 1 or 0 {self.where()}")
        if code == "d":
            return float(self.match(_DOUBLE_RE, "a number"))
        if code in "so":
            return _checked(self.quoted(), code)
        if code == "a":
            if t.is_dict:
                return self.dict(t.key, t.value)
            items = self.sequence(t.element)
            return bytes(items) if t.element.code == "y" else items
        if code == "(":
            return self.struct(t.children)
        raise _Fail(f"a value of type {t.signature!r} cannot be given on the command line")

    def quoted(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise _Fail(f"expected a quoted string {self.where()}")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise _Fail(f"string opened at position {start + 1} is not closed")
            c = text[self.pos]
            if c == quote:
                self.pos += 1
                return "".join(out)
            if c == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in ("\\", quote):
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1

    def items(self, close: str, item: Any) -> None:
        """``item()`` separated by commas up to ``close``; the opener is consumed already."""
        self.spaces()
        if self.peek() == close:
            self.pos += 1
            return
        while True:
            self.spaces()
            item()
            self.spaces()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == close:
                self.pos += 1
                return
            raise _Fail(f"expected ',' or {close!r} {self.where()}")

    def sequence(self, element: DBusType) -> list[Any]:
        result: list[Any] = []
        self.expect("[")
        self.items("]", lambda: result.append(self.value(element)))
        return result

    def dict(self, key_type: DBusType, value_type: DBusType) -> dict[Any, Any]:
        result: dict[Any, Any] = {}

        def entry() -> None:
            key = self.value(key_type)
            if key in result:
                raise _Fail(f"dict key {key!r} is given twice")
            self.spaces()
            self.expect(":")
            self.spaces()
            result[key] = self.value(value_type)

        self.expect("{")
        self.items("}", entry)
        return result

    def struct(self, fields: tuple[DBusType, ...]) -> tuple[Any, ...]:
        result: list[Any] = []
        self.expect("[")
        for n, field in enumerate(fields):
            self.spaces()
            if n:
                self.expect(",")
                self.spaces()
            result.append(self.value(field))
        self.spaces()
        if self.peek() == ",":
            raise _Fail(f"struct has {len(fields)} fields, more were given")
        self.expect("]")
        return tuple(result)


def _integer(digits: str, code: str) -> int:
    try:
        number = int(digits)
    except ValueError:  # more digits than Python converts
        raise _Fail(f"integer {digits[:20]}... is too long") from None
    if code in _UNSIGNED_BITS:
        return number % (1 << _UNSIGNED_BITS[code])
    bits = _SIGNED_BITS[code]
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= number <= high:
        raise _Fail(f"{number} is out of range for type {code!r} ({low}..{high})")
    return number


def _checked(text: str, code: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
        raise _Fail(f"{text!r} is not valid UTF-8") from None
    if "\0" in text:
        raise _Fail("a DBus string cannot contain a NUL character")
    if code == "o" and _PATH_RE.fullmatch(text) is None:
        raise _Fail(f"{text!r} is not a valid object path")
    return text


def parse_argument(text: str, type: DBusType | str, index: int = 1) -> Any:
    """Parse one command-line argument as ``type`` (a single complete type).

    ``index`` (from 1) only labels errors. Raises `LiteralError` if the text does not parse
    completely, and `SignatureError` if ``type`` is not one complete type.
    """
    t = parse_single_type(type) if isinstance(type, str) else type
    try:
        if t.code in "so":
            return _checked(text, t.code)
        parser = _Parser(text)
        parser.spaces()
        result = parser.value(t)
        parser.spaces()
        if parser.pos != len(text):
            raise _Fail(f"unexpected {text[parser.pos : parser.pos + 20]!r} after the value")
        return result
    except _Fail as fail:
        raise LiteralError(index, fail.reason) from None


def parse_arguments(texts: Sequence[str], signature: str | Sequence[DBusType]) -> list[Any]:
    """Parse each argument by the matching complete type of ``signature``.

    Raises `ValueError` if the counts differ, `LiteralError` for the first bad argument.
    """
    types = parse_signature(signature) if isinstance(signature, str) else tuple(signature)
    if len(types) != len(texts):
        raise ValueError(f"expected {len(types)} arguments, got {len(texts)}")
    return [
        parse_argument(text, t, n) for n, (text, t) in enumerate(zip(texts, types, strict=True), 1)
    ]
