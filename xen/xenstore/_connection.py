"""One live connection to xenstored: the transport, a reader thread and req_id matching.

pyxs opens the transport (`open_transport`: its `UnixSocketConnection` / `XenBusConnection`
find the default path: ``$XENSTORED_PATH``, ``$XENSTORED_RUNDIR/socket``,
``/var/run/xenstored/socket``, or ``/dev/xen/xenbus`` / ``/proc/xen/xenbus``). Everything after
that is ours, on our codec (`Packet`, `PacketParser`), because pyxs's router is where its
faults are: it waits in ``select()`` (which fails above fd 1024), its reply wait has no timeout,
and a dropped connection leaves every waiter blocked forever.

`Connection` guarantees:
- Thread-safe: any number of threads call `request` at once. Each request gets a req_id unique
  among those in flight; the reply is matched by req_id; a packet is written whole under a lock.
- Every request is bounded by its deadline: waiting for the send lock, the send and the reply.
  Past it, `XenstoreTimeout`; the slot is forgotten and a late reply is logged and dropped.
  A send that times out half-way corrupts the stream, so it drops the connection.
- One reader thread waits with ``poll()`` (no descriptor limit) on the transport and a wake
  pipe, feeds the bounded `PacketParser`, completes waiting requests and hands WATCH_EVENTs to
  ``on_event`` (which must not block).
- When the peer closes, a read or write fails or the stream is malformed, the connection dies
  once: every request in flight fails at once with `ConnectionLost`, later requests fail at
  once, and ``on_lost(conn, error)`` is called from the reader thread. `close` does the same
  with `ClientClosed` and does not call ``on_lost``; it joins the reader and closes the
  descriptors (only after the reader and every sender are done with them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

import pyxs.connection
import pyxs.exceptions

from xen.xenstore._clientcore import (
    ClientClosed,
    ConnectionLost,
    XenstoreConnectionError,
    XenstoreTimeout,
    XenstoreUnavailable,
)
from xen.xenstore._requests import Request
from xen.xenstore._wire import (
    PAYLOAD_MAX,
    Op,
    Packet,
    PacketParser,
    PacketTooLarge,
    split_strings,
)

__all__ = ["Connection", "Transport", "open_transport"]

logger = logging.getLogger(__name__)

_READ_CHUNK = 65536
_U32 = 0xFFFFFFFF


class Transport:
    """A connected byte stream: a unix socket, or the xenbus device (subclass)."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock = sock
        self.path = path
        # Timeout mode: sendall waits with poll(), never select(), and gives up at the timeout.
        sock.settimeout(5.0)

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, data: bytes, timeout: float) -> None:
        self._sock.settimeout(max(timeout, 0.001))
        self._sock.sendall(data)

    def recv(self) -> bytes:
        """What is available now (called after poll() said readable); b"" at end of stream."""
        return self._sock.recv(_READ_CHUNK)

    def shutdown(self) -> None:
        """Wake a blocked sender and make the stream unusable (the descriptor stays open)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


class _DeviceTransport(Transport):
    """/dev/xen/xenbus: a character device read and written with os.read / os.write."""

    def __init__(self, fd: int, path: str) -> None:  # no socket: super().__init__ not used
        self._fd = fd
        self.path = path

    def fileno(self) -> int:
        return self._fd

    def send(self, data: bytes, timeout: float) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def recv(self) -> bytes:
        return os.read(self._fd, _READ_CHUNK)

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
        return _DeviceTransport(conn.transport.fd, conn.path)
    return Transport(conn.transport.sock, conn.path)


class _Slot:
    """Where the reader puts the reply to one request."""

    __slots__ = ("done", "error", "packet")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.packet: Packet | None = None
        self.error: Exception | None = None


class Connection:
    """See the module docstring."""

    def __init__(
        self,
        transport: Transport,
        *,
        on_event: Callable[[str, str], None],
        on_lost: Callable[[Connection, Exception], None],
        name: str = "xenstore",
    ) -> None:
        self._transport = transport
        self._on_event = on_event
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        # Linux's xenbus device keeps a pointer into one shared write buffer until it sends a
        # request: a second request written before the first is answered corrupts it
        # (xenstored answers EINVAL; seen on Linux 6.1 in the xenlab). One at a time there.
        self._one_at_a_time = (threading.Lock() if isinstance(transport, _DeviceTransport)
                               else None)
        self._pending: dict[int, _Slot] = {}
        self._next_id = 1
        self._dead: Exception | None = None
        self._closing = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._parser = PacketParser()
        self._thread = threading.Thread(
            target=self._read_loop, name=f"{name}-reader-fd{transport.fileno()}", daemon=True
        )

    def __repr__(self) -> str:
        state = "alive" if self._dead is None else f"dead ({self._dead})"
        return f"Connection({self._transport.path!r}, fd {self.fileno()}, {state})"

    def start(self) -> Connection:
        self._thread.start()
        return self

    def fileno(self) -> int:
        return self._transport.fileno()

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def path(self) -> str:
        return self._transport.path

    # ------------------------------------------------------------------ requests

    def request(self, request: Request, tx_id: int, deadline: float) -> Packet:
        """Send ``request`` and wait for its reply until ``deadline`` (time.monotonic)."""
        serial = self._one_at_a_time
        if serial is None:
            return self._request(request, tx_id, deadline)
        if not serial.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise XenstoreTimeout(f"{request.OP.name}: the xenbus device stayed busy")
        try:
            return self._request(request, tx_id, deadline)
        finally:
            serial.release()

    def _request(self, request: Request, tx_id: int, deadline: float) -> Packet:
        payload = request.payload()
        if len(payload) > PAYLOAD_MAX:
            raise PacketTooLarge(
                f"{request.OP.name} payload of {len(payload)} bytes exceeds the"
                f" {PAYLOAD_MAX}-byte protocol limit"
            )
        slot = _Slot()
        with self._lock:
            if self._dead is not None:
                raise self._dead_error()
            req_id = self._allocate_id()
            self._pending[req_id] = slot
        try:
            self._send(Packet(int(request.OP), req_id, tx_id, payload).encode(), deadline)
            if not slot.done.wait(max(0.0, deadline - time.monotonic())):
                raise XenstoreTimeout(
                    f"xenstored did not answer {request.OP.name} (req_id {req_id}) in time;"
                    " it may still be applied"
                )
        finally:
            with self._lock:
                self._pending.pop(req_id, None)
        if slot.error is not None:
            raise slot.error
        assert slot.packet is not None
        return slot.packet

    def _allocate_id(self) -> int:
        while True:
            req_id = self._next_id
            self._next_id = self._next_id + 1 if self._next_id < _U32 else 1
            if req_id not in self._pending:
                return req_id

    def _send(self, data: bytes, deadline: float) -> None:
        if not self._send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise XenstoreTimeout("timed out waiting to send to xenstored (writer busy)")
        try:
            if self._dead is not None:
                raise self._dead_error()
            try:
                self._transport.send(data, deadline - time.monotonic())
            except TimeoutError:
                # Part of a packet may be out: the stream can no longer be trusted.
                self._die(ConnectionLost("send to xenstored timed out; connection dropped"))
                raise XenstoreTimeout("timed out sending to xenstored") from None
            except OSError as exc:
                self._die(ConnectionLost(f"send to xenstored at {self.path} failed: {exc}"))
                raise self._dead_error() from None
        finally:
            self._send_lock.release()

    def _dead_error(self) -> Exception:
        dead = self._dead
        if isinstance(dead, ClientClosed):
            return ClientClosed(str(dead))
        return ConnectionLost(str(dead))

    # ------------------------------------------------------------------ reader

    def _read_loop(self) -> None:
        reason: Exception = ConnectionLost("reader stopped")
        selector = selectors.PollSelector()
        try:
            selector.register(self._transport.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = selector.select(timeout=1.0)
                if self._closing.is_set() or self._dead is not None:
                    return
                if not ready:
                    continue
                data = self._transport.recv()
                if not data:
                    reason = ConnectionLost(f"xenstored at {self.path} closed the connection")
                    return
                for packet in self._parser.feed(data):
                    self._dispatch(packet)
        except Exception as exc:  # a read error or a malformed stream: the connection is over
            reason = ConnectionLost(f"connection to xenstored at {self.path} failed: {exc!r}")
        finally:
            selector.close()
            self._die(ClientClosed("the client was closed") if self._closing.is_set() else reason)
            # The reader reports every death but a close, whoever caused it (a failed send too).
            dead = self._dead
            if not self._closing.is_set() and dead is not None:
                logger.warning("xenstore connection lost: %s", dead)
                try:
                    self._on_lost(self, dead)
                except Exception:
                    logger.exception("xenstore on_lost callback failed")

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == Op.WATCH_EVENT:
            parts = split_strings(packet.payload)
            if len(parts) < 2:
                logger.warning("malformed WATCH_EVENT ignored: %r", packet.payload[:80])
                return
            path = parts[0].decode("utf-8", "surrogateescape")
            self._on_event(path, parts[1].decode("utf-8", "surrogateescape"))
            return
        with self._lock:
            slot = self._pending.pop(packet.req_id, None)
        if slot is None:
            logger.info("dropped a reply to req_id %d (op %d): nobody waits for it (timed out?)",
                        packet.req_id, packet.op)
            return
        slot.packet = packet
        slot.done.set()

    def _die(self, reason: Exception) -> bool:
        """Fail everything in flight with ``reason``; True the first time only."""
        with self._lock:
            if self._dead is not None:
                return False
            self._dead = reason
            pending, self._pending = self._pending, {}
        self._transport.shutdown()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        for slot in pending.values():
            slot.error = self._dead_error()
            slot.done.set()
        return True

    # ------------------------------------------------------------------ closing

    def close(self, timeout: float = 2.0) -> None:
        """Fail what is in flight (`ClientClosed`), stop the reader, close the descriptors.
        Idempotent; safe from any thread (the reader thread itself is not joined)."""
        self._closing.set()
        self._die(ClientClosed("the client was closed"))
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise XenstoreConnectionError(f"xenstore reader did not stop within {timeout} s")
        if not self._send_lock.acquire(timeout=timeout):
            raise XenstoreConnectionError(f"a xenstore sender did not finish within {timeout} s")
        try:
            if self._wake_r >= 0:
                self._transport.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
        finally:
            self._send_lock.release()
