"""Typed xenstore requests and reply payloads (sans-I/O).

Each request is a frozen dataclass whose ``OP`` is its message type; ``encode(req_id, tx_id)``
gives the `Packet` a client sends, and `decode_request` is the inverse a server applies.
`encode_reply` / `decode_reply` convert reply values to payloads and back. Payload shapes follow
docs/misc/xenstore.txt: path ops send ``path NUL``; WRITE ``path NUL value`` (value unterminated,
may hold NULs); WATCH/UNWATCH ``path NUL token NUL``; TRANSACTION_END ``T NUL`` / ``F NUL``;
INTRODUCE ``domid NUL mfn NUL port NUL``; SET_PERMS ``path NUL perm NUL ...``. READ replies are
the bare value; DIRECTORY, GET_PERMS, GET_DOMAIN_PATH, TRANSACTION_START and
IS_DOMAIN_INTRODUCED replies are NUL-terminated strings; acknowledgements are ``OK NUL``.

Failure behaviour: `decode_request` raises `XenstoreError` named as cxenstored would answer:
``ENOSYS`` for an unknown or reply-only op (including RESTRICT, removed in Xen 4.9), ``EINVAL``
for a malformed payload (wrong number of strings, a bad domid, a bad permission, a non-ASCII
path). `decode_reply` raises `XenstoreError` for an ERROR reply. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xen.xenstore._wire import (
    ERRORS,
    Op,
    Packet,
    Perm,
    XenstoreError,
    decode_ascii,
    format_perms,
    join_strings,
    parse_decimal,
    parse_domid,
    parse_perms,
    split_strings,
)

__all__ = [
    "Control",
    "Directory",
    "DirectoryPart",
    "GetDomainPath",
    "GetPerms",
    "Introduce",
    "IsDomainIntroduced",
    "Mkdir",
    "Read",
    "Release",
    "Request",
    "ResetWatches",
    "Resume",
    "Rm",
    "SetPerms",
    "SetTarget",
    "TransactionEnd",
    "TransactionStart",
    "Unwatch",
    "Watch",
    "Write",
    "decode_reply",
    "decode_request",
    "encode_reply",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def _inval(detail: str) -> XenstoreError:
    return XenstoreError("EINVAL", detail)


@dataclass(frozen=True, slots=True)
class Request:
    """Base of the typed requests; ``OP`` is the message type."""

    OP: ClassVar[Op]

    def payload(self) -> bytes:
        raise NotImplementedError

    def encode(self, req_id: int = 0, tx_id: int = 0) -> Packet:
        return Packet(int(self.OP), req_id, tx_id, self.payload())


@dataclass(frozen=True, slots=True)
class _PathRequest(Request):
    path: str

    def payload(self) -> bytes:
        return self.path.encode() + b"\0"


@dataclass(frozen=True, slots=True)
class Read(_PathRequest):
    OP = Op.READ


@dataclass(frozen=True, slots=True)
class Mkdir(_PathRequest):
    OP = Op.MKDIR


@dataclass(frozen=True, slots=True)
class Rm(_PathRequest):
    OP = Op.RM


@dataclass(frozen=True, slots=True)
class Directory(_PathRequest):
    OP = Op.DIRECTORY


@dataclass(frozen=True, slots=True)
class GetPerms(_PathRequest):
    OP = Op.GET_PERMS


@dataclass(frozen=True, slots=True)
class Write(Request):
    OP = Op.WRITE
    path: str
    value: bytes

    def payload(self) -> bytes:
        return self.path.encode() + b"\0" + self.value


@dataclass(frozen=True, slots=True)
class DirectoryPart(Request):
    OP = Op.DIRECTORY_PART
    path: str
    offset: int

    def payload(self) -> bytes:
        return join_strings(self.path.encode(), str(self.offset).encode())


@dataclass(frozen=True, slots=True)
class SetPerms(Request):
    OP = Op.SET_PERMS
    path: str
    perms: tuple[Perm, ...]

    def payload(self) -> bytes:
        return join_strings(self.path.encode()) + format_perms(self.perms)


@dataclass(frozen=True, slots=True)
class Watch(Request):
    OP = Op.WATCH
    path: str
    token: bytes

    def payload(self) -> bytes:
        return join_strings(self.path.encode(), self.token)


@dataclass(frozen=True, slots=True)
class Unwatch(Request):
    OP = Op.UNWATCH
    path: str
    token: bytes

    def payload(self) -> bytes:
        return join_strings(self.path.encode(), self.token)


@dataclass(frozen=True, slots=True)
class TransactionStart(Request):
    OP = Op.TRANSACTION_START

    def payload(self) -> bytes:
        return b"\0"


@dataclass(frozen=True, slots=True)
class TransactionEnd(Request):
    OP = Op.TRANSACTION_END
    commit: bool

    def payload(self) -> bytes:
        return b"T\0" if self.commit else b"F\0"


@dataclass(frozen=True, slots=True)
class Introduce(Request):
    OP = Op.INTRODUCE
    domid: int
    mfn: int
    port: int

    def payload(self) -> bytes:
        return join_strings(*(str(v).encode() for v in (self.domid, self.mfn, self.port)))


@dataclass(frozen=True, slots=True)
class _DomidRequest(Request):
    domid: int

    def payload(self) -> bytes:
        return join_strings(str(self.domid).encode())


@dataclass(frozen=True, slots=True)
class Release(_DomidRequest):
    OP = Op.RELEASE


@dataclass(frozen=True, slots=True)
class GetDomainPath(_DomidRequest):
    OP = Op.GET_DOMAIN_PATH


@dataclass(frozen=True, slots=True)
class IsDomainIntroduced(_DomidRequest):
    OP = Op.IS_DOMAIN_INTRODUCED


@dataclass(frozen=True, slots=True)
class Resume(_DomidRequest):
    OP = Op.RESUME


@dataclass(frozen=True, slots=True)
class SetTarget(Request):
    OP = Op.SET_TARGET
    domid: int
    target: int

    def payload(self) -> bytes:
        return join_strings(str(self.domid).encode(), str(self.target).encode())


@dataclass(frozen=True, slots=True)
class ResetWatches(Request):
    OP = Op.RESET_WATCHES

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Control(Request):
    OP = Op.DEBUG
    args: tuple[bytes, ...]

    def payload(self) -> bytes:
        return join_strings(*self.args)


_PATH_OPS: dict[int, type[_PathRequest]] = {
    Op.READ: Read,
    Op.MKDIR: Mkdir,
    Op.RM: Rm,
    Op.DIRECTORY: Directory,
    Op.GET_PERMS: GetPerms,
}
_DOMID_OPS: dict[int, type[_DomidRequest]] = {
    Op.RELEASE: Release,
    Op.GET_DOMAIN_PATH: GetDomainPath,
    Op.IS_DOMAIN_INTRODUCED: IsDomainIntroduced,
    Op.RESUME: Resume,
}


def _onearg(payload: bytes, what: str) -> bytes:
    # xenstored's onearg(): exactly one string, terminated by the payload's only NUL.
    if not payload.endswith(b"\0") or payload.count(b"\0") != 1:
        raise _inval(f"{what} wants exactly one NUL-terminated string, got {payload[:64]!r}")
    return payload[:-1]


def _strings(payload: bytes, count: int, what: str) -> list[bytes]:
    parts = split_strings(payload)
    if len(parts) < count:
        raise _inval(f"{what} wants {count} NUL-terminated strings, got {len(parts)}")
    return parts


_OP_NAMES = {int(op): op.name for op in Op}


def decode_request(packet: Packet) -> Request:
    """The typed request carried by a client packet; raises `XenstoreError` (ENOSYS/EINVAL)."""
    op, payload = packet.op, packet.payload
    name = _OP_NAMES.get(op) or str(op)
    if op in _PATH_OPS:
        return _PATH_OPS[op](decode_ascii(_onearg(payload, name), "path"))
    if op in _DOMID_OPS:
        return _DOMID_OPS[op](parse_domid(_onearg(payload, name)))
    if op == Op.WRITE:
        if b"\0" not in payload:
            raise _inval("WRITE wants path NUL value")
        path, value = payload.split(b"\0", 1)
        return Write(decode_ascii(path, "path"), value)
    if op == Op.DIRECTORY_PART:
        parts = split_strings(payload)
        if len(parts) != 2:
            raise _inval(f"DIRECTORY_PART wants path NUL offset NUL, got {len(parts)} strings")
        offset = parse_decimal(parts[1], "offset")
        if offset < 0:
            raise _inval(f"negative DIRECTORY_PART offset {offset}")
        return DirectoryPart(decode_ascii(parts[0], "path"), offset)
    if op == Op.SET_PERMS:
        parts = _strings(payload, 2, "SET_PERMS")
        return SetPerms(decode_ascii(parts[0], "path"), parse_perms(parts[1:]))
    if op in (Op.WATCH, Op.UNWATCH):
        parts = _strings(payload, 2, name)
        cls = Watch if op == Op.WATCH else Unwatch
        return cls(decode_ascii(parts[0], "watch path"), parts[1])
    if op == Op.TRANSACTION_START:
        return TransactionStart()
    if op == Op.TRANSACTION_END:
        arg = _onearg(payload, name)
        if arg not in (b"T", b"F"):
            raise _inval(f"TRANSACTION_END wants T or F, got {arg[:32]!r}")
        return TransactionEnd(arg == b"T")
    if op == Op.INTRODUCE:
        parts = _strings(payload, 3, "INTRODUCE")
        mfn, port = parse_decimal(parts[1], "mfn"), parse_decimal(parts[2], "port")
        return Introduce(parse_domid(parts[0]), mfn, port)
    if op == Op.SET_TARGET:
        parts = _strings(payload, 2, "SET_TARGET")
        return SetTarget(parse_domid(parts[0]), parse_domid(parts[1]))
    if op == Op.RESET_WATCHES:
        return ResetWatches()
    if op == Op.DEBUG:
        return Control(tuple(split_strings(payload)))
    raise XenstoreError("ENOSYS", f"op {name} is not a request this server handles")


# --- replies ----------------------------------------------------------------------------------


def encode_reply(op: int, value: object) -> bytes:
    """The payload of a successful reply to ``op``.

    READ: bytes, sent as is. DIRECTORY: list of names. DIRECTORY_PART: (generation, names,
    complete). GET_PERMS: perms. TRANSACTION_START: int id. GET_DOMAIN_PATH: str.
    IS_DOMAIN_INTRODUCED: bool. DEBUG/CONTROL: bytes. Everything else: ``OK``.
    """
    if op == Op.READ:
        assert isinstance(value, bytes)
        return value
    if op == Op.DIRECTORY:
        assert isinstance(value, list)
        return join_strings(*(n.encode() for n in value))
    if op == Op.DIRECTORY_PART:
        assert isinstance(value, tuple)
        gen, names, complete = value
        body = join_strings(str(gen).encode(), *(n.encode() for n in names))
        return body + b"\0" if complete else body
    if op == Op.GET_PERMS:
        assert isinstance(value, tuple)
        return format_perms(value)
    if op == Op.TRANSACTION_START:
        return join_strings(str(value).encode())
    if op == Op.GET_DOMAIN_PATH:
        assert isinstance(value, str)
        return join_strings(value.encode())
    if op == Op.IS_DOMAIN_INTRODUCED:
        return b"T\0" if value else b"F\0"
    if op == Op.DEBUG and isinstance(value, bytes):
        return value
    return b"OK\0"


def decode_reply(op: int, payload: bytes) -> object:
    """Inverse of `encode_reply` for a client; an ERROR payload raises `XenstoreError`."""
    if op == Op.ERROR:
        name = payload.rstrip(b"\0").decode("ascii", "replace")
        raise XenstoreError(name if name in ERRORS else "EINVAL", f"server answered {name}")
    if op == Op.READ or op == Op.DEBUG:
        return payload
    if op == Op.DIRECTORY:
        return [s.decode("ascii") for s in split_strings(payload)]
    if op == Op.DIRECTORY_PART:
        parts = split_strings(payload)
        complete = payload.endswith(b"\0\0")
        names = [s.decode("ascii") for s in parts[1:] if s]
        return (int(parts[0]), names, complete)
    if op == Op.GET_PERMS:
        return parse_perms(split_strings(payload))
    if op == Op.TRANSACTION_START:
        return int(payload.rstrip(b"\0"))
    if op == Op.GET_DOMAIN_PATH:
        return payload.rstrip(b"\0").decode("ascii")
    if op == Op.IS_DOMAIN_INTRODUCED:
        return payload.rstrip(b"\0") == b"T"
    return payload.rstrip(b"\0").decode("ascii", "replace")
