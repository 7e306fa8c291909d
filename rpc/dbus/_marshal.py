"""Building DBus messages fast: jeepney ``Message`` values -> the bytes jeepney would send.

:func:`serialise` gives the bytes jeepney's ``Message.serialise`` gives (tests/rpc/test_wire.py
compares them on generated messages), ten times faster on big bodies: each signature is
compiled once into small closures (cached), the whole message is built in one ``bytearray``,
``a{sv}`` and arrays of strings and object paths have inline loops, and an object path is
checked with one regular expression instead of a Python loop over its characters. The
encoded entries of ``a{sv}`` dictionaries with plain values (``str``, ``int``, ``bool``) are
memoised by (name, (signature, value)): values equal for Python give the same bytes there
(``True`` and ``1`` encode alike in every integer type), and a value that did not encode is
never kept; so are the last arrays of strings and object paths (``list_vms``), by their items.

Failure behaviour: it is never more lenient than jeepney. Anything the fast path does not take
(a big-endian header, file descriptors, a value of another type than the plain one: a
``bytearray`` for ``ay``, a list for a struct...) is handed to jeepney's own serialiser, so
the result, or the error (``TypeError``, ``ValueError``, ``struct.error``), is jeepney's.
Pure: no I/O, no threads.
"""

from __future__ import annotations

import struct
from typing import Any

from jeepney.low_level import Endianness, HeaderFields, Message

from rpc.dbus._wire import (
    ALIGN,
    FIXED,
    MAX_ARRAY,
    MAX_CACHED,
    OBJECT_PATH,
    OBJECT_PATHS,
    U32,
    Encoder,
    inner,
    split,
)

