"""Sans-I/O wire protocol of the simulated hypervisor's unix socket.

Framing: each message is a 4-byte big-endian length N followed by N bytes of msgpack. The
msgpack value is an array whose first element is the protocol version (`VERSION`) and whose
second is the kind:

- request ``[1, "req", req_id, op, {arg: value}]`` (client to server),
- reply ``[1, "ok", req_id, value]`` and error ``[1, "err", req_id, name, message, errno]``
  (server to client). ``name`` is an error class name from `xen.hypervisor.ERRORS`; ``errno`` an
  integer or nil.

``req_id`` is chosen by the client (unique among its requests in flight, counted up from 1);
the server answers each request exactly once, in order. Operations and their argument names are
`OPS` (new operations only ever add names, so an older peer answers an unknown one with an
InvalidArgument error and the frame format never changes); values of the `xen.hypervisor` types
travel as maps of their fields by name (UUIDs as 16 bytes, enums and flags as integers),
converted by `encode_value` / `decode_*`.

`HvClientProtocol` and `HvServerProtocol` hold a buffer and a state, never a socket:
``feed(bytes) -> list[message]``, ``send(message) -> bytes``.

Bounds and failures (all subclasses of `ProtocolError`):
- A frame may be at most ``max_frame`` bytes (default `MAX_FRAME`, 1 MiB: the largest real
  frame is a getinfolist reply of `MAX_INFOLIST` domains, about 0.3 MiB). A length prefix over
  it raises `OversizeFrame` as soon as the prefix arrives, without buffering the body; the
  buffer never holds more than 4 + ``max_frame`` bytes after `feed` returns.
- A frame that is not msgpack, or not shaped as above, raises `MalformedFrame`; another version
  tag raises `UnsupportedVersion` (carrying the request id when one could be read); a message
  in the wrong direction or answering no request in flight raises `UnexpectedMessage`.
  These are `RemoteProtocolError`s: the stream is lost, and the protocol object is poisoned
  (every later `feed` raises). Complete messages that preceded the bad frame in the same `feed`
  are kept in the error's ``messages``.
- `send` refuses a message that would not fit in ``max_frame`` (`MessageTooLarge`, a
  `LocalProtocolError`) or cannot be encoded; nothing invalid is written.
- `decode_*` raise `BadPayload` (a `RemoteProtocolError` that does not poison anything) when a
  value inside a well-formed frame has the wrong fields or types.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from actors import FrameReader, FramingError, encode_frame
from xen.hypervisor._values import (
    DomainInfo,
    DomainSpec,
    PhysCap,
    PhysInfo,
    Version,
)

__all__ = [
    "MAX_FRAME",
    "MAX_INFOLIST",
    "OPS",
    "VERSION",
    "BadPayload",
    "ErrorReply",
    "HvClientProtocol",
    "HvServerProtocol",
    "LocalProtocolError",
    "MalformedFrame",
    "Message",
    "MessageTooLarge",
    "OversizeFrame",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "Request",
    "UnexpectedMessage",
    "UnsupportedVersion",
    "decode_dataclass",
    "decode_handle",
    "encode_value",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

VERSION = 1
# Largest frame body either side accepts: a getinfolist reply of MAX_INFOLIST domains is about
# 0.3 MiB (a DomainInfo map is about 280 bytes); 1 MiB leaves room and keeps a bad peer from
# making us buffer more.
MAX_FRAME = 1 << 20
#: Most domains one getinfolist request returns (the client pages for more).
MAX_INFOLIST = 1024
_MAX_OP_NAME = 64
_MAX_ID = (1 << 63) - 1

#: Operation name -> argument names, in order.
OPS: Mapping[str, tuple[str, ...]] = {
    "version": (),
    "physinfo": (),
    "create": ("spec",),
    "pause": ("domid",),
    "unpause": ("domid",),
    "shutdown": ("domid", "reason"),
    "destroy": ("domid",),
    "getinfolist": ("first", "max_domains"),
    "getinfo": ("domid",),
    "setmaxmem": ("domid", "kib"),
    "set_handle": ("domid", "handle"),
    "find_by_handle": ("handle",),
    "set_target": ("domid", "target"),  # added with stub domains
    # added with the domain-build steps; older peers answer them "unknown operation"
    "max_vcpus": ("domid", "vcpus"),
    "shadow_allocation": ("domid", "mib"),  # reply: the pool now held, in MiB
    "set_hvm_param": ("domid", "param", "value"),  # param: the HVM_PARAM_* number
    "get_hvm_param": ("domid", "param"),  # reply: the value (0..2**64-1)
    # added with PCI passthrough (bdf: "DDDD:BB:SS.F"; allow: a bool)
    "test_assign_device": ("domid", "bdf"),  # reply: a bool
    "assign_device": ("domid", "bdf"),
    "deassign_device": ("domid", "bdf"),
    "iomem_permission": ("domid", "first_mfn", "nr_mfns", "allow"),
    "ioport_permission": ("domid", "first_port", "nr_ports", "allow"),
    "irq_permission": ("domid", "pirq", "allow"),
    "map_pirq": ("domid", "gsi", "pirq"),  # pirq: an int or nil; reply: the pirq mapped
    "unmap_pirq": ("domid", "pirq"),
    # sim only: the simulated host's stand-in for dom0's /sys/bus/pci (path relative to it)
    "sysfs_read": ("path",),  # reply: the text
    "sysfs_write": ("path", "value"),
    "pci_state": (),  # reply: the simulated PCI bus, for tests and inspection
    # sim only: dom0's SCSI disks and CD drives (what /sys/bus/scsi shows), a drive's eject
    "scsi_devices": (),  # reply: a list of maps (xen.sim.hypervisor._scsi)
    "scsi_eject": ("hctl",),
}

Value = Any  # what msgpack can carry: None, bool, int, str, bytes, lists and str-keyed maps


# --- errors ------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """Base of the hypervisor wire protocol's failures."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol forbids."""


