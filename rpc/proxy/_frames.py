"""The incremental message splitter: bytes in, complete parsed DBus messages out (pure).

:class:`MessageSplitter` is the sans-I/O reader of one direction of one connection:
``feed(data) -> list[WireMessage]`` returns every message completed by ``data``, in order,
each parsed and validated by :func:`~rpc.proxy._message.parse_message` (header only).

Headers are parsed with a per-splitter :class:`~rpc.proxy._header.HeaderCache`, so repeated
calls cost a lookup instead of a field walk.

Bounds and failures:

* the size a message announces is checked against ``limits.max_message_size`` (and its header
  against ``max_header_size``) as soon as its first 16 bytes arrive, before its body is
  buffered; so after ``feed`` returns the splitter holds less than one message of at most
  ``max_message_size`` bytes;
* any violation raises :class:`~rpc.proxy._limits.WireError`; the messages completed before
  it in the same ``feed`` are in the error's ``messages`` attribute (a tuple) so the caller
  may forward them first. A DBus stream cannot be resynchronised, so the splitter is then
  poisoned: every later ``feed`` raises ``WireError`` (``POISONED``) naming the first error.
  The caller closes that connection, and only that one.
"""

from __future__ import annotations

from rpc.proxy._header import HeaderCache
from rpc.proxy._limits import CLIENT_LIMITS, WireError, WireLimits, WireReason
from rpc.proxy._message import WireMessage, message_size, parse_sized

__all__ = ["MessageSplitter"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class MessageSplitter:
    """Incremental, bounded DBus message reader (see the module docstring)."""

    __slots__ = ("_buf", "_cache", "_error", "_need", "limits")

    def __init__(self, limits: WireLimits = CLIENT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._need = 0  # total size of the message at the head of _buf, once known
        self._error: WireError | None = None
        self._cache = HeaderCache()

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buf)

    @property
    def error(self) -> WireError | None:
        """The error that poisoned this splitter, if any."""
        return self._error

    def feed(self, data: bytes) -> list[WireMessage]:
        """Add ``data``; return every message it completes (see the module docstring)."""
        if self._error is not None:
            raise WireError(WireReason.POISONED, f"stream unusable after: {self._error}")
        if not self._buf:
            return self._feed_fresh(data)
        buf = self._buf
        buf += data
        out: list[WireMessage] = []
        limits = self.limits
        pos = 0
        try:
            while True:
                avail = len(buf) - pos
                if not self._need:
                    if avail < 16:
                        break
                    self._need = message_size(bytes(buf[pos:pos + 16]), limits)
                need = self._need
                if avail < need:
                    break
                out.append(parse_sized(bytes(buf[pos:pos + need]), limits, self._cache))
                pos += need
                self._need = 0
        except WireError as exc:
            self._error = exc
            self._buf = bytearray()
            exc.messages = tuple(out)
            raise
        if pos:
            del buf[:pos]
        return out

    def _feed_fresh(self, data: bytes) -> list[WireMessage]:
        """:meth:`feed` with nothing buffered: messages are cut from ``data`` itself (one whole
        message, the usual case, is used without a copy); only a partial tail is buffered."""
        out: list[WireMessage] = []
        limits = self.limits
        cache = self._cache
        pos = 0
        size = len(data)
        try:
            while size - pos >= 16:
                need = message_size(data[pos:pos + 16] if pos else data, limits)
                if size - pos < need:
                    self._need = need
                    break
                out.append(parse_sized(data if need == size else data[pos:pos + need],
                                       limits, cache))
                pos += need
        except WireError as exc:
            self._error = exc
            self._need = 0
            exc.messages = tuple(out)
            raise
        if pos < size:
            self._buf += data[pos:]
        return out

    def take_rest(self) -> bytes:
        """The bytes buffered for an incomplete message, emptying the splitter (at EOF, or to
        hand the stream to another reader)."""
        rest = bytes(self._buf)
        self._buf = bytearray()
        self._need = 0
        return rest
