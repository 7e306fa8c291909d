"""Length-prefixed frames: the one framing of our msgpack socket protocols (the control socket
of `supervision.control` and the simulated hypervisor's `xen.hypervisor.wire`).

A frame is a 4-byte big-endian length N followed by N bytes of body (each protocol encodes its
body with msgpack its own way). :class:`FrameReader` is the incremental reader:
``feed(data) -> list[bytes]`` returns every complete body, in order. Bounds and failures:

* a length over ``max_frame`` raises :class:`FrameTooLarge` as soon as its 4 bytes arrive,
  without buffering the body; the bodies completed before it in the same ``feed`` are kept in
  the error's ``frames``. The stream cannot be resynchronised after that, so the reader is
  poisoned: every later ``feed`` raises :class:`FramingError` naming the first error;
* after ``feed`` returns, the reader holds at most 4 + ``max_frame`` bytes (one partial frame).

:func:`encode_frame` refuses a body over ``max_frame`` (:class:`FrameTooLarge`), so nothing a
peer would refuse is ever sent.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER_SIZE", "FrameReader", "FrameTooLarge", "FramingError", "encode_frame"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
"""Bytes of the length prefix."""


class FramingError(ValueError):
    """The byte stream cannot be read as frames any more."""

    def __init__(self, message: str, frames: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.frames = frames


class FrameTooLarge(FramingError):
    """A frame is (or announces) more than the limit."""


def encode_frame(body: bytes, max_frame: int) -> bytes:
    """The frame holding ``body``; :class:`FrameTooLarge` over ``max_frame`` bytes."""
    if len(body) > max_frame:
        raise FrameTooLarge(f"frame of {len(body)} bytes is over the {max_frame}-byte limit")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Incremental frame reader (see the module docstring)."""

    def __init__(self, max_frame: int) -> None:
        if max_frame <= 0:
            raise ValueError(f"max_frame must be > 0, got {max_frame!r}")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add bytes; return every complete body. Raises :class:`FramingError`.

        ``data`` may be a view of the caller's receive buffer: what the reader keeps is
        copied. With nothing held from before, whole frames are cut from ``data`` itself and
        only a trailing partial frame is copied into the reader."""
        if self._error is not None:
            raise FramingError(f"the stream is unusable after an earlier error: {self._error}")
        held = self._buf
        if held:
            held += data
            buf: bytes | bytearray | memoryview = held
        else:
            buf = data
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while size - pos >= HEADER_SIZE:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length > self.max_frame:
                held.clear()
                self._error = FrameTooLarge(
                    f"frame of {length} bytes announced; the limit is {self.max_frame}",
                    tuple(out))
                raise self._error
            end = pos + HEADER_SIZE + length
            if size < end:
                break
            out.append(bytes(buf[pos + HEADER_SIZE:end]))
            pos = end
        if buf is held:
            del held[:pos]
        elif pos < size:
            held += buf[pos:]
        return out
