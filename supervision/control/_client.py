"""A blocking client of the control socket (used by the shell and the tests).

``ControlClient(path).call(op, wait=None, **args)`` sends one request and waits (bounded by
``wait`` or the client's timeout) for its answer; ``stream(op, cancelled=None, **args)``
yields the streamed events and ends with the final answer. Only the calling thread touches
the socket: ``cancelled`` (a predicate, e.g. ``threading.Event().is_set`` or a flag a signal
handler sets) is polled every :data:`STREAM_POLL` seconds while the stream waits; once it is
true the client sends ``cancel`` itself and the server has ``grace`` seconds to end the
stream, else the stream raises ``ControlError`` kind ``timeout`` (close the client then: the
stream may still be running). Errors come back as :class:`ControlError` with the protocol's
``kind``. Only light modules are imported: the shell must start fast.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from supervision.control._proto import PROTOCOL_VERSION, FrameParser, frame

__all__ = ["STREAM_POLL", "ControlClient", "ControlError"]

STREAM_POLL = 0.1
"""Seconds between two looks at a stream's ``cancelled`` predicate while it waits."""


class ControlError(Exception):
    """An error answer (``kind``: bad-request, not-found, timeout, refused, failed) or a
    connection problem (``kind`` = ``connection``)."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


class ControlClient:
    """One connection to the control socket at ``path``."""

    def __init__(self, path: Path | str, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._parser = FrameParser()
        self._pending: deque[Any] = deque()
        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)
        self._timeout: float | None = timeout
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
            self._sock.settimeout(None)
            self._set_timeout(timeout)
        except OSError as exc:
            self._sock.close()
            raise ControlError(f"cannot connect to the control socket {self.path}: "
                               f"{exc.strerror or exc}", "connection") from None
        self.server = self.call("hello", version=PROTOCOL_VERSION)

    def _set_timeout(self, timeout: float | None) -> None:
        """Bound the socket's waits: its receive and send timeouts (``SO_RCVTIMEO``,
        ``SO_SNDTIMEO``) on a blocking socket, so that a receive is one system call."""
        micros = max(1, round(timeout * 1_000_000)) if timeout else 0  # 0: no bound (None)
        value = struct.pack("ll", *divmod(micros, 1_000_000))
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            self._sock.setsockopt(socket.SOL_SOCKET, option, value)
        self._timeout = timeout

    def _send(self, op: str, args: dict[str, Any]) -> int:
        rid = next(self._ids)
        try:
            self._sock.sendall(frame({"id": rid, "op": op, "args": args}))
        except OSError as exc:
            raise ControlError(f"control socket: {exc}", "connection") from None
        return rid

    def _next(self, timeout: float | None) -> Any:
        while not self._pending:
            if timeout != self._timeout:
                self._set_timeout(timeout)
            try:
                n = self._sock.recv_into(self._buf)
            except (TimeoutError, BlockingIOError):
                raise ControlError(f"no answer within {timeout:g} s", "timeout") from None
            except OSError as exc:
                raise ControlError(f"control socket: {exc}", "connection") from None
            if not n:
                raise ControlError("the supervisor closed the control socket", "connection")
            self._pending.extend(self._parser.feed(self._view[:n]))
        return self._pending.popleft()

    def call(self, op: str, *, wait: float | None = None, **args: Any) -> Any:
        """Send ``op`` with ``args`` and return its result (``ControlError`` on an error
        answer). ``wait``: how long this client waits (default: its timeout); an operation's
        own ``timeout`` argument goes in ``args``."""
        with self._lock:
            rid = self._send(op, args)
            while True:
                msg = self._next(wait or self.timeout)
                if msg.get("id") != rid or msg.get("more"):
                    continue
                if msg.get("ok"):
                    return msg.get("result")
                raise ControlError(str(msg.get("error")), str(msg.get("kind", "failed")))

    def stream(self, op: str, *, cancelled: Callable[[], bool] | None = None,
               grace: float = 2.0, **args: Any) -> Iterator[Any]:
        """Yield the events of a streamed operation until it ends (its final answer).

        Once ``cancelled()`` is true the stream is cancelled on the server, which must end it
        within ``grace`` seconds (else ``ControlError`` kind ``timeout``); the events it sends
        meanwhile are still yielded."""
        with self._lock:
            rid = self._send(op, args)
            deadline: float | None = None
            while True:
                if deadline is None and cancelled is not None and cancelled():
                    self._send("cancel", {"request": rid})
                    deadline = time.monotonic() + grace
                if deadline is not None and time.monotonic() > deadline:
                    raise ControlError(f"{op} did not end within {grace:g} s of its cancel",
                                       "timeout")
                try:
                    msg = self._next(STREAM_POLL)
                except ControlError as exc:
                    if exc.kind == "timeout":
                        continue
                    raise
                if msg.get("id") != rid:
                    continue
                if msg.get("more"):
                    yield msg.get("event")
                    continue
                if not msg.get("ok"):
                    raise ControlError(str(msg.get("error")), str(msg.get("kind")))
                return

    def close(self) -> None:
        """Close the connection."""
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
