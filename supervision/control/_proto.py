"""The control socket protocol (pure: no I/O). Version 1.

Frames: a 4-byte big-endian length, then the value encoded by :func:`actors.encode` (msgpack
with the codec's own version tag). A frame over :data:`MAX_FRAME` bytes is a protocol error
(the buffer never holds more than one frame's worth).

Messages are maps:

* request ``{"id": int, "op": str, "args": map}``;
* answer ``{"id": int, "ok": true, "result": any}`` or
  ``{"id": int, "ok": false, "error": str, "kind": str}`` (``kind``: ``bad-request``,
  ``not-found``, ``timeout``, ``refused``, ``failed``);
* streamed answers (``log.follow``, ``trace``): any number of
  ``{"id": int, "ok": true, "event": any, "more": true}``, then a final answer.

The first request of a connection should be ``hello`` (``{"version": 1}``), answered with the
server's version, pid and start time; a client speaking another version gets an error.
:class:`FrameParser` is the incremental reader; :func:`frame` the writer; :func:`check_request`
validates a decoded request and raises :class:`BadRequest` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors import CodecError, FrameReader, FramingError, decode, encode, encode_frame

__all__ = [
    "MAX_FRAME",
    "OPS",
    "PROTOCOL_VERSION",
    "BadRequest",
    "FrameParser",
    "FrameTooLarge",
    "ProtocolError",
    "Request",
    "answer",
    "check_request",
    "error",
    "event",
    "frame",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

PROTOCOL_VERSION = 1
MAX_FRAME = 4 * 1024 * 1024
"""Largest frame accepted: a tree of a few thousand actors fits many times over."""

OPS: Mapping[str, tuple[str, ...]] = {
    "hello": ("version",),
    "tree": (),
    "actors": (),
    "stats": ("path",),
    "state": ("path",),
    "log.tail": (),
    "log.follow": (),
    "trace": ("path",),
    "send": ("path", "message"),
    "ask": ("path", "message"),
    "crash": ("path",),
    "child.restart": ("path",),
    "child.stop": ("path",),
    "child.start": ("path",),
    "vm.add": ("uuid", "config"),
    "vm.task": ("uuid", "task"),
    "cancel": ("request",),
}
"""Every operation and its required arguments (see docs/control.md for optional ones)."""


class ProtocolError(ValueError):
    """The byte stream cannot be read (the connection must be closed)."""


class FrameTooLarge(ProtocolError):
    """A frame announced more than :data:`MAX_FRAME` bytes."""


class BadRequest(ValueError):
    """A well-framed request that is not a valid request (answered, not fatal)."""


def frame(value: Any) -> bytes:
    """One frame holding ``value``."""
    try:
        return encode_frame(encode(value), MAX_FRAME)
    except FramingError as exc:
        raise FrameTooLarge(str(exc)) from None


class FrameParser:
    """Incremental frame reader: ``feed(bytes) -> list of decoded values``."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._frames = FrameReader(max_frame)

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of a frame."""
        return self._frames.buffered

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Add bytes; return every complete value. Raises :class:`ProtocolError`."""
        try:
            bodies = self._frames.feed(data)
        except FramingError as exc:
            raise FrameTooLarge(str(exc)) from None
        out: list[Any] = []
        for body in bodies:
            try:
                out.append(decode(body))
            except CodecError as exc:
                raise ProtocolError(f"undecodable frame: {exc}") from exc
        return out


@dataclass(frozen=True, slots=True)
class Request:
    """A checked request."""

    id: int
    op: str
    args: Mapping[str, Any]


def check_request(value: Any) -> Request:
    """Validate a decoded request (see the module docstring)."""
    if not isinstance(value, dict):
        raise BadRequest("a request must be a map")
    rid = value.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise BadRequest("a request needs an integer 'id'")
    op = value.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise BadRequest(f"unknown operation {op!r}")
    args = value.get("args", {})
    if not isinstance(args, dict):
        raise BadRequest(f"{op}: 'args' must be a map")
    for name in OPS[op]:
        if name not in args:
            missing = [name for name in OPS[op] if name not in args]
            raise BadRequest(f"{op}: missing argument(s) {', '.join(missing)}")
    return Request(rid, op, args)


def answer(rid: int, result: Any) -> dict[str, Any]:
    """A final successful answer."""
    return {"id": rid, "ok": True, "result": result}


def event(rid: int, value: Any) -> dict[str, Any]:
    """One streamed item."""
    return {"id": rid, "ok": True, "event": value, "more": True}


def error(rid: int, message: str, kind: str = "failed") -> dict[str, Any]:
    """A final error answer."""
    return {"id": rid, "ok": False, "error": message, "kind": kind}
