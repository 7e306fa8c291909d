"""The byte stream to xenstored: a unix socket or the xenbus device, opened by pyxs.

pyxs opens the transport (`open_transport`: its `UnixSocketConnection` / `XenBusConnection`
find the default path: ``$XENSTORED_PATH``, ``$XENSTORED_RUNDIR/socket``,
``/var/run/xenstored/socket``, or ``/dev/xen/xenbus`` / ``/proc/xen/xenbus``); everything after
that is ours (`xen.xenstore._connection`).

A socket's `send_some` and `recv` never block (``MSG_DONTWAIT``: one system call each);
`recv_wait` is one blocking receive bounded by the socket's receive timeout (``SO_RCVTIMEO`` =
`WAIT_SLICE`), the cheapest way to wait for a reply (a ``poll()`` then a receive costs a third
more per request on a loaded 2-core machine). The device has no `recv_wait` (None): the
connection waits for it with ``poll()`` (never ``select()``, which fails above fd 1024).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable

import pyxs.connection
import pyxs.exceptions

from xen.xenstore._clientcore import XenstoreUnavailable

__all__ = ["WAIT_SLICE", "DeviceTransport", "Transport", "open_transport"]

_READ_CHUNK = 65536
_DONTWAIT = socket.MSG_DONTWAIT

WAIT_SLICE = 0.5
"""Longest single wait of `Transport.recv_wait` in seconds (the socket's ``SO_RCVTIMEO``)."""


class Transport:
    """A connected byte stream: a unix socket, or the xenbus device (subclass)."""

    recv_wait: Callable[[], bytes | None] | None
    """Wait (at most `WAIT_SLICE` seconds) for bytes and return them: b"" at end of stream,
    None if none came in time. None on a transport that cannot wait this way."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock = sock
        self.path = path
        # Blocking, but every call below but recv_wait passes MSG_DONTWAIT; recv_wait's wait
        # is bounded by the receive timeout.
        sock.setblocking(True)
        whole, fraction = divmod(WAIT_SLICE, 1.0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", int(whole), int(fraction * 1_000_000)))
        self.recv_wait = self._recv_wait

    def fileno(self) -> int:
        return self._sock.fileno()

    def send_some(self, data: bytes | memoryview) -> int:
        """Send what fits now; how many bytes went (0 if none could)."""
        try:
            return self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            return 0

    def recv(self) -> bytes | None:
        """What is available now; b"" at end of stream, None if nothing is (yet)."""
        try:
            return self._sock.recv(_READ_CHUNK, _DONTWAIT)
        except BlockingIOError:
            return None

    def _recv_wait(self) -> bytes | None:
        try:
            return self._sock.recv(_READ_CHUNK)
        except BlockingIOError:  # the receive timeout passed
            return None

    def shutdown(self) -> None:
        """Wake a blocked sender and make the stream unusable (the descriptor stays open)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


class DeviceTransport(Transport):
    """/dev/xen/xenbus: a character device read and written with os.read / os.write."""

    def __init__(self, fd: int, path: str) -> None:  # no socket: super().__init__ not used
        self._fd = fd
        self.path = path
        self.recv_wait = None

    def fileno(self) -> int:
        return self._fd

    def send_some(self, data: bytes | memoryview) -> int:
        return os.write(self._fd, data)  # a device write does not block in practice

    def recv(self) -> bytes | None:
        return os.read(self._fd, _READ_CHUNK)  # only after poll() said readable

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        os.close(self._fd)


def open_transport(path: str | None = None, *, xenbus: bool = False) -> Transport:
    """Connect with pyxs's connection classes; `XenstoreUnavailable` naming the path if not."""
    kind = pyxs.connection.XenBusConnection if xenbus else pyxs.connection.UnixSocketConnection
    conn = kind(path)
    try:
        conn.connect()
    except pyxs.exceptions.ConnectionError as exc:
        raise XenstoreUnavailable(f"cannot connect to xenstored at {conn.path}: {exc}") from None
    if xenbus:
        return DeviceTransport(conn.transport.fd, conn.path)
    return Transport(conn.transport.sock, conn.path)
