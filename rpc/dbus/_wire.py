"""Reading DBus messages fast: bytes -> jeepney ``Message`` values; the signature helpers.

jeepney's codec walks a tree of type objects for every value; a 145-entry ``a{sv}`` costs it
milliseconds each way. This module compiles each signature once into a chain of small closures
(cached per signature); ``a{sv}`` has an inline loop for the common variant types, and the
last :data:`MAX_MEMO_REGIONS` dictionaries are remembered by their bytes (a property poll
reads the same bytes again; each answer is a new dictionary, mutable values copied). Building
messages is in ``_marshal``. It reads exactly jeepney's values: a dict
for ``a{..}``, ``(signature, value)`` for a variant, ``bytes`` for ``ay``, a list for other
arrays, a tuple for a struct, ``bool`` for ``b``, ``str`` for ``s``, ``o`` and ``g``.

Guarantees:

* :class:`WireParser` reads a stream of messages of either byte order, like jeepney's
  ``Parser``: ``feed(data) -> list[Message]``. Unknown header fields are skipped, as the spec
  says. A message larger than :data:`MAX_MESSAGE` (the spec's 128 MiB), a message that
  announces file descriptors (we do not pass them), or bytes that do not decode raise
  :class:`WireError` (a ``ValueError``); the stream cannot be trusted after that.

Pure: no I/O, no threads.
"""

from __future__ import annotations

import copy
import re
import struct
from collections.abc import Callable
from typing import Any

from jeepney.low_level import Endianness, Header, HeaderFields, Message

