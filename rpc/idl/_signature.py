"""DBus type signatures: parse into a type tree, validate, split, re-serialise.

A signature is a string of type codes (DBus specification, "Type System"). This module turns one
into a tuple of complete types (`DBusType` trees) and back, and checks every rule the
specification gives:

- only the codes ``y b n q i u x t d s o g h v a ( ) { }`` are allowed (the reserved codes
  ``r e m * ? @ & ^`` are rejected);
- an array code must be followed by a complete element type;
- a struct has at least one field and its parentheses balance;
- a dict entry ``{KV}`` appears only as an array element, has exactly two complete types, and its
  key is a basic type;
- at most 255 characters, at most 32 nested arrays and at most 32 nested structs/dict entries.

Every failure raises `SignatureError` (a `ValueError`) naming the signature, the character
position and the rule broken. Parsing is pure, bounded by the limits above, and cached.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "BASIC_CODES",
    "MAX_ARRAY_DEPTH",
    "MAX_SIGNATURE_LENGTH",
    "MAX_STRUCT_DEPTH",
    "DBusType",
    "SignatureError",
    "is_valid_signature",
    "parse_signature",
    "parse_single_type",
    "split_signature",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

# Limits from the DBus specification ("Valid Signatures").
MAX_SIGNATURE_LENGTH = 255
MAX_ARRAY_DEPTH = 32
MAX_STRUCT_DEPTH = 32

#: Codes of the basic (non-container) types; only these may be dict keys.
BASIC_CODES = frozenset("ybnqiuxtdsogh")
_RESERVED = frozenset("rem*?@&^")


class SignatureError(ValueError):
    """A DBus signature broke a rule of the specification.

    ``signature`` is the offending string, ``position`` the index of the character where the
    problem was found (``len(signature)`` for "ended too early"), ``reason`` the rule broken.
    """

    def __init__(self, signature: str, position: int, reason: str) -> None:
        self.signature = signature
        self.position = position
        self.reason = reason
        super().__init__(f"invalid DBus signature {signature!r} at position {position}: {reason}")


class DBusType(NamedTuple):
    """One complete DBus type.

    ``code`` is the type code: a basic code, ``v``, ``a`` (one child: the element type), ``(``
    (a struct; children are its fields) or ``{`` (a dict entry; children are key and value).
    ``str(t)`` gives the signature back.
    """

    code: str
    children: tuple[DBusType, ...] = ()

    def __str__(self) -> str:
        return self.signature

    @property
    def signature(self) -> str:
        """The signature string of this type."""
        if self.code == "a":
            return "a" + self.children[0].signature
        if self.code == "(":
            return "(" + "".join(c.signature for c in self.children) + ")"
        if self.code == "{":
            return "{" + "".join(c.signature for c in self.children) + "}"
        return self.code

    @property
    def is_basic(self) -> bool:
        return self.code in BASIC_CODES

    @property
    def is_array(self) -> bool:
        return self.code == "a"

    @property
    def is_struct(self) -> bool:
        return self.code == "("

    @property
    def is_dict(self) -> bool:
        """True for ``a{KV}``: an array whose elements are dict entries."""
        return self.code == "a" and self.children[0].code == "{"

    @property
    def element(self) -> DBusType:
        """The element type of an array; `TypeError` for any other type."""
        if self.code != "a":
            raise TypeError(f"{self.signature!r} is not an array type")
        return self.children[0]

    @property
    def key(self) -> DBusType:
        """The key type of a dict (``a{KV}``) or dict entry; `TypeError` otherwise."""
        return self._entry().children[0]

    @property
    def value(self) -> DBusType:
        """The value type of a dict (``a{KV}``) or dict entry; `TypeError` otherwise."""
        return self._entry().children[1]

    def _entry(self) -> DBusType:
        if self.code == "{":
            return self
        if self.is_dict:
            return self.children[0]
        raise TypeError(f"{self.signature!r} is not a dict type")


class _Parser:
    """Recursive descent over one signature; depth is bounded by the spec limits."""

    __slots__ = ("pos", "sig")

    def __init__(self, sig: str) -> None:
        self.sig = sig
        self.pos = 0

    def fail(self, reason: str, position: int | None = None) -> SignatureError:
        return SignatureError(self.sig, self.pos if position is None else position, reason)

    def complete(self, arrays: int, structs: int, in_array: bool) -> DBusType:
        if self.pos >= len(self.sig):
            raise self.fail("expected a complete type, signature ended")
        start = self.pos
        c = self.sig[self.pos]
        self.pos += 1
        if c in BASIC_CODES or c == "v":
            return DBusType(c)
        if c == "a":
            if arrays + 1 > MAX_ARRAY_DEPTH:
                raise self.fail(f"more than {MAX_ARRAY_DEPTH} nested arrays", start)
            if self.pos >= len(self.sig):
                raise self.fail("array code 'a' is not followed by an element type")
            return DBusType("a", (self.complete(arrays + 1, structs, True),))
        if c == "(":
            if structs + 1 > MAX_STRUCT_DEPTH:
                raise self.fail(f"more than {MAX_STRUCT_DEPTH} nested structs", start)
            fields: list[DBusType] = []
            while True:
                if self.pos >= len(self.sig):
                    raise self.fail(f"struct opened at position {start} is not closed")
                if self.sig[self.pos] == ")":
                    self.pos += 1
                    break
                fields.append(self.complete(arrays, structs + 1, False))
            if not fields:
                raise self.fail("empty struct '()'", start)
            return DBusType("(", tuple(fields))
        if c == "{":
            if not in_array:
                raise self.fail("dict entry '{' outside an array", start)
            if structs + 1 > MAX_STRUCT_DEPTH:
                raise self.fail(f"more than {MAX_STRUCT_DEPTH} nested structs", start)
            if self.pos >= len(self.sig):
                raise self.fail(f"dict entry opened at position {start} is not closed")
            key_pos = self.pos
            key = self.complete(arrays, structs + 1, False)
            if not key.is_basic:
                raise self.fail(f"dict key must be a basic type, not {key.signature!r}", key_pos)
            if self.pos >= len(self.sig) or self.sig[self.pos] == "}":
                raise self.fail("dict entry needs a key and a value type")
            value = self.complete(arrays, structs + 1, False)
            if self.pos >= len(self.sig):
                raise self.fail(f"dict entry opened at position {start} is not closed")
            if self.sig[self.pos] != "}":
                raise self.fail("dict entry has more than two types")
            self.pos += 1
            return DBusType("{", (key, value))
        if c in ")}":
            raise self.fail(f"unbalanced {c!r}", start)
        if c in _RESERVED:
            raise self.fail(f"reserved type code {c!r}", start)
        raise self.fail(f"unknown type code {c!r}", start)


@lru_cache(maxsize=2048)
def parse_signature(signature: str) -> tuple[DBusType, ...]:
    """Parse a signature into its complete types, in order (``""`` gives ``()``).

    Raises `SignatureError` if the signature breaks any rule of the specification.
    """
    if not isinstance(signature, str):
        raise TypeError(f"a signature is a str, not {type(signature).__name__}")
    if len(signature) > MAX_SIGNATURE_LENGTH:
        raise SignatureError(
            signature, MAX_SIGNATURE_LENGTH, f"longer than {MAX_SIGNATURE_LENGTH} characters"
        )
    parser = _Parser(signature)
    types: list[DBusType] = []
    while parser.pos < len(signature):
        types.append(parser.complete(0, 0, False))
    return tuple(types)


def parse_single_type(signature: str) -> DBusType:
    """Parse a signature that must hold exactly one complete type.

    Raises `SignatureError` if it is invalid, empty or holds more than one complete type.
    """
    types = parse_signature(signature)
    if len(types) != 1:
        what = "is empty" if not types else f"holds {len(types)} complete types"
        raise SignatureError(signature, 0, f"expected exactly one complete type, but it {what}")
    return types[0]


def split_signature(signature: str) -> tuple[str, ...]:
    """Split a valid signature into the signature strings of its complete types."""
    return tuple(t.signature for t in parse_signature(signature))


def is_valid_signature(signature: str) -> bool:
    """True if `parse_signature` accepts the string."""
    try:
        parse_signature(signature)
    except SignatureError:
        return False
    return True
