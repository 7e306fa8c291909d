"""One live connection to xenstored: the transport, who reads it, and req_id matching.

pyxs opens the transport (`xen.xenstore._transport.open_transport`). Everything after that is
ours, on our codec (`Packet`, `PacketParser`), because pyxs's router is where its faults are:
it waits in ``select()`` (which fails above fd 1024), its reply wait has no timeout, and a
dropped connection leaves every waiter blocked forever.

`Connection` guarantees (docs/xenstore-client.md, **Threads**, says how):
- Thread-safe: any number of threads call `request` at once. Each request gets a req_id unique
  among those in flight; the reply is matched by req_id; a packet is written whole under a lock.
- Every request is bounded by its deadline: waiting for the send lock, the send and the reply.
  Past it, `XenstoreTimeout`; the slot is forgotten and a late reply is logged and dropped.
  A send that times out half-way corrupts the stream, so it drops the connection.
- One thread at a time holds the *read role*: it reads the transport, feeds the bounded
  `PacketParser`, completes the slots whose replies it finds and hands WATCH_EVENTs to
  ``on_event`` (which must not block). A caller finding the role free reads its own reply (one
  blocking receive on a socket, bounded by `WAIT_SLICE`; ``poll()`` on the device); one finding
  it taken waits for whoever reads. The reader thread (``epoll``) reads between requests when
  replies for waiting callers or watch events (after a WATCH) may come; else it waits only for
  a socket's hang-up, and callers change nothing in its set.
- When the peer closes, a read or write fails or the stream is malformed, the connection dies
  once: every request in flight fails at once with `ConnectionLost`, later requests fail at
  once, and ``on_lost(conn, error)`` is called from the reader thread. `close` does the same
  with `ClientClosed` and does not call ``on_lost``; it joins the reader and closes the
  descriptors (only after the reader and every sender are done with them).
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence

from actors import shielded
from xen.xenstore._clientcore import (
    ClientClosed,
    ConnectionLost,
    ReplySlot,
    XenstoreConnectionError,
    XenstoreTimeout,
    connection_failed,
    millis,
    reply_of,
    too_large,
    unanswered,
    writer_busy,
)
from xen.xenstore._reading import ReplyReader
from xen.xenstore._requests import Request
from xen.xenstore._transport import DeviceTransport, Transport
from xen.xenstore._wire import (
    HEADER,
    PAYLOAD_MAX,
    Op,
    Packet,
    PacketParser,
    encode_packet,
)

__all__ = ["PIPELINE", "Connection"]

# Requests one caller sends before it waits for their replies (`Connection.request_many`):
# a PV start's create transaction (46) in one round trip.
PIPELINE = 64

_U32 = 0xFFFFFFFF
_pack_header = HEADER.pack
_WATCH = int(Op.WATCH)  # a plain int: compared per request
_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


class Connection(ReplyReader):
    """See the module docstring."""

    def __init__(self, transport: Transport, *, on_event: Callable[[str, str], None],
                 on_lost: Callable[[Connection, Exception], None], name: str = "xenstore"
                 ) -> None:
        self._transport = transport
        self._fd = transport.fileno()
        self._send_some = transport.send_some
        self._recv = transport.recv
        self._recv_wait = transport.recv_wait
        self._on_event = on_event
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._role_free = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        # Linux's xenbus device keeps a pointer into one shared write buffer until it sends a
        # request: a second request written before the first is answered corrupts it
        # (xenstored answers EINVAL; seen on Linux 6.1 in the xenlab). One at a time there.
        self._one_at_a_time = (threading.Lock() if isinstance(transport, DeviceTransport)
                               else None)
        self._pending: dict[int, ReplySlot] = {}
        self._next_id = 1
        # Counters: requests sent, and round trips (a caller waiting for a batch of replies).
        self.requests = self.round_trips = 0
        self._dead: Exception | None = None
        self._closing = threading.Event()
        self._closing_flag = False  # _closing.is_set(), read without a call on the hot path
        # Under _lock: the read role (see the module docstring) and the fd's events in the
        # reader's epoll: _quiet (a hang-up) or _listen (bytes too: replies or events may come).
        self._reading = False
        self._quiet = 0 if isinstance(transport, DeviceTransport) else select.EPOLLRDHUP
        self._listen = select.EPOLLIN | self._quiet
        self._fd_events = self._quiet
        self._watching = False  # a WATCH was sent: events may come at any time
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self._epoll = select.epoll()
            self._epoll.register(transport.fileno(), self._fd_events)
            self._epoll.register(self._wake_r, select.EPOLLIN)
        except OSError:
            if hasattr(self, "_epoll"):
                self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise
        self._role_poll = select.poll()  # used by the role holder only
        self._role_poll.register(transport.fileno(), _IN)
        self._role_poll.register(self._wake_r, select.POLLIN)
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

    # ------------------------------------------------------------------ requests

    @shielded  # an actor kill would leave the send lock or the read role taken
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

    @shielded  # an actor kill would leave the send lock or the read role taken
    def request_many(self, requests: Sequence[Request], tx_id: int, deadline: float
                     ) -> list[Packet]:
        """Send ``requests`` one after the other without waiting in between (pipelined, at
        most `PIPELINE` at a time) and wait for every reply until ``deadline``; the replies in
        order. xenstored handles a connection's requests in order, so the effect is that of
        sending each after the previous reply, except that a failed one does not stop the
        next. On the xenbus device they go one at a time (it cannot take two at once)."""
        if self._one_at_a_time is not None or len(requests) == 1:
            return [self.request(request, tx_id, deadline) for request in requests]
        replies: list[Packet] = []
        for first in range(0, len(requests), PIPELINE):
            replies += self._exchange(requests[first:first + PIPELINE], tx_id, deadline)
        return replies

    def _request(self, request: Request, tx_id: int, deadline: float) -> Packet:
        """One request (the hot path; `_exchange` does the same for a batch)."""
        op = request.OP
        payload = request.payload()
        size = len(payload)
        if size > PAYLOAD_MAX:
            raise too_large(op.name, size)
        slot = ReplySlot()
        send_lock = self._send_lock
        # The send lock before the read role: a role holder never waits for the send lock.
        if not send_lock.acquire(False) and not send_lock.acquire(
                timeout=max(0.0, deadline - time.monotonic())):
            raise writer_busy()
        role, req_id = False, 0
        try:
            try:
                with self._lock:
                    req_id, role = self._register_one(slot, op == _WATCH)
                try:
                    data = _pack_header(op, req_id, tx_id, size) + payload
                except struct.error:
                    data = encode_packet(op, req_id, tx_id, payload)  # names the field
                self._send(data, deadline, reading=role)
            finally:
                send_lock.release()
            if role:
                if self._read_own_reply(slot, req_id, deadline):
                    role = False  # handed back with the reply
                elif not self._lead(slot, deadline):
                    raise unanswered(op.name, req_id)
            elif not self._follow(slot, deadline):
                raise unanswered(op.name, req_id)
        finally:
            if role:
                self._release_role()
            if req_id and not slot.done:
                with self._lock:
                    self._pending.pop(req_id, None)
        return reply_of(slot)

    def _exchange(self, requests: Sequence[Request], tx_id: int, deadline: float
                  ) -> list[Packet]:
        """A batch of requests sent at once (see `request_many`)."""
        payloads = [request.payload() for request in requests]
        for request, payload in zip(requests, payloads, strict=True):
            if len(payload) > PAYLOAD_MAX:
                raise too_large(request.OP.name, len(payload))
        slots = [ReplySlot() for _ in requests]
        if not self._send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise writer_busy()
        lead = False
        ids: list[int] = []
        try:
            try:
                with self._lock:
                    ids, lead = self._register(
                        slots, any(request.OP == _WATCH for request in requests))
                data = b"".join(encode_packet(request.OP, req_id, tx_id, payload)
                                for request, req_id, payload in zip(requests, ids, payloads,
                                                                    strict=True))
                self._send(data, deadline, reading=lead)
            finally:
                self._send_lock.release()
            for request, req_id, slot in zip(requests, ids, slots, strict=True):
                if not (self._lead(slot, deadline) if lead else self._follow(slot, deadline)):
                    raise unanswered(request.OP.name, req_id)
        finally:
            if lead:
                self._release_role()
            if not all(slot.done for slot in slots):
                with self._lock:
                    for req_id in ids:
                        self._pending.pop(req_id, None)
        return [reply_of(slot) for slot in slots]

    def _register(self, slots: Sequence[ReplySlot], watch: bool) -> tuple[list[int], bool]:
        """Under the lock: a req_id for each slot, and the read role if it is free (True; else
        each slot gets an event to wait on). Taken before sending, or the reader thread may
        read the reply first. ``watch``: a WATCH is among them (events may come from now on;
        the reader thread listens for them once the role is handed back)."""
        if self._dead is not None:
            raise self._dead_error()
        self._watching = self._watching or watch
        ids = []
        for slot in slots:
            ids.append(self._allocate_id())
            self._pending[ids[-1]] = slot
        self.round_trips += 1
        self.requests += len(slots)
        lead = self._take_role()
        if not lead:
            for slot in slots:
                slot.event = threading.Event()
        return ids, lead

    def _register_one(self, slot: ReplySlot, watch: bool) -> tuple[int, bool]:
        """`_register` for one request (the hot path's, without the lists)."""
        if self._dead is not None:
            raise self._dead_error()
        if watch:
            self._watching = True
        req_id = self._allocate_id()
        self._pending[req_id] = slot
        self.round_trips += 1
        self.requests += 1
        lead = self._take_role()
        if not lead:
            slot.event = threading.Event()
        return req_id, lead

    def _allocate_id(self) -> int:
        while True:
            req_id = self._next_id
            self._next_id = self._next_id + 1 if self._next_id < _U32 else 1
            if req_id not in self._pending:
                return req_id

    def _send(self, data: bytes, deadline: float, *, reading: bool) -> None:
        """With the send lock: send all of ``data`` by ``deadline``. A role holder (``reading``)
        reads what comes while it waits to write (xenstored may wait for us to read)."""
        try:
            sent = self._send_some(data)  # all of it, but for a full socket
            if sent == len(data):
                return
            view = memoryview(data)[sent:]
            while True:
                view = view[self._send_some(view) :]
                if not view:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Part of a packet may be out: the stream can no longer be trusted.
                    self._die(ConnectionLost("send to xenstored timed out; connection dropped"))
                    raise XenstoreTimeout("timed out sending to xenstored")
                self._wait_writable(millis(remaining), reading=reading)
                if self._dead is not None:
                    raise self._dead_error()
        except OSError as exc:
            self._die(ConnectionLost(f"send to xenstored at {self.path} failed: {exc}"))
            raise self._dead_error() from None

    def _wait_writable(self, millis: int, *, reading: bool) -> None:
        fd = self._transport.fileno()
        waiter = select.poll()
        waiter.register(fd, select.POLLOUT | (_IN if reading else 0))
        waiter.register(self._wake_r, select.POLLIN)
        for f, events in waiter.poll(millis):
            if f == fd and reading and events & _IN and self._dead is None:
                try:
                    self._read_once()
                except Exception as exc:  # a read error, a malformed stream: it is over
                    self._die(connection_failed(self.path, exc))

    # ------------------------------------------------------------------ closing

    @shielded  # an actor kill would leave the send lock or the read role taken
    def close(self, timeout: float = 2.0) -> None:
        """Fail what is in flight (`ClientClosed`), stop the reader, close the descriptors.
        Idempotent; safe from any thread (the reader thread itself is not joined)."""
        self._closing_flag = True
        self._closing.set()
        self._die(ClientClosed("the client was closed"))
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise XenstoreConnectionError(f"xenstore reader did not stop within {timeout} s")
        with self._lock:
            if not self._role_free.wait_for(lambda: not self._reading, timeout):
                raise XenstoreConnectionError(
                    f"a xenstore caller did not stop reading within {timeout} s")
        if not self._send_lock.acquire(timeout=timeout):
            raise XenstoreConnectionError(f"a xenstore sender did not finish within {timeout} s")
        try:
            if self._wake_r >= 0:
                self._transport.close()
                self._epoll.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
        finally:
            self._send_lock.release()
