"""The byte stream to xenstored: a unix socket or the xenbus device, opened by pyxs.

pyxs opens the transport (`open_transport`: its `UnixSocketConnection` / `XenBusConnection`
find the default path: ``$XENSTORED_PATH``, ``$XENSTORED_RUNDIR/socket``,
``/var/run/xenstored/socket``, or ``/dev/xen/xenbus`` / ``/proc/xen/xenbus``); everything after
that is ours (`xen.xenstore._connection`). A socket is non-blocking: a send or a receive is one
system call, and the connection waits with ``poll()`` (never ``select()``, which fails above
fd 1024).
"""

from __future__ import annotations

import contextlib
import os
import socket

import pyxs.connection
import pyxs.exceptions

from xen.xenstore._clientcore import XenstoreUnavailable

__all__ = ["DeviceTransport", "Transport", "open_transport"]

_READ_CHUNK = 65536


class Transport:
    """A connected byte stream: a unix socket, or the xenbus device (subclass)."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock = sock
        self.path = path
        # Non-blocking: one system call per send or receive; the connection waits with poll().
        sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def send_some(self, data: bytes | memoryview) -> int:
        """Send what fits now; how many bytes went (0 if none could)."""
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def recv(self) -> bytes | None:
        """What is available now; b"" at end of stream, None if nothing is (yet)."""
        try:
            return self._sock.recv(_READ_CHUNK)
        except BlockingIOError:
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
