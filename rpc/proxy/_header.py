"""The header fields of a DBus message: parse and validate them, and cache the result (pure).

:func:`parse_fields` walks the header field array of one message (everything after the fixed
16 bytes) and enforces the DBus specification's rules for it: each code at most once, code 0
refused, the signature the spec gives each known code, unknown codes skipped after their value
is validated, zero padding, valid object path, interface, member, error and bus names, a valid
body signature, the fields each message type requires, a non-zero reply serial, no reserved
``org.freedesktop.DBus.Local`` path or interface, and the limits (field count, signature
nesting, file descriptors). It raises :class:`~rpc.proxy._limits.WireError` and nothing else.

:class:`HeaderCache` is a small per-connection memo: a client calling the same method again
sends the same header fields byte for byte (only the serial, in the fixed part, changes), so
the proxy can skip the walk. Replies and errors differ from one another in one more place, the
reply serial's four bytes inside the fields; the cache keys them without those bytes, at the
offset where the last parsed message of the same type and field length had its reply serial
(a *hint*). That is sound: a message equal to a validated one everywhere but in the value of
its reply serial is valid exactly when that value is not zero (the only check the walk makes
of it), and an entry is used only when it was stored for the same offset. Bounded: at most
``max_entries`` headers of at most ``max_key`` bytes each (it empties itself when full), so a
client sending ever-new headers costs at most ``max_entries * max_key`` bytes (and as many
hints).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from rpc.proxy._limits import WireError, WireLimits, WireReason
from rpc.proxy._signature import check_signature, skip_value

__all__ = ["Fields", "HeaderCache", "is_bus_name", "is_interface_name", "parse_fields"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: (reply_serial, path, interface, member, error_name, destination, sender, signature,
#: unix_fds, offset of the reply serial's bytes or -1): the order of
#: :class:`~rpc.proxy._message.WireMessage`'s fields from ``reply_serial`` on, so a message is
#: built from a cached tuple in one step
Fields = tuple[int | None, str | None, str | None, str | None, str | None, str | None,
               str | None, str, int, int]

_FIELD_SIG = {1: b"o", 2: b"s", 3: b"s", 4: b"s", 5: b"u", 6: b"s", 7: b"s", 8: b"g", 9: b"u"}
_FIELD_NAME = {1: "path", 2: "interface", 3: "member", 4: "error name", 6: "destination",
               7: "sender"}
_CODE_NAME = {1: "PATH", 2: "INTERFACE", 3: "MEMBER", 4: "ERROR_NAME", 5: "REPLY_SERIAL"}
_REQUIRED = {1: (1, 3), 4: (1, 2, 3), 3: (4, 5), 2: (5,)}
_TYPE_NAME = {1: "METHOD_CALL", 2: "METHOD_RETURN", 3: "ERROR", 4: "SIGNAL"}
_U32 = {False: struct.Struct("<I"), True: struct.Struct(">I")}
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
_INTERFACE = re.compile(_DOTTED)
_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUS_NAME = re.compile(r":[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+"
                       r"|[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+")
_CHECK = {2: _INTERFACE, 3: _MEMBER, 4: _INTERFACE, 6: _BUS_NAME, 7: _BUS_NAME}
_PATH = re.compile(r"/|(?:/[A-Za-z0-9_]+)+")
_LOCAL_PATH = "/org/freedesktop/DBus/Local"
_LOCAL_INTERFACE = "org.freedesktop.DBus.Local"


def is_bus_name(text: str) -> bool:
    """True for a valid unique or well-known bus name."""
    return len(text) <= 255 and _BUS_NAME.fullmatch(text) is not None


def is_interface_name(text: str) -> bool:
    """True for a valid interface (or error) name."""
    return len(text) <= 255 and _INTERFACE.fullmatch(text) is not None


class HeaderCache:
    """Recently parsed header fields of one connection (see the module docstring)."""

    __slots__ = ("_entries", "_hints", "get", "max_entries", "max_key", "reply_hint")

    get: Callable[[bytes], Fields | None]
    """The fields parsed for ``key`` (byte order, type and field bytes), if cached (the
    dict's own ``get``: no Python frame on the per-message path)."""
    reply_hint: Callable[[int], int | None]
    """Where the last message of ``shape`` (``type << 32 | fields length``) had its reply
    serial, or ``None`` (a dict's ``get`` too)."""

    def __init__(self, max_entries: int = 256, max_key: int = 512) -> None:
        self.max_entries = max_entries
        self.max_key = max_key
        self._entries: dict[bytes, Fields] = {}
        self._hints: dict[int, int] = {}  # (type << 32 | fields length) -> reply serial offset
        self.get = self._entries.get  # both dicts are only ever cleared, never replaced
        self.reply_hint = self._hints.get

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: bytes, fields: Fields) -> None:
        """Remember ``fields`` for ``key`` (not if ``key`` is over ``max_key`` bytes)."""
        if len(key) > self.max_key:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
            self._hints.clear()
        self._entries[key] = fields

    def put_reply(self, shape: int, key: bytes, fields: Fields) -> None:
        """Remember ``fields`` of a message with a reply serial under ``key`` (its header
        without the reply serial's bytes), and its offset as the hint for ``shape``."""
        if len(key) > self.max_key:
            return
        self.put(key, fields)
        self._hints[shape] = fields[9]