class MessageTooLarge(LocalProtocolError):
    """The encoded message exceeds the frame limit."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes the protocol forbids.

    ``messages``: complete messages that preceded the bad frame in the same `feed`."""

    def __init__(self, message: str, messages: tuple[Message, ...] = ()) -> None:
        super().__init__(message)
        self.messages = messages


class OversizeFrame(RemoteProtocolError):
    """A length prefix announced more than the frame limit."""


class MalformedFrame(RemoteProtocolError):
    """A frame is not msgpack or not shaped as a message."""


class UnsupportedVersion(RemoteProtocolError):
    """A frame carries another protocol version. ``req_id``: the request's id, if readable."""

    def __init__(self, message: str, messages: tuple[Message, ...] = (),
                 req_id: int | None = None) -> None:
        super().__init__(message, messages)
        self.req_id = req_id


class UnexpectedMessage(RemoteProtocolError):
    """A message in the wrong direction, or a reply to no request in flight."""


class BadPayload(RemoteProtocolError):
    """A value inside a well-formed frame has wrong fields or types (does not poison)."""


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    req_id: int
    op: str
    args: tuple[tuple[str, Value], ...] = ()

    def arg(self, name: str) -> Value:
        """The argument ``name``; `BadPayload` when the request lacks it."""
        for key, value in self.args:
            if key == name:
                return value
        raise BadPayload(f"request {self.op!r} lacks argument {name!r}")


@dataclass(frozen=True, slots=True)
class Reply:
    req_id: int
    value: Value


@dataclass(frozen=True, slots=True)
class ErrorReply:
    req_id: int
    name: str
    message: str
    errno: int | None = None


Message = Request | Reply | ErrorReply


# --- framing -----------------------------------------------------------------------------------


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_ID


