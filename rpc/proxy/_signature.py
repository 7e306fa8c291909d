"""DBus type signatures and body values: parse, validate, decode, encode (pure: no I/O).

The proxy reads bodies only on demand (a bus-driver call it inspects, a RequestName it
rewrites), so this codec favours strictness over speed: :func:`decode_values` checks every rule
of the DBus specification it can see (alignment padding is zero, booleans are 0 or 1, strings
are UTF-8 without NUL, object paths and signatures are well formed, arrays end exactly where
their length says, nesting stays within the limits) and raises
:class:`~rpc.proxy._limits.WireError` (``BAD_BODY`` or ``BAD_SIGNATURE``) naming the first
problem. It never raises anything else on any input, and it never reads past ``end``.

Values map to Python as: ``y n q i u x t h`` -> ``int``, ``b`` -> ``bool``, ``d`` -> ``float``,
``s o g`` -> ``str``, ``ay`` -> ``bytes``, other arrays -> ``list``, ``a{..}`` -> ``dict``,
structs -> ``tuple``, ``v`` -> ``(signature, value)``. :func:`encode_values` takes the same
shapes back (a ``ValueError``/``TypeError`` for a value that does not fit its type: those are
the caller's bugs, not a peer's).
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from typing import Any

from rpc.proxy._limits import WireError, WireLimits, WireReason

__all__ = ["SigNode", "check_signature", "decode_values", "encode_values", "is_object_path",
           "parse_signature",
           "skip_value"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: A parsed complete type: a basic type code (``"s"``), ``"v"``, ``("a", elem)``,
#: ``("(", (fields...))`` or ``("{", key, value)``.
SigNode = Any

_BASIC = frozenset("ybnqiuxtdsogh")
_FIXED = {"y": ("B", 1), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4), "b": ("I", 4)}
_STRUCTS = {(code, big): struct.Struct(("!" if big else "<") + fmt)
            for code, (fmt, _size) in _FIXED.items() for big in (False, True)}
_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
          "s": 4, "o": 4, "g": 1, "v": 1, "a": 4, "(": 8, "{": 8}
_PATH = re.compile(r"/\Z|(?:/[A-Za-z0-9_]+)+\Z")
MAX_SIGNATURE = 255


def is_object_path(text: str) -> bool:
    """True when ``text`` is a valid DBus object path."""
    return _PATH.match(text) is not None


def _bad_sig(sig: str, why: str) -> WireError:
    return WireError(WireReason.BAD_SIGNATURE, f"signature {sig[:80]!r}: {why}")


@lru_cache(maxsize=512)
def _parse_cached(sig: str, max_array: int, max_struct: int, max_total: int
                  ) -> tuple[SigNode, ...]:
    if len(sig) > MAX_SIGNATURE:
        raise _bad_sig(sig, f"longer than {MAX_SIGNATURE} characters")
    nodes: list[SigNode] = []
    pos = 0
    while pos < len(sig):
        node, pos = _parse_one(sig, pos, 0, 0, (max_array, max_struct, max_total))
        nodes.append(node)
    return tuple(nodes)


def _parse_one(sig: str, pos: int, arrays: int, structs: int,
               limits: tuple[int, int, int]) -> tuple[SigNode, int]:
    if pos >= len(sig):
        raise _bad_sig(sig, "ends inside a container")
    c = sig[pos]
    if c in _BASIC or c == "v":
        return c, pos + 1
    if arrays + structs >= limits[2]:
        raise _bad_sig(sig, f"nested deeper than {limits[2]}")
    if c == "a":
        if arrays >= limits[0]:
            raise _bad_sig(sig, f"arrays nested deeper than {limits[0]}")
        if pos + 1 < len(sig) and sig[pos + 1] == "{":
            if structs >= limits[1]:
                raise _bad_sig(sig, f"structs nested deeper than {limits[1]}")
            if pos + 2 >= len(sig) or sig[pos + 2] not in _BASIC:
                raise _bad_sig(sig, "a dict key must be a basic type")
            key = sig[pos + 2]
            value, end = _parse_one(sig, pos + 3, arrays + 1, structs + 1, limits)
            if end >= len(sig) or sig[end] != "}":
                raise _bad_sig(sig, "a dict entry holds exactly one key and one value")
            return ("a", ("{", key, value)), end + 1
        elem, end = _parse_one(sig, pos + 1, arrays + 1, structs, limits)
        return ("a", elem), end
    if c == "(":
        if structs >= limits[1]:
            raise _bad_sig(sig, f"structs nested deeper than {limits[1]}")
        fields: list[SigNode] = []
        pos += 1
        while True:
            if pos >= len(sig):
                raise _bad_sig(sig, "unclosed struct")
            if sig[pos] == ")":
                break
            field, pos = _parse_one(sig, pos, arrays, structs + 1, limits)
            fields.append(field)
        if not fields:
            raise _bad_sig(sig, "empty struct")
        return ("(", tuple(fields)), pos + 1
    raise _bad_sig(sig, f"unexpected {c!r} at {pos}")


def parse_signature(sig: str, limits: WireLimits) -> tuple[SigNode, ...]:
    """The complete types of ``sig``; :class:`WireError` ``BAD_SIGNATURE`` when invalid."""
    if not sig.isascii():
        raise _bad_sig(sig, "not ASCII")
    return _parse_cached(sig, limits.max_array_depth, limits.max_struct_depth,
                         limits.max_total_depth)


def check_signature(sig: str, limits: WireLimits, *, single: bool = False) -> None:
    """Raise :class:`WireError` unless ``sig`` is valid (one complete type if ``single``)."""
    nodes = parse_signature(sig, limits)
    if single and len(nodes) != 1:
        raise _bad_sig(sig, "must be exactly one complete type")


def _sig_text(node: SigNode) -> str:
    if isinstance(node, str):
        return node
    if node[0] == "a":
        return "a" + _sig_text(node[1])
    if node[0] == "{":
        return "{" + node[1] + _sig_text(node[2]) + "}"
    return "(" + "".join(_sig_text(f) for f in node[1]) + ")"


class _Reader:
    """Decoding state over one buffer: ``data[pos:end]``, alignment relative to ``data[0]``."""

    __slots__ = ("big", "data", "end", "limits", "pos")

    def __init__(self, data: bytes, pos: int, end: int, big: bool, limits: WireLimits) -> None:
        self.data, self.pos, self.end, self.big, self.limits = data, pos, end, big, limits

    def fail(self, why: str) -> WireError:
        return WireError(WireReason.BAD_BODY, f"at byte {self.pos}: {why}")

    def align(self, n: int) -> None:
        new = (self.pos + n - 1) & -n
        if new > self.end:
            raise self.fail("truncated padding")
        if any(self.data[self.pos:new]):
            raise self.fail("non-zero padding")
        self.pos = new

    def fixed(self, code: str) -> Any:
        self.align(_ALIGN[code])
        st = _STRUCTS[code, self.big]
        if self.pos + st.size > self.end:
            raise self.fail(f"truncated {code!r}")
        (value,) = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return value

    def text(self, length: int, what: str) -> str:
        start = self.pos
        if start + length + 1 > self.end:
            raise self.fail(f"truncated {what}")
        raw = self.data[start:start + length]
        if self.data[start + length] != 0:
            raise self.fail(f"{what} not NUL-terminated")
        if 0 in raw:
            raise self.fail(f"NUL inside {what}")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 ({exc.reason})") from None
        self.pos = start + length + 1
        return value

    def value(self, node: SigNode, depth: int) -> Any:
        if isinstance(node, str):
            if node in _FIXED:
                v = self.fixed(node)
                if node == "b":
                    if v > 1:
                        raise self.fail(f"boolean {v} is not 0 or 1")
                    return bool(v)
                return v
            if node in "so":
                n = self.fixed("u")
                s = self.text(n, "string" if node == "s" else "object path")
                if node == "o" and not is_object_path(s):
                    raise self.fail(f"invalid object path {s[:80]!r}")
                return s
            if node == "g":
                s = self.text(self.fixed("y"), "signature")
                try:
                    parse_signature(s, self.limits)
                except WireError as exc:
                    raise self.fail(exc.detail) from None
                return s
            # "v"
            if depth >= self.limits.max_total_depth:
                raise self.fail(f"variants nested deeper than {self.limits.max_total_depth}")
            sig = self.text(self.fixed("y"), "variant signature")
            try:
                inner = parse_signature(sig, self.limits)
            except WireError as exc:
                raise self.fail(exc.detail) from None
            if len(inner) != 1:
                raise self.fail(f"variant signature {sig!r} is not one complete type")
            return (sig, self.value(inner[0], depth + 1))
        kind = node[0]
        if depth >= self.limits.max_total_depth:
            raise self.fail(f"values nested deeper than {self.limits.max_total_depth}")
        if kind == "(":
            self.align(8)
            return tuple(self.value(f, depth + 1) for f in node[1])
        # array
        length = self.fixed("u")
        if length > self.limits.max_array_length:
            raise WireError(WireReason.TOO_LARGE, f"array of {length} bytes is over the "
                            f"{self.limits.max_array_length}-byte limit")
        elem = node[1]
        self.align(_ALIGN[elem[0] if isinstance(elem, tuple) else elem])
        stop = self.pos + length
        if stop > self.end:
            raise self.fail(f"array of {length} bytes runs past the end")
        if elem == "y":
            self.pos = stop
            return bytes(self.data[stop - length:stop])
        saved_end, self.end = self.end, stop
        try:
            if isinstance(elem, tuple) and elem[0] == "{":
                out: dict[Any, Any] = {}
                while self.pos < stop:
                    self.align(8)
                    key = self.value(elem[1], depth + 1)
                    out[key] = self.value(elem[2], depth + 1)
                return out
            items = []
            while self.pos < stop:
                items.append(self.value(elem, depth + 1))
            return items
        finally:
            self.end = saved_end


def decode_values(sig: str, data: bytes, pos: int, end: int, big: bool,
                  limits: WireLimits) -> list[Any]:
    """Decode the values of ``sig`` from ``data[pos:end]`` (alignment counted from
    ``data[0]``); they must fill it exactly. :class:`WireError` on any violation."""
    nodes = parse_signature(sig, limits)
    reader = _Reader(data, pos, end, big, limits)
    values = [reader.value(node, 0) for node in nodes]
    if reader.pos != end:
        raise reader.fail(f"{end - reader.pos} bytes left after the values of {sig!r}")
    return values


def skip_value(sig: str, data: bytes, pos: int, end: int, big: bool,
               limits: WireLimits) -> int:
    """Validate the one value of the complete type ``sig`` at ``data[pos:end]`` and return
    where it ends. :class:`WireError` on any violation."""
    nodes = parse_signature(sig, limits)
    if len(nodes) != 1:
        raise _bad_sig(sig, "must be exactly one complete type")
    reader = _Reader(data, pos, end, big, limits)
    reader.value(nodes[0], 0)
    return reader.pos


class _Writer:
    __slots__ = ("big", "buf")

    def __init__(self, big: bool, offset: int) -> None:
        self.big = big
        self.buf = bytearray(offset)

    def align(self, n: int) -> None:
        self.buf.extend(b"\0" * (-len(self.buf) % n))

    def fixed(self, code: str, value: Any) -> None:
        if code == "b" and not isinstance(value, bool | int):
            raise TypeError(f"boolean expected, got {value!r}")
        self.align(_ALIGN[code])
        try:
            self.buf.extend(_STRUCTS[code, self.big].pack(value))
        except struct.error as exc:
            raise ValueError(f"{value!r} does not fit DBus type {code!r}: {exc}") from None

    def text(self, value: str, code: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"string expected for {code!r}, got {value!r}")
        raw = value.encode("utf-8")
        if b"\0" in raw:
            raise ValueError(f"NUL inside a DBus string: {value!r}")
        if code == "o" and not is_object_path(value):
            raise ValueError(f"invalid object path {value!r}")
        if code in "gv":
            if len(raw) > MAX_SIGNATURE:
                raise ValueError(f"signature too long: {value!r}")
            self.buf.append(len(raw))
        else:
            self.fixed("u", len(raw))
        self.buf.extend(raw)
        self.buf.append(0)

    def value(self, node: SigNode, value: Any) -> None:
        if isinstance(node, str):
            if node in _FIXED:
                self.fixed(node, bool(value) if node == "b" else value)
            elif node in "sog":
                self.text(value, node)
            else:
                sig, inner = value
                nodes = parse_signature(sig, WireLimits())
                if len(nodes) != 1:
                    raise ValueError(f"variant signature {sig!r} is not one complete type")
                self.text(sig, "v")
                self.value(nodes[0], inner)
            return
        if node[0] == "(":
            self.align(8)
            if len(value) != len(node[1]):
                raise ValueError(f"struct {_sig_text(node)} needs {len(node[1])} fields")
            for f, v in zip(node[1], value, strict=True):
                self.value(f, v)
            return
        elem = node[1]
        self.align(4)
        at = len(self.buf)
        self.buf.extend(b"\0\0\0\0")
        self.align(_ALIGN[elem[0] if isinstance(elem, tuple) else elem])
        start = len(self.buf)
        if elem == "y":
            self.buf.extend(bytes(value))
        elif isinstance(elem, tuple) and elem[0] == "{":
            for k, v in value.items():
                self.align(8)
                self.value(elem[1], k)
                self.value(elem[2], v)
        else:
            for v in value:
                self.value(elem, v)
        _STRUCTS["u", self.big].pack_into(self.buf, at, len(self.buf) - start)


def encode_values(sig: str, values: list[Any] | tuple[Any, ...], big: bool = False) -> bytes:
    """The body bytes of ``values`` typed by ``sig`` (a body starts 8-aligned).
    ``ValueError``/``TypeError`` when a value does not fit its type."""
    nodes = parse_signature(sig, WireLimits())
    if len(nodes) != len(values):
        raise ValueError(f"signature {sig!r} has {len(nodes)} types, got {len(values)} values")
    writer = _Writer(big, 0)
    for node, value in zip(nodes, values, strict=True):
        writer.value(node, value)
    return bytes(writer.buf)
