"""One DBus message on the wire: parse its header, rewrite a few fields, build new ones (pure).

The proxy's per-message path is :func:`parse_message` (header only: the body is neither
decoded nor copied) and, for serial remapping, :func:`rewrite` with a new ``serial`` or
``reply_serial``, which patches four bytes in place. A changed ``sender`` or ``destination``
re-lays the header fields (copying the untouched fields' bytes as they are) and keeps the body
bytes and the message's byte order.

:func:`parse_message` enforces what the DBus specification requires of a header, and the
:class:`~rpc.proxy._limits.WireLimits`: byte order ``l``/``B``, a known message type, protocol
version 1, a non-zero serial, well-formed fields (each code at most once, the signature the
spec gives each known code, unknown codes skipped after their value is validated), valid
object paths, interface, member, error and bus names, a valid body signature, the fields each
type requires (call: path, member; signal: path, interface, member; error: error name, reply
serial; return: reply serial), zero padding, no reserved ``org.freedesktop.DBus.Local``
path/interface, and a body length matching the message. Any violation raises
:class:`~rpc.proxy._limits.WireError` and nothing else.

:func:`decode_body` decodes the body on demand, strictly (``_signature``).
"""

from __future__ import annotations

import enum
import struct
from typing import Any, NamedTuple

from rpc.proxy._header import Fields, HeaderCache, is_bus_name, is_interface_name, parse_fields
from rpc.proxy._limits import CLIENT_LIMITS, WireError, WireLimits, WireReason
from rpc.proxy._signature import decode_values, encode_values, skip_value