def _parse(body: bytes) -> Message:
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, FormatError, ...)
        raise MalformedFrame(f"frame of {len(body)} bytes is not msgpack: {exc}") from None
    if not isinstance(obj, list) or len(obj) < 3:
        raise MalformedFrame(f"frame is not a [version, kind, id, ...] array: {obj!r:.80}")
    version, kind, req_id = obj[0], obj[1], obj[2]
    if version != VERSION or isinstance(version, bool):
        raise UnsupportedVersion(
            f"frame has protocol version {version!r:.20}, this side speaks {VERSION}",
            req_id=req_id if _is_id(req_id) else None)
    if not _is_id(req_id):
        raise MalformedFrame(f"bad request id {req_id!r:.40}")
    if kind == "req" and len(obj) == 5:
        op, args = obj[3], obj[4]
        if not isinstance(op, str) or not 0 < len(op) <= _MAX_OP_NAME:
            raise MalformedFrame(f"request {req_id}: bad op {op!r:.80}")
        if not isinstance(args, dict):
            raise MalformedFrame(f"request {req_id}: arguments are not a map: {args!r:.80}")
        return Request(req_id, op, tuple(args.items()))
    if kind == "ok" and len(obj) == 4:
        return Reply(req_id, obj[3])
    if kind == "err" and len(obj) == 6:
        name, message, errno = obj[3], obj[4], obj[5]
        if not isinstance(name, str) or not isinstance(message, str) or not (
            errno is None or (isinstance(errno, int) and not isinstance(errno, bool))
        ):
            raise MalformedFrame(f"error reply {req_id}: bad name, message or errno")
        return ErrorReply(req_id, name, message, errno)
    raise MalformedFrame(f"unknown message kind {kind!r:.20} with {len(obj)} elements")


def _encode(msg: Message, max_frame: int) -> bytes:
    if isinstance(msg, Request):
        obj: list[Value] = [VERSION, "req", msg.req_id, msg.op, dict(msg.args)]
    elif isinstance(msg, Reply):
        obj = [VERSION, "ok", msg.req_id, msg.value]
    else:
        obj = [VERSION, "err", msg.req_id, msg.name, msg.message, msg.errno]
    if not _is_id(msg.req_id):
        raise LocalProtocolError(f"bad request id {msg.req_id!r}")
    try:
        body = msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from None
    if len(body) > max_frame:
        raise MessageTooLarge(
            f"{type(msg).__name__} {msg.req_id} encodes to {len(body)} bytes; the frame limit "
            f"is {max_frame}")
    return encode_frame(body, max_frame)


class _Framer:
    """Frames in (`actors.FrameReader`), messages out; poisoned after a remote error."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._frames = FrameReader(max_frame)
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        return self._frames.buffered

    def feed(self, data: bytes, check: Any) -> list[Message]:
        if self._error is not None:
            raise RemoteProtocolError(f"connection unusable after an earlier error: {self._error}")
        out: list[Message] = []
        try:
            try:
                bodies = self._frames.feed(data)
            except FramingError as exc:
                bodies = list(exc.frames)
                self._parse_all(bodies, check, out)
                raise OversizeFrame(str(exc)) from None
            self._parse_all(bodies, check, out)
        except RemoteProtocolError as exc:
            self._frames = FrameReader(self.max_frame)
            exc.messages = tuple(out)
            self._error = exc
            raise
        return out

    @staticmethod
    def _parse_all(bodies: list[bytes], check: Any, out: list[Message]) -> None:
        for body in bodies:
            msg = _parse(body)
            check(msg)
            out.append(msg)


class HvClientProtocol:
    """The client side: `request` builds a request with a fresh id, `send` encodes it and
    records it in flight, `feed` returns the replies (each matched to a request in flight)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._framer = _Framer(max_frame)
        self._next_id = 1
        self._in_flight: dict[int, str] = {}

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def request(self, op: str, **args: Value) -> Request:
        """A request for ``op`` with the next id (`LocalProtocolError` for an unknown op or
        wrong argument names)."""
        if op not in OPS:
            raise LocalProtocolError(f"unknown operation {op!r}")
        if tuple(sorted(args)) != tuple(sorted(OPS[op])):
            raise LocalProtocolError(f"{op} takes arguments {OPS[op]}, got {tuple(args)}")
        req = Request(self._next_id, op, tuple(args.items()))
        self._next_id += 1
        return req

    def send(self, req: Request) -> bytes:
        if req.req_id in self._in_flight:
            raise LocalProtocolError(f"request id {req.req_id} is already in flight")
        data = _encode(req, self._framer.max_frame)
        self._in_flight[req.req_id] = req.op
        return data

    def feed(self, data: bytes) -> list[Reply | ErrorReply]:
        def check(msg: Message) -> None:
            if isinstance(msg, Request):
                raise UnexpectedMessage(f"the server sent a request ({msg.op!r})")
            if self._in_flight.pop(msg.req_id, None) is None:
                raise UnexpectedMessage(f"reply to request {msg.req_id}, which is not in flight")

        return self._framer.feed(data, check)  # type: ignore[return-value]


