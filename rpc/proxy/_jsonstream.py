"""NUL framing of JSON texts on a byte stream (``--json-in`` / ``--json-out`` without WebSocket).

Each JSON text is followed by one NUL byte, in both directions. An empty segment (a NUL right
at the start of the stream or right after another NUL) ends the stream, as in the original:
`NulSplitter.feed` then reports ``ended`` and ignores whatever follows.

Bounded: a segment longer than ``max_message`` bytes (default `MAX_JSON_BYTES`, 1 MiB, the
WebSocket path's frame limit) raises `JsonFrameTooLarge` as soon as the buffer passes the bound,
so the buffer never holds more than ``max_message`` bytes plus one ``feed``'s data. After that
error the splitter is poisoned: every later ``feed`` raises too (the stream cannot be
resynchronised). Pure: no I/O.
"""

from __future__ import annotations

from rpc.proxy._json import MAX_JSON_BYTES

__all__ = ["JsonFrameTooLarge", "JsonStreamError", "NulSplitter", "nul_frame"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class JsonStreamError(ValueError):
    """The NUL-framed stream broke a rule; the stream cannot go on."""


class JsonFrameTooLarge(JsonStreamError):
    """A JSON text grew past the splitter's ``max_message`` without its NUL."""


def nul_frame(payload: bytes) -> bytes:
    """``payload`` framed for the stream (NUL appended). Raises ValueError if it holds a NUL
    or is empty (either would end the peer's stream early)."""
    if not payload or b"\0" in payload:
        raise ValueError("a NUL-framed JSON text must be non-empty and contain no NUL")
    return payload + b"\0"


class NulSplitter:
    """Incremental splitter: bytes in, complete JSON texts (without their NUL) out."""

    def __init__(self, max_message: int = MAX_JSON_BYTES) -> None:
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        self.max_message = max_message
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no NUL
        self._ended = False
        self._error: JsonStreamError | None = None

    @property
    def ended(self) -> bool:
        """True once an empty segment ended the stream."""
        return self._ended

    @property
    def buffered(self) -> int:
        """Bytes held waiting for their NUL."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Take ``data``; return the texts it completes, in order.

        Raises `JsonFrameTooLarge` when an unfinished text passes ``max_message`` bytes (and
        again on every later call). Data after the end of the stream is ignored.
        """
        if self._error is not None:
            raise self._error
        if self._ended:
            return []
        self._buffer += data
        out: list[bytes] = []
        start = 0
        while True:
            end = self._buffer.find(0, max(start, self._scanned))
            if end < 0:
                break
            if end == start:
                self._ended = True
                self._buffer.clear()
                self._scanned = 0
                return out
            if end - start > self.max_message:
                return self._fail(end - start)
            out.append(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if len(self._buffer) > self.max_message:
            return self._fail(len(self._buffer))
        return out

    def _fail(self, size: int) -> list[bytes]:
        self._buffer.clear()
        self._scanned = 0
        self._error = JsonFrameTooLarge(f"a JSON text of {size} bytes or more is larger than "
                                        f"the limit of {self.max_message} bytes")
        raise self._error