__all__ = ["FLAG_NO_AUTO_START", "FLAG_NO_REPLY_EXPECTED", "Field", "MessageType",
           "WireMessage", "build_message", "decode_body", "error_reply", "first_string_arg",
           "message_size", "parse_message", "parse_sized", "properties_interface", "rewrite",
           "with_body", "with_reply_serial", "with_serial"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

FLAG_NO_REPLY_EXPECTED = 0x1
FLAG_NO_AUTO_START = 0x2
FLAG_ALLOW_INTERACTIVE_AUTHORIZATION = 0x4


class MessageType(enum.IntEnum):
    """The DBus message types (byte 1 of the header)."""

    METHOD_CALL = 1
    METHOD_RETURN = 2
    ERROR = 3
    SIGNAL = 4


class Field(enum.IntEnum):
    """Header field codes."""

    PATH = 1
    INTERFACE = 2
    MEMBER = 3
    ERROR_NAME = 4
    REPLY_SERIAL = 5
    DESTINATION = 6
    SENDER = 7
    SIGNATURE = 8
    UNIX_FDS = 9


_TYPES = {t.value: t for t in MessageType}
_new = tuple.__new__  # builds a WireMessage from a tuple without a Python-level __new__
_U32 = {False: struct.Struct("<I"), True: struct.Struct(">I")}
_FIXED = {False: struct.Struct("<4xIII"), True: struct.Struct(">4xIII")}


class WireMessage(NamedTuple):
    """A complete message: its bytes (``data``) and the facts of its header.

    A NamedTuple, not a dataclass: one is built per message on the hot path, and a tuple is
    several times cheaper to build than a frozen dataclass (and as immutable). Absent string
    fields are ``None``; ``reply_serial`` is ``None`` when absent; ``signature`` is ``""`` for
    an empty body. ``body_offset``/``body_length`` locate the body in ``data``;
    ``reply_serial_at`` is where the reply serial's four bytes sit (-1 when absent).
    """

    data: bytes
    big: bool
    type: MessageType
    flags: int
    serial: int
    reply_serial: int | None
    path: str | None
    interface: str | None
    member: str | None
    error_name: str | None
    destination: str | None
    sender: str | None
    signature: str
    unix_fds: int
    reply_serial_at: int
    body_offset: int
    body_length: int

    @property
    def expects_reply(self) -> bool:
        """A method call without the NO_REPLY_EXPECTED flag."""
        return self.type == MessageType.METHOD_CALL and not self.flags & FLAG_NO_REPLY_EXPECTED

    @property
    def body(self) -> bytes:
        """The body bytes (a copy)."""
        return self.data[self.body_offset:self.body_offset + self.body_length]


def message_size(prefix: bytes, limits: WireLimits = CLIENT_LIMITS) -> int:
    """The total size of the message whose first 16 bytes are ``prefix`` (header checks that
    need only those bytes included); :class:`WireError` when it cannot be or is too large."""
    if len(prefix) < 16:
        raise WireError(WireReason.TRUNCATED, f"{len(prefix)} bytes, a header needs 16")
    endian = prefix[0]
    if endian == 0x6C:
        big = False
    elif endian == 0x42:
        big = True
    else:
        raise WireError(WireReason.BAD_FIXED_HEADER, f"byte order {endian:#04x} is not 'l'/'B'")
    if prefix[3] != 1:
        raise WireError(WireReason.BAD_FIXED_HEADER, f"protocol version {prefix[3]} is not 1")
    body_len, _serial, fields_len = _FIXED[big].unpack_from(prefix, 0)
    header = 16 + fields_len + (-fields_len % 8)
    if header > limits.max_header_size:
        raise WireError(WireReason.TOO_LARGE, f"header of {header} bytes is over the "
                        f"{limits.max_header_size}-byte limit")
    total = header + body_len
    if total > limits.max_message_size:
        raise WireError(WireReason.TOO_LARGE, f"message of {total} bytes is over the "
                        f"{limits.max_message_size}-byte limit")
    return total


def parse_message(data: bytes, limits: WireLimits = CLIENT_LIMITS,
                  cache: HeaderCache | None = None) -> WireMessage:
    """Parse and validate the header of the complete message ``data`` (see the module
    docstring); :class:`WireError` on any violation. The body is not decoded.

    ``cache`` (one per connection, used with the same ``limits``) remembers the parsed fields
    of recent headers: a message whose byte order, type and header fields repeat those of an
    earlier one (a client calling the same method again) skips the field parse."""
    total = message_size(data, limits)
    if len(data) != total:
        raise WireError(WireReason.TRUNCATED, f"message claims {total} bytes, has {len(data)}")
    return parse_sized(data, limits, cache)


def parse_sized(data: bytes, limits: WireLimits, cache: HeaderCache | None) -> WireMessage:
    """:func:`parse_message` of ``data`` whose length :func:`message_size` has already found
    right (with the same ``limits``): the incremental splitter's path."""
    big = data[0] == 0x42
    mtype = _TYPES.get(data[1])  # an IntEnum member: parse_fields takes it as an int
    if mtype is None:
        raise WireError(WireReason.BAD_FIXED_HEADER, f"message type {data[1]} is not 1..4")
    body_len, serial, fields_len = _FIXED[big].unpack_from(data, 0)
    if serial == 0:
        raise WireError(WireReason.BAD_FIXED_HEADER, "serial 0")
    end = 16 + fields_len
    header_end = (end + 7) & -8
    fields: Fields | None
    if cache is None:
        fields = parse_fields(data, big, mtype, end, limits)
    elif mtype == 2 or mtype == 3:  # has a reply serial: see HeaderCache
        shape = mtype << 32 | fields_len
        at = cache.reply_hint(shape)
        fields = None
        if at is not None:
            hit = cache.get(data[:2] + data[12:at] + data[at + 4:header_end])
            if hit is not None and hit[9] == at \
                    and (reply := _U32[big].unpack_from(data, at)[0]):
                fields = (reply, *hit[1:])
        if fields is None:
            fields = parse_fields(data, big, mtype, end, limits)
            at = fields[9]
            cache.put_reply(shape, data[:2] + data[12:at] + data[at + 4:header_end], fields)
    else:
        key = data[:2] + data[12:header_end]
        fields = cache.get(key)
        if fields is None:
            fields = parse_fields(data, big, mtype, end, limits)
            cache.put(key, fields)
    if body_len and not fields[7]:
        raise WireError(WireReason.BAD_HEADER_FIELD, f"{body_len}-byte body without a signature")
    return _new(WireMessage, (data, big, mtype, data[2], serial, *fields, header_end, body_len))


def rewrite(msg: WireMessage, *, serial: int | None = None, reply_serial: int | None = None,
            sender: str | None = None, destination: str | None = None) -> WireMessage:
    """``msg`` with the given header values changed (``None`` keeps a value).

    ``serial`` and ``reply_serial`` (which must already be present) patch four bytes; a new
    ``sender`` or ``destination`` re-lays the header fields. The body bytes, the byte order and
    every other field are kept. ``ValueError`` for an invalid value or a missing reply serial.
    """
    if sender is not None or destination is not None:
        return _relay(msg, serial, reply_serial, sender, destination)
    if serial is not None:
        msg = with_serial(msg, serial)
    if reply_serial is not None:
        msg = with_reply_serial(msg, reply_serial)
    return msg


def with_serial(msg: WireMessage, serial: int) -> WireMessage:
    """``msg`` with its serial patched to ``serial`` (:func:`rewrite` with ``serial`` only; the
    per-message path of serial remapping). ``ValueError`` outside 1..2**32-1."""
    if not 0 < serial < 4294967296:
        raise ValueError(f"serial {serial} is not 1..2**32-1")
    data = msg.data
    fields = list(msg)
    fields[0] = data[:8] + _U32[msg.big].pack(serial) + data[12:]
    fields[4] = serial
    return _new(WireMessage, fields)


def with_reply_serial(msg: WireMessage, reply_serial: int) -> WireMessage:
    """``msg`` (a return or error) with its reply serial patched to ``reply_serial``
    (:func:`rewrite` with ``reply_serial`` only). ``ValueError`` when it has none or for a
    value outside 1..2**32-1."""
    at = msg.reply_serial_at
    if at < 0:
        raise ValueError(f"a {msg.type.name} has no reply serial to rewrite")
    if not 0 < reply_serial < 4294967296:
        raise ValueError(f"reply serial {reply_serial} is not 1..2**32-1")
    data = msg.data
    fields = list(msg)
    fields[0] = data[:at] + _U32[msg.big].pack(reply_serial) + data[at + 4:]
    fields[5] = reply_serial
    return _new(WireMessage, fields)


def _relay(msg: WireMessage, serial: int | None, reply_serial: int | None,
           sender: str | None, destination: str | None) -> WireMessage:
    for text in (sender, destination):
        if text is not None and not is_bus_name(text):
            raise ValueError(f"invalid bus name {text!r}")
    data = build_message(
        msg.type, serial=msg.serial if serial is None else serial,
        reply_serial=msg.reply_serial if reply_serial is None else reply_serial,
        path=msg.path, interface=msg.interface, member=msg.member, error_name=msg.error_name,
        destination=msg.destination if destination is None else destination,
        sender=msg.sender if sender is None else sender, signature=msg.signature,
        body=msg.body, flags=msg.flags, unix_fds=msg.unix_fds, big=msg.big)
    return parse_message(data, _NO_LIMITS)


_NO_LIMITS = WireLimits(max_message_size=128 << 20, max_header_size=1 << 30,
                        max_header_fields=1 << 30, max_unix_fds=1 << 30)


def build_message(mtype: MessageType, *, serial: int, body: bytes = b"", signature: str = "",
                  path: str | None = None, interface: str | None = None,
                  member: str | None = None, error_name: str | None = None,
                  reply_serial: int | None = None, destination: str | None = None,
                  sender: str | None = None, flags: int = 0, unix_fds: int = 0,
                  big: bool = False) -> bytes:
    """The bytes of a message with these header values and ``body`` (already marshalled for
    ``signature``, in the byte order ``big``). Fields are laid out in code order. Values are
    not validated here beyond what the wire needs; :func:`parse_message` checks the result."""
    u32 = _U32[big].pack
    parts: list[bytes] = []
    length = 0

    def add(code: int, sig: bytes, value: bytes) -> None:
        nonlocal length
        pad = -length % 8
        chunk = b"\0" * pad + bytes((code, len(sig))) + sig + b"\0"
        if sig != b"g":
            chunk += b"\0" * (-(length + len(chunk)) % 4)
        parts.append(chunk + value)
        length += len(chunk) + len(value)

    def text(code: int, sig: bytes, value: str | None) -> None:
        if value is not None:
            raw = value.encode("utf-8")
            add(code, sig, (bytes((len(raw),)) if sig == b"g" else u32(len(raw))) + raw + b"\0")

    text(1, b"o", path)
    text(2, b"s", interface)
    text(3, b"s", member)
    text(4, b"s", error_name)
    if reply_serial is not None:
        add(5, b"u", u32(reply_serial))
    text(6, b"s", destination)
    text(7, b"s", sender)
    if signature:
        text(8, b"g", signature)
    if unix_fds:
        add(9, b"u", u32(unix_fds))
    fields = b"".join(parts)
    fixed = (b"B" if big else b"l") + bytes((int(mtype), flags, 1))
    fixed += u32(len(body)) + u32(serial) + u32(len(fields))
    return fixed + fields + b"\0" * (-len(fields) % 8) + body


def decode_body(msg: WireMessage, limits: WireLimits = CLIENT_LIMITS) -> list[Any]:
    """The body's values (see ``_signature`` for the Python shapes); :class:`WireError`
    ``BAD_BODY`` when the body does not match its signature."""
    return decode_values(msg.signature, msg.data, msg.body_offset,
                         msg.body_offset + msg.body_length, msg.big, limits)


PROPERTIES = "org.freedesktop.DBus.Properties"


def first_string_arg(msg: WireMessage, limits: WireLimits = CLIENT_LIMITS) -> str | None:
    """The body's first argument when it is a string (``s``) or object path, decoding
    nothing else; ``None`` when the body starts with another type.
    :class:`WireError` ``BAD_BODY`` when that argument is malformed."""
    sig = msg.signature
    if not sig or sig[0] not in "so":
        return None
    start = msg.body_offset
    end = skip_value(sig[0], msg.data, start, start + msg.body_length, msg.big, limits)
    value: str = decode_values(sig[0], msg.data, start, end, msg.big, limits)[0]
    return value


def properties_interface(msg: WireMessage) -> str | None:
    """For a call of ``org.freedesktop.DBus.Properties.Get/Set/GetAll``, the interface named
    by its first argument (what the rules' ``interface`` specifier also matches); otherwise,
    or when that argument is missing or malformed, ``None``."""
    if msg.type != MessageType.METHOD_CALL or msg.interface != PROPERTIES \
            or msg.member not in ("Get", "Set", "GetAll") or not msg.signature.startswith("s"):
        return None
    try:
        return first_string_arg(msg)
    except WireError:
        return None


def with_body(msg: WireMessage, signature: str, values: list[Any] | tuple[Any, ...]
              ) -> WireMessage:
    """``msg`` with a new body (marshalled in ``msg``'s byte order), all header values kept."""
    body = encode_values(signature, values, msg.big)
    data = build_message(msg.type, serial=msg.serial, body=body, signature=signature,
                         path=msg.path, interface=msg.interface, member=msg.member,
                         error_name=msg.error_name, reply_serial=msg.reply_serial,
                         destination=msg.destination, sender=msg.sender, flags=msg.flags,
                         unix_fds=msg.unix_fds, big=msg.big)
    return parse_message(data, _NO_LIMITS)


def error_reply(call: WireMessage, name: str, text: str, *, serial: int,
                sender: str | None = None) -> bytes:
    """An error reply to ``call`` (name ``name``, one string ``text``), addressed back to the
    caller, in ``call``'s byte order."""
    if not is_interface_name(name):
        raise ValueError(f"invalid error name {name!r}")
    return build_message(MessageType.ERROR, serial=serial, reply_serial=call.serial,
                         error_name=name, destination=call.sender, sender=sender,
                         signature="s", body=encode_values("s", [text], call.big),
                         flags=FLAG_NO_REPLY_EXPECTED, big=call.big)