class HvServerProtocol:
    """The server side: `feed` returns requests, `send` encodes a reply or an error."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._framer = _Framer(max_frame)

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def feed(self, data: bytes) -> list[Request]:
        def check(msg: Message) -> None:
            if not isinstance(msg, Request):
                raise UnexpectedMessage(f"the client sent a {type(msg).__name__}")

        return self._framer.feed(data, check)  # type: ignore[return-value]

    def send(self, msg: Reply | ErrorReply) -> bytes:
        return _encode(msg, self._framer.max_frame)


# --- values ------------------------------------------------------------------------------------

T = TypeVar("T")


#: types encoded as they are (exact types: subclasses such as enums take the general path)
_AS_IS = frozenset({bool, int, str, bytes, type(None)})
#: dataclass -> its fields as (name, type text), in order (filled on first use, for encoding
#: and decoding alike: a getinfolist reply carries hundreds)
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    """The dataclass ``cls``'s fields as (name, type text), in order, made once per class."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS.setdefault(cls, tuple((f.name, str(f.type))
                                               for f in dataclasses.fields(cls)))
    return fields


def encode_value(value: object) -> Value:
    """A msgpack-able form of ``value``: backend dataclasses become maps of their fields,
    UUIDs 16 bytes, enums and flags integers, lists element-wise."""
    cls = type(value)
    if cls in _AS_IS:
        return value
    if cls is uuid.UUID:
        return value.bytes  # type: ignore[attr-defined]
    fields = _FIELDS.get(cls)
    if fields is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = _fields(cls)
    if fields is not None:
        out: dict[str, Value] = {}
        for name, _kind in fields:
            field = getattr(value, name)
            out[name] = field if type(field) in _AS_IS else encode_value(field)
        return out
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, bool | str | bytes | None):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    raise LocalProtocolError(f"cannot encode a {type(value).__name__} value")


def decode_handle(obj: Value) -> uuid.UUID:
    """A UUID from its 16 bytes; `BadPayload` otherwise."""
    if not isinstance(obj, bytes) or len(obj) != 16:
        raise BadPayload(f"a handle is 16 bytes, got {obj!r:.60}")
    return uuid.UUID(bytes=obj)


def _decode_field(cls_name: str, name: str, kind: str, obj: Value) -> object:
    if kind == "bool":
        if isinstance(obj, bool):
            return obj
    elif kind in ("int", "PhysCap", "int | None"):
        if obj is None and kind == "int | None":
            return None
        if isinstance(obj, int) and not isinstance(obj, bool):
            return PhysCap(obj) if kind == "PhysCap" else obj
    elif kind == "str":
        if isinstance(obj, str):
            return obj
    elif kind == "uuid.UUID":
        return decode_handle(obj)
    raise BadPayload(f"{cls_name}.{name} must be {kind}, got {obj!r:.60}")


_DECODABLE = (DomainInfo, PhysInfo, Version, DomainSpec)


_PLAIN = {"int": int, "bool": bool, "str": str, "int | None": int}  # taken as they are


def decode_dataclass(cls: type[T], obj: Value) -> T:
    """Rebuild a `DomainInfo`, `PhysInfo`, `Version` or `DomainSpec` from its map; `BadPayload`
    naming the field for a missing or unknown field or a wrong type (including what the class
    itself rejects)."""
    if cls not in _DECODABLE:
        raise LocalProtocolError(f"cannot decode a {cls.__name__}")
    if not isinstance(obj, dict):
        raise BadPayload(f"{cls.__name__} must be a map, got {obj!r:.60}")
    kinds = _fields(cls)
    if len(obj) != len(kinds) or not all(name in obj for name, _ in kinds):
        names = {name for name, _ in kinds}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise BadPayload(f"{cls.__name__} has unknown fields {unknown}")
        missing = next(name for name, _ in kinds if name not in obj)
        raise BadPayload(f"{cls.__name__} lacks field {missing!r}")
    kwargs: dict[str, object] = {}
    for name, kind in kinds:
        value = obj[name]
        if _PLAIN.get(kind) is type(value):  # the usual case, as _decode_field would take it
            kwargs[name] = value
        else:
            kwargs[name] = _decode_field(cls.__name__, name, kind, value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadPayload(f"bad {cls.__name__}: {exc}") from None