__all__ = [
    "ALIGN", "FIXED", "MAX_ARRAY", "MAX_CACHED", "MAX_MESSAGE", "OBJECT_PATH", "OBJECT_PATHS",
    "U32", "Decoder", "Encoder", "WireError", "WireParser", "inner", "parse_message", "split",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The largest message the spec allows (2**27 bytes); a bigger announced size is an error.
MAX_MESSAGE = 1 << 27
#: Arrays are limited to 64 MiB by the spec (jeepney checks the same).
MAX_ARRAY = 1 << 26
#: ``a{sv}`` dictionaries remembered by their bytes (each at most MAX_MEMO_REGION bytes).
MAX_MEMO_REGIONS = 32
MAX_MEMO_REGION = 1 << 16
#: Compiled signatures kept per table (variants bring remote signatures; the table is cleared
#: past this, so a peer cannot grow it without bound).
MAX_CACHED = 512

OBJECT_PATH = re.compile(r"/|(?:/[A-Za-z0-9_]+)+")
OBJECT_PATHS = re.compile(r"(?:/|(?:/[A-Za-z0-9_]+)+)(?:\n(?:/|(?:/[A-Za-z0-9_]+)+))*")
ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
          "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
FIXED = {"y": "B", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d"}
_FIELDS = {int(f): f for f in HeaderFields}
U32 = struct.Struct("<I")

Encoder = Callable[[bytearray, Any], None]
Decoder = Callable[[bytes, int], tuple[Any, int]]


class WireError(ValueError):
    """Bytes that are not a DBus message we can read."""


# ---------------------------------------------------------------------------- signatures


def _complete(sig: str, pos: int) -> int:
    """The end of the complete type starting at ``sig[pos]``."""
    c = sig[pos]
    if c == "a":
        return _complete(sig, pos + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        pos += 1
        while sig[pos] != close:
            pos = _complete(sig, pos)
        return pos + 1
    if c not in ALIGN or c in ")}":
        raise ValueError(f"bad signature {sig!r} at {pos}")
    return pos + 1


def split(sig: str) -> list[str]:
    """The complete types of ``sig`` (``ValueError`` for a malformed one)."""
    out, pos = [], 0
    try:
        while pos < len(sig):
            end = _complete(sig, pos)
            out.append(sig[pos:end])
            pos = end
    except IndexError:
        raise ValueError(f"bad signature {sig!r}") from None
    return out


def inner(t: str) -> list[str]:
    """The member types of a struct or dict-entry type ``t``."""
    return split(t[1:-1])


# ---------------------------------------------------------------------------- decoding

_DECODERS: dict[tuple[str, str], Decoder] = {}


def _decoder(t: str, e: str) -> Decoder:
    dec = _DECODERS.get((t, e))
    if dec is None:
        if len(_DECODERS) > MAX_CACHED:
            _DECODERS.clear()
        dec = _DECODERS[(t, e)] = _make_decoder(t, e)
    return dec


def _make_decoder(t: str, e: str) -> Decoder:
    c = t[0]
    if c in FIXED or c in "bh":
        st = struct.Struct(e + FIXED.get(c, "I"))
        unpack, size, align = st.unpack_from, st.size, ALIGN[c]
        if c == "b":
            def boolean(buf: bytes, pos: int) -> tuple[Any, int]:
                pos += -pos % 4
                return bool(unpack(buf, pos)[0]), pos + 4
            return boolean
        if c == "h":
            raise WireError("file descriptors are not supported")

        def fixed(buf: bytes, pos: int) -> tuple[Any, int]:
            pos += -pos % align
            return unpack(buf, pos)[0], pos + size
        return fixed
    if c in "so":
        unpack_u = struct.Struct(e + "I").unpack_from

        def string(buf: bytes, pos: int) -> tuple[Any, int]:
            pos += -pos % 4
            end = pos + 4 + unpack_u(buf, pos)[0]
            if buf[end:end + 1] != b"\0":
                raise WireError("string without its NUL")
            return buf[pos + 4:end].decode("utf-8"), end + 1
        return string
    if c == "g":
        return _signature
    if c == "v":
        def variant(buf: bytes, pos: int) -> tuple[Any, int]:
            sig, pos = _signature(buf, pos)
            types = split(sig)
            if len(types) != 1:
                raise WireError(f"variant signature {sig!r} is not one complete type")
            value, pos = _decoder(sig, e)(buf, pos)
            return (sig, value), pos
        return variant
    if c == "(":
        members = [_decoder(m, e) for m in inner(t)]

        def struct_(buf: bytes, pos: int) -> tuple[Any, int]:
            pos += -pos % 8
            out = []
            for dec in members:
                value, pos = dec(buf, pos)
                out.append(value)
            return tuple(out), pos
        return struct_
    if c == "a":
        return _array_decoder(t[1:], e)
    raise WireError(f"bad type code {c!r}")


def _signature(buf: bytes, pos: int) -> tuple[str, int]:
    n = buf[pos]
    end = pos + 1 + n
    if buf[end:end + 1] != b"\0":
        raise WireError("signature without its NUL")
    return buf[pos + 1:end].decode("ascii"), end + 1


def _array_decoder(elem: str, e: str) -> Decoder:
    unpack_u = struct.Struct(e + "I").unpack_from
    align = ALIGN[elem[0]]

    def bounds(buf: bytes, pos: int) -> tuple[int, int]:
        pos += -pos % 4
        n = unpack_u(buf, pos)[0]
        pos += 4
        pos += -pos % align
        if n > MAX_ARRAY or pos + n > len(buf):
            raise WireError("array runs past the message")
        return pos, pos + n

    if elem == "y":
        def byte_array(buf: bytes, pos: int) -> tuple[Any, int]:
            pos, end = bounds(buf, pos)
            return buf[pos:end], end
        return byte_array
    if elem[0] == "{":
        key_t, value_t = inner(elem)
        key, value = _decoder(key_t, e), _decoder(value_t, e)
        if key_t == "s" and value_t == "v":
            return _sv_decoder(bounds, e)

        def dictionary(buf: bytes, pos: int) -> tuple[Any, int]:
            pos, end = bounds(buf, pos)
            out = {}
            while pos < end:
                pos += -pos % 8
                k, pos = key(buf, pos)
                out[k], pos = value(buf, pos)
            if pos != end:
                raise WireError("array entries run past the array")
            return out, pos
        return dictionary
    if elem in "so":
        def strings(buf: bytes, pos: int) -> tuple[Any, int]:
            pos, end = bounds(buf, pos)
            out = []
            while pos < end:
                pos += -pos % 4
                stop = pos + 4 + unpack_u(buf, pos)[0]
                if buf[stop] != 0:
                    raise WireError("string without its NUL")
                out.append(buf[pos + 4:stop].decode("utf-8"))
                pos = stop + 1
            if pos != end:
                raise WireError("array elements run past the array")
            return out, pos
        return strings
    dec = _decoder(elem, e)

    def array(buf: bytes, pos: int) -> tuple[Any, int]:
        pos, end = bounds(buf, pos)
        out = []
        while pos < end:
            item, pos = dec(buf, pos)
            out.append(item)
        if pos != end:
            raise WireError("array elements run past the array")
        return out, pos
    return array


def _sv_decoder(bounds: Callable[[bytes, int], tuple[int, int]], e: str) -> Decoder:
    """``a{sv}``, the properties' dictionary, with the common variant types inline. A
    dictionary is remembered by its bytes (properties are read again and again): the same
    bytes give an equal, new dictionary (values of other types than strings, booleans and
    integers copied)."""
    unpack_u = struct.Struct(e + "I").unpack_from
    unpack_i = struct.Struct(e + "i").unpack_from
    variant = _decoder("v", e)

    memo: dict[bytes, tuple[dict[str, Any], tuple[str, ...]]] = {}

    def sv(buf: bytes, pos: int) -> tuple[Any, int]:
        pos, end = bounds(buf, pos)
        region = buf[pos:end]  # starts 8-aligned: the same bytes read the same anywhere
        known = memo.get(region)
        if known is not None:
            again = dict(known[0])
            for k in known[1]:  # values that could be changed by the caller: fresh copies
                again[k] = copy.deepcopy(again[k])
            return again, end
        mutable: list[str] = []
        out: dict[str, Any] = {}
        while pos < end:
            pos += -pos % 8
            n = unpack_u(buf, pos)[0]
            stop = pos + 4 + n
            if buf[stop] != 0:
                raise WireError("string without its NUL")
            k = buf[pos + 4:stop].decode("utf-8")
            pos = at = stop + 1
            if buf[pos] == 1 and buf[pos + 2] == 0:
                code = buf[pos + 1]
                pos += 3
                pos += -pos % 4
                if code == 115 or code == 111:  # s, o
                    n = unpack_u(buf, pos)[0]
                    stop = pos + 4 + n
                    if buf[stop] != 0:
                        raise WireError("string without its NUL")
                    out[k] = (chr(code), buf[pos + 4:stop].decode("utf-8"))
                    pos = stop + 1
                    continue
                if code == 98:  # b
                    out[k] = ("b", bool(unpack_u(buf, pos)[0]))
                    pos += 4
                    continue
                if code == 105:  # i
                    out[k] = ("i", unpack_i(buf, pos)[0])
                    pos += 4
                    continue
            out[k], pos = variant(buf, at)
            mutable.append(k)
        if pos != end:
            raise WireError("array entries run past the array")
        if len(region) <= MAX_MEMO_REGION:
            if len(memo) >= MAX_MEMO_REGIONS:
                memo.clear()
            kept = dict(out)
            for k in mutable:
                kept[k] = copy.deepcopy(kept[k])
            memo[region] = (kept, tuple(mutable))
        return out, pos
    return sv


_ENDIAN = {ord("l"): ("<", Endianness.little), ord("B"): (">", Endianness.big)}


def _size(buf: bytes | bytearray, at: int = 0) -> int:
    """The whole size of the message starting at ``buf[at]`` (16 bytes must be there)."""
    try:
        e = _ENDIAN[buf[at]][0]
    except KeyError:
        raise WireError(f"bad byte-order mark {buf[at]!r}") from None
    body, fields = struct.unpack_from(e + "I4xI", buf, at + 4)
    head = 16 + fields
    size = head + (-head % 8) + body
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes is larger than {MAX_MESSAGE}")
    return int(size)


def parse_message(buf: bytes) -> Message:
    """One whole message (exactly its bytes) as a jeepney ``Message``."""
    try:
        return _parse(buf)
    except WireError:
        raise
    except (ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise WireError(f"malformed message: {exc}") from None


def _parse(buf: bytes) -> Message:
    e, endianness = _ENDIAN[buf[0]]
    kind, flags, version, body_len, serial, fields_len = struct.unpack_from(
        e + "xBBBIII", buf, 0)
    fields: dict[HeaderFields, Any] = {}
    pos, end = 16, 16 + fields_len
    variant = _decoder("v", e)
    while pos < end:
        pos += -pos % 8
        code = buf[pos]
        (_sig, value), pos = variant(buf, pos + 1)
        name = _FIELDS.get(code)
        if name is not None:
            fields[name] = value
    if pos != end:
        raise WireError("header fields run past their array")
    if fields.get(HeaderFields.unix_fds, 0):
        raise WireError("the message carries file descriptors (not supported)")
    pos = end + (-end % 8)
    if pos + body_len != len(buf):
        raise WireError("the body length does not match the message")
    body: tuple[Any, ...] = ()
    sig = fields.get(HeaderFields.signature)
    if sig:
        values = []
        for t in split(sig):
            value, pos = _decoder(t, e)(buf, pos)
            values.append(value)
        if pos != len(buf):
            raise WireError("the body is longer than its signature")
        body = tuple(values)
    header = Header(endianness, kind, flags, version, body_len, serial, fields)
    return Message(header, body)


class WireParser:
    """Messages from a byte stream (see the module docstring); bounded by :data:`MAX_MESSAGE`."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by ``data`` (``WireError`` for bytes that do not decode)."""
        buf = self._buf
        buf += data
        out: list[Message] = []
        at = 0
        have = len(buf)
        while have - at >= 16:
            size = _size(buf, at)
            if have - at < size:
                break
            out.append(parse_message(bytes(buf[at:at + size])))
            at += size
        if at:
            del buf[:at]
        return out

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (at most one message's worth)."""
        return len(self._buf)