__all__ = ["serialise"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_FIELD_CODES = {1: "o", 2: "s", 3: "s", 4: "s", 5: "u", 6: "s", 7: "s", 8: "g", 9: "u"}


class _Refused(Exception):
    """The fast encoder does not take this value: let jeepney decide."""



def _pad(buf: bytearray, n: int) -> None:
    extra = -len(buf) % n
    if extra:
        buf.extend(bytes(extra))


_ENCODERS: dict[str, Encoder] = {}


def _encoder(t: str) -> Encoder:
    enc = _ENCODERS.get(t)
    if enc is None:
        if len(_ENCODERS) > MAX_CACHED:
            _ENCODERS.clear()
        enc = _ENCODERS[t] = _make_encoder(t)
    return enc


def _make_encoder(t: str) -> Encoder:
    c = t[0]
    if c in FIXED:
        pack = struct.Struct("<" + FIXED[c]).pack
        align = ALIGN[c]

        def fixed(buf: bytearray, v: Any) -> None:
            extra = -len(buf) % align
            if extra:
                buf.extend(bytes(extra))
            buf += pack(v)
        return fixed
    if c == "b":
        def boolean(buf: bytearray, v: Any) -> None:
            if not (v is True or v is False or (type(v) is int and v in (0, 1))):
                raise _Refused
            _pad(buf, 4)
            buf += b"\1\0\0\0" if v else b"\0\0\0\0"
        return boolean
    if c in "so":
        check = c == "o"
        pack_u = U32.pack

        def string(buf: bytearray, v: Any) -> None:
            if not isinstance(v, str) or (check and OBJECT_PATH.fullmatch(v) is None):
                raise _Refused
            data = v.encode("utf-8")
            extra = -len(buf) % 4
            if extra:
                buf.extend(bytes(extra))
            buf += pack_u(len(data))
            buf += data
            buf.append(0)
        return string
    if c == "g":
        def signature(buf: bytearray, v: Any) -> None:
            if not isinstance(v, str):
                raise _Refused
            data = v.encode("utf-8")
            if len(data) > 255:
                raise _Refused
            buf.append(len(data))
            buf += data
            buf.append(0)
        return signature
    if c == "v":
        return _variant
    if c == "(":
        members = [_encoder(m) for m in inner(t)]

        def struct_(buf: bytearray, v: Any) -> None:
            if not isinstance(v, tuple) or len(v) != len(members):
                raise _Refused
            _pad(buf, 8)
            for enc, item in zip(members, v, strict=True):
                enc(buf, item)
        return struct_
    if c == "a":
        return _array_encoder(t[1:])
    raise _Refused  # 'h' (file descriptors) and anything else: jeepney's way


def _variant(buf: bytearray, v: Any) -> None:
    if type(v) is not tuple or len(v) != 2:
        raise _Refused
    sig, value = v
    enc = _VARIANTS.get(sig) if type(sig) is str else None
    if enc is None:
        enc = _variant_encoder(sig)
    enc(buf, value)


_VARIANTS: dict[str, Encoder] = {}
_ZEROS = tuple(bytes(n) for n in range(8))


def _variant_encoder(sig: object) -> Encoder:
    """The encoder of a variant of signature ``sig``: its signature, then the value."""
    if not isinstance(sig, str):
        raise _Refused
    try:
        types = split(sig)
    except ValueError:
        raise _Refused from None
    if len(types) != 1:
        raise _Refused
    prefix = bytes([len(sig)]) + sig.encode("ascii") + b"\0"
    enc = _encoder(sig)
    if sig in "so":
        check = sig == "o"
        pack_u = U32.pack
        zeros = _ZEROS

        def text(buf: bytearray, v: Any) -> None:
            if type(v) is not str or (check and OBJECT_PATH.fullmatch(v) is None):
                raise _Refused
            buf += prefix
            buf += zeros[-len(buf) % 4]
            data = v.encode("utf-8")
            buf += pack_u(len(data))
            buf += data
            buf += b"\0"
        out: Encoder = text
    elif sig == "b":
        def boolean(buf: bytearray, v: Any) -> None:
            buf += prefix
            buf += _ZEROS[-len(buf) % 4]
            if v is True:
                buf += b"\1\0\0\0"
            elif v is False:
                buf += b"\0\0\0\0"
            else:
                enc(buf, v)
        out = boolean
    else:
        def other(buf: bytearray, v: Any) -> None:
            buf += prefix
            enc(buf, v)
        out = other
    if len(_VARIANTS) > MAX_CACHED:
        _VARIANTS.clear()
    _VARIANTS[sig] = out
    return out


def _array_encoder(elem: str) -> Encoder:
    align = ALIGN[elem[0]]
    pack_into = U32.pack_into
    if elem == "y":
        def byte_array(buf: bytearray, v: Any) -> None:
            if isinstance(v, bytes):
                if len(v) > MAX_ARRAY:
                    raise _Refused
                _pad(buf, 4)
                buf += U32.pack(len(v))
                buf += v
                return
            _generic(buf, v, _encoder("y"), is_dict=False)
        return byte_array
    if elem[0] == "{":
        key_t, value_t = inner(elem)
        key, value = _encoder(key_t), _encoder(value_t)
        string_key, zeros, pack_u = key_t == "s", _ZEROS, U32.pack
        memo_ok = string_key and value_t == "v"

        def dictionary(buf: bytearray, v: Any) -> None:
            if isinstance(v, dict):
                items: Any = v.items()
            elif isinstance(v, list):
                items = v
                for item in items:
                    if not isinstance(item, tuple) or len(item) != 2:
                        raise _Refused
            else:
                raise _Refused
            extra = -len(buf) % 4
            if extra:
                buf.extend(bytes(extra))
            at = len(buf)
            buf += b"\0\0\0\0"
            extra = -len(buf) % 8
            if extra:
                buf.extend(bytes(extra))
            start = len(buf)
            if memo_ok:
                _sv_entries(buf, items, value)
            elif string_key:
                for k, val in items:
                    buf += zeros[-len(buf) % 8]
                    if type(k) is not str:
                        raise _Refused
                    data = k.encode("utf-8")
                    buf += pack_u(len(data))
                    buf += data
                    buf += b"\0"
                    value(buf, val)
            else:
                for k, val in items:
                    buf += zeros[-len(buf) % 8]
                    key(buf, k)
                    value(buf, val)
            size = len(buf) - start
            if size > MAX_ARRAY:
                raise _Refused
            pack_into(buf, at, size)
        return dictionary
    if elem in "so":
        check = elem == "o"
        zeros, pack_u = _ZEROS, U32.pack

        memo: dict[tuple[str, ...], bytes] = {}

        def strings(buf: bytearray, v: Any) -> None:
            if type(v) is not list:
                raise _Refused
            buf += zeros[-len(buf) % 4]
            key = tuple(v)
            frag = memo.get(key)
            if frag is not None:  # the same list again (list_vms): same bytes
                buf += frag
                return
            at = len(buf)
            buf += b"\0\0\0\0"
            for x in v:
                if type(x) is not str:
                    raise _Refused
                buf += zeros[-len(buf) % 4]
                data = x.encode("utf-8")
                buf += pack_u(len(data))
                buf += data
                buf += b"\0"
            if check and v and OBJECT_PATHS.fullmatch("\n".join(v)) is None:
                raise _Refused
            size = len(buf) - at - 4
            if size > MAX_ARRAY:
                raise _Refused
            pack_into(buf, at, size)
            if size <= MAX_MEMO_LIST:
                if len(memo) >= MAX_MEMO_LISTS:
                    memo.clear()
                memo[key] = bytes(buf[at:])
        return strings
    enc = _encoder(elem)

    def array(buf: bytearray, v: Any) -> None:
        _generic(buf, v, enc, is_dict=False, align=align)
    return array


#: Encoded ``a{sv}`` entries by (name, (signature, value)) for plain values: properties
#: repeat (defaults, and the same object read again). Bounded: emptied when full; only short
#: entries are kept.
_MEMO: dict[tuple[str, tuple[str, Any]], bytes] = {}
MAX_MEMO = 8192
MAX_MEMO_ENTRY = 256
#: Encoded arrays of strings or object paths, by their items (per signature), as above.
MAX_MEMO_LISTS = 32
MAX_MEMO_LIST = 1 << 16
_PLAIN = frozenset((str, int, bool))


def _sv_entries(buf: bytearray, items: Any, value: Encoder) -> None:
    """The entries of an ``a{sv}`` (``buf`` is 8-aligned, so each entry's bytes are the same
    wherever it lands: an entry starts 8-aligned and aligns only within itself)."""
    zeros, pack_u, memo = _ZEROS, U32.pack, _MEMO
    for k, val in items:
        buf += zeros[-len(buf) % 8]
        if type(k) is not str:
            raise _Refused
        plain = (type(val) is tuple and len(val) == 2 and type(val[0]) is str
                 and type(val[1]) in _PLAIN)
        if plain:
            frag = memo.get((k, val))
            if frag is not None:
                buf += frag
                continue
        mark = len(buf)
        data = k.encode("utf-8")
        buf += pack_u(len(data))
        buf += data
        buf += b"\0"
        value(buf, val)
        if plain and len(buf) - mark <= MAX_MEMO_ENTRY:
            if len(memo) >= MAX_MEMO:
                memo.clear()
            memo[(k, val)] = bytes(buf[mark:])


def _generic(buf: bytearray, v: Any, enc: Encoder, *, is_dict: bool, align: int = 1) -> None:
    if not isinstance(v, list):
        raise _Refused
    _pad(buf, 4)
    at = len(buf)
    buf += b"\0\0\0\0"
    _pad(buf, align)
    start = len(buf)
    for item in v:
        enc(buf, item)
    size = len(buf) - start
    if size > MAX_ARRAY:
        raise _Refused
    U32.pack_into(buf, at, size)


def _header_fields(buf: bytearray, fields: dict[HeaderFields, Any]) -> None:
    for code in sorted(fields):
        value = fields[code]
        kind = _FIELD_CODES[int(code)]
        _pad(buf, 8)
        buf.append(int(code))
        buf += b"\1" + kind.encode() + b"\0"
        _encoder(kind)(buf, value)


def serialise(msg: Message, serial: int) -> bytes:
    """The bytes of ``msg`` with ``serial`` (as jeepney's ``msg.serialise(serial=serial)``)."""
    header = msg.header
    fields = header.fields
    if header.endianness is not Endianness.little or HeaderFields.unix_fds in fields:
        return msg.serialise(serial=serial)
    try:
        body = bytearray()
        sig = fields.get(HeaderFields.signature)
        if sig is not None:
            types = split(sig)
            values = msg.body
            if not isinstance(values, tuple) or len(values) != len(types):
                raise _Refused
            for t, value in zip(types, values, strict=True):
                _encoder(t)(body, value)
        buf = bytearray(struct.pack("<cBBBIII", b"l", header.message_type.value,
                                    int(header.flags), header.protocol_version,
                                    len(body), serial, 0))
        _header_fields(buf, fields)
        U32.pack_into(buf, 12, len(buf) - 16)
        _pad(buf, 8)
    except (_Refused, ValueError, TypeError, KeyError, struct.error, OverflowError):
        return msg.serialise(serial=serial)  # jeepney's answer, or its error
    header.body_length = len(body)
    buf += body
    return bytes(buf)