def _field_error(code: int, why: str) -> WireError:
    return WireError(WireReason.BAD_HEADER_FIELD, f"field {code}: {why}")


def parse_fields(data: bytes, big: bool, mtype: int, end: int, limits: WireLimits) -> Fields:
    """Parse and validate the header fields in ``data[16:end]`` of a message of type
    ``mtype`` (module docstring); :class:`WireError` on any violation."""
    u32 = _U32[big].unpack_from
    values: dict[int, Any] = {}
    reply_at = -1
    pos = 16
    max_fields = limits.max_header_fields
    while pos < end:
        if pos & 7:
            pad = (pos + 7) & -8
            if pad >= end or data.count(0, pos, pad) != pad - pos:
                raise _field_error(0, "bad padding between fields (or after the last one, "
                                   "inside the array's length)")
            pos = pad
        code = data[pos]
        if pos + 2 > end:
            raise _field_error(code, "truncated")
        sig_end = pos + 2 + data[pos + 1]
        if sig_end >= end or data[sig_end] != 0:
            raise _field_error(code, "truncated signature")
        sig = data[pos + 2:sig_end]
        pos = sig_end + 1
        if code in values or code == 0:
            raise _field_error(code, "appears twice" if code else "code 0 is invalid")
        if len(values) >= max_fields:
            raise WireError(WireReason.TOO_LARGE, f"more than {max_fields} header fields")
        expected = _FIELD_SIG.get(code)
        if expected is None:  # unknown: validate and skip its value
            text_sig = sig.decode("ascii", "replace")
            try:
                check_signature(text_sig, limits, single=True)
                pos = skip_value(text_sig, data, pos, end, big, limits)
            except WireError as exc:
                raise _field_error(code, f"unknown field's value: {exc.detail}") from None
            values[code] = None
            continue
        if sig != expected:
            raise _field_error(code, f"signature {sig!r}, the spec says {expected!r}")
        if expected == b"u":
            at = (pos + 3) & -4
            if at + 4 > end or data.count(0, pos, at) != at - pos:
                raise _field_error(code, "truncated or bad padding")
            if code == 5:
                reply_at = at
            values[code] = u32(data, at)[0]
            pos = at + 4
            continue
        if expected == b"g":
            if pos >= end:
                raise _field_error(code, "truncated")
            start = pos + 1
            stop = start + data[pos]
        else:
            at = (pos + 3) & -4
            if at + 4 > end or data.count(0, pos, at) != at - pos:
                raise _field_error(code, "truncated or bad padding")
            start = at + 4
            stop = start + u32(data, at)[0]
        if stop >= end or data[stop] != 0:
            raise _field_error(code, "truncated or not NUL-terminated")
        try:
            text = data[start:stop].decode("ascii")
        except UnicodeDecodeError:
            raise WireError(WireReason.BAD_NAME,
                            f"{_FIELD_NAME.get(code, 'signature')} is not ASCII") from None
        pos = stop + 1
        if code == 1:
            if _PATH.fullmatch(text) is None:
                raise WireError(WireReason.BAD_NAME, f"invalid object path {text[:80]!r}")
        elif code == 8:
            check_signature(text, limits)
        elif len(text) > 255 or _CHECK[code].fullmatch(text) is None:
            raise WireError(WireReason.BAD_NAME, f"invalid {_FIELD_NAME[code]} {text[:80]!r}")
        values[code] = text
    if any(data[end:(end + 7) & -8]):
        raise _field_error(0, "non-zero padding after the fields")
    get = values.get
    fds = get(9, 0)
    if fds > limits.max_unix_fds:
        raise WireError(WireReason.UNIX_FDS, f"{fds} file descriptors (limit "
                        f"{limits.max_unix_fds})")
    for code in _REQUIRED[mtype]:
        if code not in values:
            raise WireError(WireReason.MISSING_FIELD,
                            f"{_TYPE_NAME[mtype]} without {_CODE_NAME[code]}")
    reply_serial = get(5)
    if reply_serial == 0:
        raise _field_error(5, "reply serial 0")
    if get(1) == _LOCAL_PATH or get(2) == _LOCAL_INTERFACE:
        raise WireError(WireReason.BAD_NAME, "the org.freedesktop.DBus.Local path and "
                        "interface are reserved")
    return (reply_serial, get(1), get(2), get(3), get(4), get(6), get(7), get(8, ""), fds,
            reply_at)
