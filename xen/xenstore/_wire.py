"""Sans-I/O framing of the xenstore wire protocol (Xen's docs/misc/xenstore.txt, io/xs_wire.h).

A packet is a 16-byte header of four uint32 (type, req_id, tx_id, len), little-endian (the
native order of every platform dom0 runs on; libxenstore and pyxs write native order), followed
by ``len`` payload bytes. This module turns bytes into `Packet` values and back, and holds the
protocol's vocabulary: op codes, limits, error names (`XenstoreError`), permission strings
(`Perm`) and NUL-separated string helpers. It does no I/O. Typed request payloads are in
`xen.xenstore._requests`.

Guarantees:
- `PacketParser` is incremental and bounded: it buffers at most one header plus one payload of
  at most `PAYLOAD_MAX` (4096) bytes. A header announcing a longer payload raises
  `PayloadTooLarge` (a `RemoteProtocolError`); real xenstored kills such a connection, and the
  parser is poisoned: every later `feed` raises `RemoteProtocolError`.
- `Packet.encode` refuses a payload over 4096 bytes (`PacketTooLarge`) or a header field outside
  uint32 (`LocalProtocolError`): nothing invalid is ever produced.
- The ``parse_*`` helpers raise `XenstoreError("EINVAL")` naming the bad input.

Op numbering follows Xen 4.17's xs_wire.h: DEBUG (alias CONTROL) 0 ... RESET_WATCHES 21,
DIRECTORY_PART 22, INVALID 0xffff. (OpenXT's old libs/xb numbered INVALID 22; DIRECTORY_PART
took that slot later, and 4.17's libxenstore falls back to it when DIRECTORY answers E2BIG.)
"""

from __future__ import annotations

import enum
import errno as _errno
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "ABS_PATH_MAX",
    "DOMID_MAX",
    "ERRORS",
    "HEADER",
    "HEADER_SIZE",
    "PAYLOAD_MAX",
    "REL_PATH_MAX",
    "Access",
    "LocalProtocolError",
    "Op",
    "Packet",
    "PacketParser",
    "PacketTooLarge",
    "PayloadTooLarge",
    "Perm",
    "ProtocolError",
    "RemoteProtocolError",
    "XenstoreError",
    "decode_ascii",
    "encode_packet",
    "error_packet",
    "format_perms",
    "join_strings",
    "parse_decimal",
    "parse_domid",
    "parse_perms",
    "split_strings",
    "watch_event_packet",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

# Limits from xs_wire.h. Payload: "violating this is very bad" (the connection is killed).
PAYLOAD_MAX = 4096
# Paths: violating these "just gets you an error back" (EINVAL).
ABS_PATH_MAX = 3072
REL_PATH_MAX = 2048
# Domain ids are 16 bit on the wire ("0..65535"); 0x7FF0 and up are DOMID_* specials.
DOMID_MAX = 0xFFFF

HEADER = struct.Struct("<IIII")
HEADER_SIZE = HEADER.size
_U32 = 0xFFFFFFFF


class Op(enum.IntEnum):
    """Message types (``enum xsd_sockmsg_type``)."""

    DEBUG = 0  # called CONTROL since Xen 4.9; same number
    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    INTRODUCE = 8
    RELEASE = 9
    GET_DOMAIN_PATH = 10
    WRITE = 11
    MKDIR = 12
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16
    IS_DOMAIN_INTRODUCED = 17
    RESUME = 18
    SET_TARGET = 19
    RESTRICT = 20  # removed in Xen 4.9: answered ENOSYS
    RESET_WATCHES = 21
    DIRECTORY_PART = 22
    INVALID = 0xFFFF

    CONTROL = 0  # alias of DEBUG (IntEnum keeps the first name as canonical)


