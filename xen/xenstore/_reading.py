"""Who reads a xenstore connection: the read role, the reader thread, and what they do with
what they read (`Connection`'s base; `xen.xenstore._connection` says what is guaranteed).

One thread at a time holds the read role (``_reading``, under the lock). A caller that finds
it free when it registers its request reads until its own reply is there (`_lead`; first
`_read_own_reply`, the usual case of one whole reply in one receive, done in one step); a caller
that finds it taken waits for its slot's event (`_follow`). The reader thread (`_read_loop`,
on ``epoll``) takes the role between requests when replies for waiting callers or watch
events may come (the fd's events in its set say which, `_fd_interest`). Whoever holds the role
completes the slots of the replies it parses and hands WATCH_EVENTs to ``on_event``
(`_dispatch`); a read error or a malformed stream kills the connection (`_die`), which fails
every slot in flight at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable

from xen.xenstore._clientcore import (
    ClientClosed,
    ConnectionLost,
    ReplySlot,
    connection_failed,
)
from xen.xenstore._transport import WAIT_SLICE, Transport
from xen.xenstore._wire import Op, Packet, PacketParser, split_strings

__all__ = ["ReplyReader"]

logger = logging.getLogger(__name__)

_HELD_PAUSE = 0.001  # the reader's pause on a hang-up while a caller holds the read role
_WATCH_EVENT = int(Op.WATCH_EVENT)  # a plain int: compared per packet


class ReplyReader:
    """The reading half of `xen.xenstore._connection.Connection` (its base: the connection
    sets up every attribute below)."""

    _transport: Transport
    _fd: int
    _recv: Callable[[], bytes | None]
    _recv_wait: Callable[[], bytes | None] | None
    _on_event: Callable[[str, str], None]
    _on_lost: Callable[..., None]
    _lock: threading.Lock
    _role_free: threading.Condition
    _pending: dict[int, ReplySlot]
    _dead: Exception | None
    _closing: threading.Event
    _closing_flag: bool
    _reading: bool
    _quiet: int
    _listen: int
    _fd_events: int
    _watching: bool
    _wake_w: int
    _epoll: select.epoll
    _role_poll: select.poll
    _parser: PacketParser

    @property
    def path(self) -> str:
        return self._transport.path

    def _read_own_reply(self, slot: ReplySlot, req_id: int, deadline: float) -> bool:
        """As the role holder, just after sending request ``req_id``: one blocking receive
        (a socket's). If it brought that reply alone (the usual case), complete ``slot`` and
        hand the role back in one step (True). Else (False) whatever came is dispatched as
        `_lead` does, and the caller goes on with `_lead` (``slot`` may be done already)."""
        wait = self._recv_wait
        if wait is None or deadline - time.monotonic() <= WAIT_SLICE:
            return False
        try:
            data = wait()
            if data is None or self._dead is not None:
                return False  # nothing yet (`_lead` waits on), or the connection is over
            if not data:
                self._consume(data)  # the peer closed: the connection dies
                return False
            packets = self._parser.feed(data)
        except Exception as exc:  # a read error, a malformed stream: it is over
            self._die(connection_failed(self.path, exc))
            return False
        if len(packets) == 1 and packets[0].req_id == req_id and packets[0].op != _WATCH_EVENT:
            with self._lock:
                if self._pending.pop(req_id, None) is slot:  # else the connection died
                    slot.packet = packets[0]
                    slot.done = True
                self._hand_back_role()
            return True
        for packet in packets:
            self._dispatch(packet)
        return False

    def _take_role(self) -> bool:
        """Under the lock: take the read role for a caller if it is free (True)."""
        if self._reading:
            return False
        self._reading = True
        self._fd_interest(self._quiet)
        return True

    def _fd_interest(self, events: int) -> None:
        """Under the lock: the fd's events in the reader thread's epoll."""
        if events != self._fd_events and self._dead is None:
            self._epoll.modify(self._fd, events)
            self._fd_events = events

    def _lead(self, slot: ReplySlot, deadline: float) -> bool:
        """As the role holder: read until ``slot`` is done (True) or the deadline passes. A
        socket's blocking receive ends when `_die` shuts it down; ``poll()`` watches the pipe."""
        poll = self._role_poll.poll
        wait = self._recv_wait
        monotonic = time.monotonic
        while not slot.done:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return False
            if wait is not None and remaining > WAIT_SLICE:
                try:
                    data = wait()
                    if self._dead is not None:
                        return slot.done
                    if data is not None:
                        self._consume(data)
                except Exception as exc:  # a read error, a malformed stream: it is over
                    self._die(connection_failed(self.path, exc))
                continue
            ready = poll(int(remaining * 1000) + 1)
            if self._dead is not None:
                return slot.done  # done: every slot fails when the connection dies
            if ready:
                try:
                    self._read_once()
                except Exception as exc:  # a read error, a malformed stream: it is over
                    self._die(connection_failed(self.path, exc))
        return True

    @staticmethod
    def _follow(slot: ReplySlot, deadline: float) -> bool:
        """Wait for whoever reads to complete ``slot``."""
        assert slot.event is not None
        return slot.event.wait(max(0.0, deadline - time.monotonic()))

    def _read_once(self) -> None:
        """As the role holder, when the transport is readable: read and dispatch what is there."""
        data = self._recv()
        if data is not None:  # None: someone else took it before we held the role
            self._consume(data)

    def _consume(self, data: bytes) -> None:
        """As the role holder: dispatch the packets in ``data`` (b"": the peer closed)."""
        if not data:
            self._die(ConnectionLost(f"xenstored at {self.path} closed the connection"))
            return
        for packet in self._parser.feed(data):
            self._dispatch(packet)

    def _release_role(self) -> None:
        with self._lock:
            self._hand_back_role()

    def _hand_back_role(self) -> None:
        """Under the lock: the read role is free again."""
        self._reading = False
        self._fd_interest(self._listen if self._watching or self._pending else self._quiet)
        if self._closing_flag:
            self._role_free.notify_all()  # close() waits for the role to be free

    def _dead_error(self) -> Exception:
        dead = self._dead
        if isinstance(dead, ClientClosed):
            return ClientClosed(str(dead))
        return ConnectionLost(str(dead))

    def _read_loop(self) -> None:
        reason: Exception = ConnectionLost("reader stopped")
        fd = self._transport.fileno()
        try:
            while True:
                ready = self._epoll.poll(1.0)
                if self._closing.is_set() or self._dead is not None:
                    return
                if not ready:
                    continue
                with self._lock:
                    held = self._reading
                    self._reading = True
                if held:  # a caller reads (a hang-up it sees too): do not spin meanwhile
                    time.sleep(_HELD_PAUSE)
                    continue
                try:
                    # Check again: a caller may have read the bytes before we held the role.
                    if any(f == fd for f, _ in self._role_poll.poll(0)):
                        self._read_once()
                finally:
                    self._release_role()
                if self._dead is not None:
                    return
        except Exception as exc:  # a read error or a malformed stream: the connection is over
            reason = connection_failed(self.path, exc)
        finally:
            self._die(ClientClosed("the client was closed") if self._closing.is_set() else reason)
            # The reader reports every death but a close, whoever caused it (a failed send or a
            # caller reading its reply too).
            dead = self._dead
            if not self._closing.is_set() and dead is not None:
                logger.warning("xenstore connection lost: %s", dead)
                try:
                    self._on_lost(self, dead)
                except Exception:
                    logger.exception("xenstore on_lost callback failed")

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == _WATCH_EVENT:
            parts = split_strings(packet.payload)
            if len(parts) < 2:
                logger.warning("malformed WATCH_EVENT ignored: %r", packet.payload[:80])
                return
            path = parts[0].decode("utf-8", "surrogateescape")
            self._on_event(path, parts[1].decode("utf-8", "surrogateescape"))
            return
        with self._lock:
            slot = self._pending.pop(packet.req_id, None)
            if slot is not None:
                slot.packet = packet
                slot.done = True
                event = slot.event
        if slot is None:
            logger.info("dropped a reply to req_id %d (op %d): nobody waits for it (timed out?)",
                        packet.req_id, packet.op)
        elif event is not None:
            event.set()

    def _die(self, reason: Exception) -> bool:
        """Fail everything in flight with ``reason``; True the first time only."""
        with self._lock:
            if self._dead is not None:
                return False
            self._dead = reason
            pending, self._pending = self._pending, {}
            events = []
            for slot in pending.values():
                slot.error = self._dead_error()
                slot.done = True
                if slot.event is not None:
                    events.append(slot.event)
        self._transport.shutdown()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        for event in events:
            event.set()
        return True