# Error names xenstored sends (xs_wire.h's xsd_errors, plus EPERM added in 4.17 and oxenstored's
# EQUOTA). libxenstore maps an unknown name to EINVAL.
ERRORS: dict[str, int] = {
    "EINVAL": _errno.EINVAL,
    "EACCES": _errno.EACCES,
    "EEXIST": _errno.EEXIST,
    "EISDIR": _errno.EISDIR,
    "ENOENT": _errno.ENOENT,
    "ENOMEM": _errno.ENOMEM,
    "ENOSPC": _errno.ENOSPC,
    "EIO": _errno.EIO,
    "ENOTEMPTY": _errno.ENOTEMPTY,
    "ENOSYS": _errno.ENOSYS,
    "EROFS": _errno.EROFS,
    "EBUSY": _errno.EBUSY,
    "EAGAIN": _errno.EAGAIN,
    "EISCONN": _errno.EISCONN,
    "E2BIG": _errno.E2BIG,
    "EPERM": _errno.EPERM,
    "EQUOTA": _errno.EDQUOT,
}


class XenstoreError(Exception):
    """A request failed; ``name`` is the errno name carried by the ERROR reply (e.g. ENOENT)."""

    def __init__(self, name: str, detail: str = "") -> None:
        if name not in ERRORS:
            raise ValueError(f"unknown xenstore error name {name!r}")
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.errno = ERRORS[name]
        self.detail = detail


class ProtocolError(Exception):
    """Base of wire-level failures (the byte stream itself is wrong)."""


class LocalProtocolError(ProtocolError):
    """We were asked to produce something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes the protocol forbids; the connection cannot continue."""


class PayloadTooLarge(RemoteProtocolError):
    """A header announced a payload over `PAYLOAD_MAX`.

    ``packets`` holds the complete packets that preceded the bad header in the same `feed`, so
    that a server can answer them before it drops the connection."""

    def __init__(self, message: str, packets: tuple[Packet, ...] = ()) -> None:
        super().__init__(message)
        self.packets = packets


class PacketTooLarge(LocalProtocolError):
    """Refused to encode a payload over `PAYLOAD_MAX`."""


class Packet(NamedTuple):
    """One message: ``op`` is an int (unknown types are carried, not rejected, here).

    Immutable (a named tuple: a third of a frozen dataclass's cost to build; one per request
    on each side of the connection)."""

    op: int
    req_id: int
    tx_id: int
    payload: bytes

    def encode(self) -> bytes:
        return encode_packet(self.op, self.req_id, self.tx_id, self.payload)


def encode_packet(op: int, req_id: int, tx_id: int, payload: bytes) -> bytes:
    """A packet's bytes (what `Packet.encode` gives) without building the `Packet`."""
    if len(payload) > PAYLOAD_MAX:
        raise PacketTooLarge(
            f"payload of {len(payload)} bytes exceeds the {PAYLOAD_MAX}-byte limit"
        )
    try:
        return HEADER.pack(op, req_id, tx_id, len(payload)) + payload
    except struct.error:
        for name, value in (("op", op), ("req_id", req_id), ("tx_id", tx_id)):
            if not 0 <= value <= _U32:
                raise LocalProtocolError(f"{name}={value} does not fit in a uint32") from None
        raise


class PacketParser:
    """Incremental parser: ``feed(bytes) -> list[Packet]``.

    Bound: the buffer never holds more than ``HEADER_SIZE + max_payload`` bytes after `feed`
    returns (a partial packet); the limit is the protocol's, 4096, by default.
    """

    def __init__(self, max_payload: int = PAYLOAD_MAX) -> None:
        self._max_payload = max_payload
        self._buf = bytearray()
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        if self._error is not None:
            raise RemoteProtocolError(f"parser is unusable after an earlier error: {self._error}")
        if not self._buf and len(data) >= HEADER_SIZE:  # the usual case: one whole packet
            op, req_id, tx_id, length = HEADER.unpack_from(data)
            if len(data) == HEADER_SIZE + length and length <= self._max_payload:
                return [Packet(op, req_id, tx_id, bytes(data[HEADER_SIZE:]))]
        self._buf += data
        packets: list[Packet] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= HEADER_SIZE:
            op, req_id, tx_id, length = HEADER.unpack_from(buf, pos)
            if length > self._max_payload:
                self._buf = bytearray()
                self._error = PayloadTooLarge(
                    f"header announces a {length}-byte payload (op {op}, req_id {req_id});"
                    f" the limit is {self._max_payload}",
                    tuple(packets),
                )
                raise self._error
            end = pos + HEADER_SIZE + length
            if len(buf) < end:
                break
            packets.append(Packet(op, req_id, tx_id, bytes(buf[pos + HEADER_SIZE : end])))
            pos = end
        del buf[:pos]
        return packets


# --- payload helpers --------------------------------------------------------------------------


def split_strings(payload: bytes) -> list[bytes]:
    """The NUL-terminated strings of ``payload``; bytes after the last NUL are ignored."""
    parts = payload.split(b"\0")
    return parts[:-1]


def join_strings(*parts: bytes) -> bytes:
    """Each part followed by a NUL."""
    return b"".join(p + b"\0" for p in parts)


def _inval(detail: str) -> XenstoreError:
    return XenstoreError("EINVAL", detail)


def decode_ascii(raw: bytes, what: str) -> str:
    """``raw`` as ASCII text; EINVAL naming ``what`` otherwise."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise _inval(f"{what} is not ASCII: {raw[:64]!r}") from None


def parse_domid(raw: bytes) -> int:
    """A decimal domid 0..65535; EINVAL otherwise."""
    text = decode_ascii(raw, "domid")
    if not text.isdigit() or int(text) > DOMID_MAX:
        raise _inval(f"bad domid {raw[:32]!r}: want a decimal 0..{DOMID_MAX}")
    return int(text)


def parse_decimal(raw: bytes, what: str) -> int:
    """A (signed) decimal integer; EINVAL naming ``what`` otherwise."""
    text = decode_ascii(raw, what)
    try:
        return int(text, 10)
    except ValueError:
        raise _inval(f"bad {what} {raw[:32]!r}: want a decimal integer") from None


class Access(enum.Enum):
    """The permission letter: n (none), r (read), w (write), b (both)."""

    NONE = "n"
    READ = "r"
    WRITE = "w"
    BOTH = "b"

    @property
    def can_read(self) -> bool:
        return self in (Access.READ, Access.BOTH)

    @property
    def can_write(self) -> bool:
        return self in (Access.WRITE, Access.BOTH)


@dataclass(frozen=True, slots=True)
class Perm:
    """One permission entry. In a node's list the first entry names the owner and the access of
    every domain not listed; later entries are per-domain ACL entries."""

    domid: int
    access: Access

    def __str__(self) -> str:
        return f"{self.access.value}{self.domid}"

    @classmethod
    def parse(cls, text: str | bytes) -> Perm:
        raw = text.encode("latin-1") if isinstance(text, str) else text
        if len(raw) < 2 or raw[:1] not in (b"n", b"r", b"w", b"b"):
            raise _inval(f"bad permission {raw[:32]!r}: want n/r/w/b followed by a domid")
        return cls(parse_domid(raw[1:]), Access(raw[:1].decode()))


def parse_perms(strings: list[bytes]) -> tuple[Perm, ...]:
    if not strings:
        raise _inval("a permission list needs at least the owner entry")
    return tuple(Perm.parse(s) for s in strings)


def format_perms(perms: tuple[Perm, ...] | list[Perm]) -> bytes:
    return join_strings(*(str(p).encode() for p in perms))


def error_packet(name: str, req_id: int, tx_id: int) -> Packet:
    if name not in ERRORS:
        raise ValueError(f"unknown xenstore error name {name!r}")
    return Packet(int(Op.ERROR), req_id, tx_id, join_strings(name.encode()))


def watch_event_packet(path: str, token: bytes) -> Packet:
    """A WATCH_EVENT (req_id and tx_id are 0); raises `PacketTooLarge` past the limit."""
    packet = Packet(int(Op.WATCH_EVENT), 0, 0, join_strings(path.encode(), token))
    if len(packet.payload) > PAYLOAD_MAX:
        raise PacketTooLarge(f"watch event for {path[:64]!r} exceeds {PAYLOAD_MAX} bytes")
    return packet
