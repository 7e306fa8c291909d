"""Per-client call bookkeeping: serial remapping, pending calls, reply routing (pure).

One :class:`CallTable` belongs to one client connection and the bus connection the proxy
opened for it (one upstream per client, as the original proxy does). Guarantees:

* **Remapped serials.** Every message a client sends reaches the bus with a serial the table
  chooses (1, 2, ... below :data:`RESERVED_SERIALS`, skipping serials still pending), whatever
  serial the client chose: clients may reuse serials, send 0-free JSON ids in any order, or
  collide with the proxy's own calls (:meth:`CallTable.own_call`) on the same connection; the
  bus never sees two pending calls with one serial.
* **Replies once, to the caller.** A method return or error from the bus is delivered only if
  it answers a call still pending on this table, and at most once (the entry is removed); its
  reply serial is mapped back to the client's own serial. A call to a unique name (``:x.y``)
  or to the bus driver must be answered by that sender; a reply from anyone else is dropped
  and the call stays pending. A reply to one of the proxy's own calls comes back as
  :class:`OwnReply`, never to the client.
* **No forged replies from a client.** A return or error a client sends is forwarded only if
  it answers a call the bus delivered to this client (same caller, same serial) that expects a
  reply and was not answered yet.
* **Bounds.** At most ``max_pending`` calls from the client await replies; one more is refused
  with a synthetic ``org.freedesktop.DBus.Error.LimitsExceeded`` error back to the client. At
  most ``max_inbound`` calls to the client await its answer; more are dropped (the caller's
  bus timeout answers them).
* :meth:`CallTable.close` forgets everything when the client goes.

Decisions are values: :class:`Forward` (send ``message`` on), :class:`Refuse` (drop it; send
``error`` back to the client when not ``None``), :class:`OwnReply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from rpc.proxy._message import (
    FLAG_NO_REPLY_EXPECTED,
    MessageType,
    WireMessage,
    error_reply,
    rewrite,
    with_reply_serial,
    with_serial,
)

__all__ = ["RESERVED_SERIALS", "CallLimits", "CallTable", "Forward", "OwnReply", "Refuse"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

RESERVED_SERIALS = (1 << 32) - 65536
"""Serials from here up are for the proxy's synthetic messages to the client."""
BUS_NAME = "org.freedesktop.DBus"
_CALL = MessageType.METHOD_CALL
_SIGNAL = MessageType.SIGNAL
_new = tuple.__new__  # a NamedTuple built without its Python-level __new__ (per message)


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Bounds of one :class:`CallTable` (128 is the system bus's own per-connection
    ``max_replies_per_connection``)."""

    max_pending: int = 128
    max_inbound: int = 128

    def __post_init__(self) -> None:
        if self.max_pending <= 0 or self.max_inbound <= 0:
            raise ValueError(f"call limits must be > 0: {self!r}")


class Forward(NamedTuple):
    """Send ``message`` on (to the bus from :meth:`~CallTable.from_client`, to the client from
    :meth:`~CallTable.from_bus`). Decisions are NamedTuples: one is built per message."""

    message: WireMessage


class Refuse(NamedTuple):
    """Drop the message; send ``error`` (bytes) back to the client unless it is ``None``."""

    reason: str
    error: bytes | None = None


class OwnReply(NamedTuple):
    """The bus answered a call the proxy made itself (:meth:`CallTable.own_call`)."""

    token: Any
    message: WireMessage


class _Pending(NamedTuple):
    """One call awaiting its reply (a tuple: built once per call on the hot path)."""

    client_serial: int  # 0 for the proxy's own calls
    destination: str | None
    token: Any = None
    own: bool = False


Decision = Forward | Refuse
BusDecision = Forward | Refuse | OwnReply


class CallTable:
    """Serial remapping and reply routing for one client (see the module docstring)."""

    def __init__(self, limits: CallLimits | None = None) -> None:
        self.limits = limits or CallLimits()
        self._next = 1
        self._synthetic = RESERVED_SERIALS
        self._pending: dict[int, _Pending] = {}
        self._client_pending = 0  # entries of _pending that are not own calls
        self._inbound: set[tuple[str | None, int]] = set()

    @property
    def pending(self) -> int:
        """Calls sent to the bus still awaiting a reply (the proxy's own included)."""
        return len(self._pending)

    @property
    def inbound(self) -> int:
        """Calls delivered to the client still awaiting its reply."""
        return len(self._inbound)

    def _serial(self) -> int:
        serial = self._next
        while serial in self._pending:
            serial = serial + 1 if serial + 1 < RESERVED_SERIALS else 1
        self._next = serial + 1 if serial + 1 < RESERVED_SERIALS else 1
        return serial

    def synthetic_serial(self) -> int:
        """A serial for a message the proxy makes up for the client (an error reply)."""
        serial = self._synthetic
        self._synthetic = serial + 1 if serial + 1 < 1 << 32 else RESERVED_SERIALS
        return serial

    def from_client(self, msg: WireMessage) -> Decision:
        """Decide on a message from the client (already allowed by the rules)."""
        mtype = msg.type
        if mtype == _CALL:
            if not msg.flags & FLAG_NO_REPLY_EXPECTED:
                if self._client_pending >= self.limits.max_pending:
                    error = error_reply(msg, "org.freedesktop.DBus.Error.LimitsExceeded",
                                        f"more than {self.limits.max_pending} calls pending",
                                        serial=self.synthetic_serial(), sender=BUS_NAME)
                    return Refuse("too many pending calls", error)
                serial = self._next  # _serial() inlined: the usual case of every call
                if serial in self._pending or serial + 1 >= RESERVED_SERIALS:
                    serial = self._serial()
                else:
                    self._next = serial + 1
                self._pending[serial] = _new(_Pending, (msg.serial, msg.destination, None,
                                                        False))
                self._client_pending += 1
                return _new(Forward, (with_serial(msg, serial),))
            return Forward(with_serial(msg, self._serial()))
        if mtype == MessageType.SIGNAL:
            return Forward(with_serial(msg, self._serial()))
        assert msg.reply_serial is not None  # parse_message requires it of returns and errors
        key = (msg.destination, msg.reply_serial)
        if key not in self._inbound:
            return Refuse(f"{mtype.name} to {msg.destination} serial {msg.reply_serial} "
                          "answers no call this client received")
        self._inbound.discard(key)
        return Forward(with_serial(msg, self._serial()))

    def own_call(self, msg: WireMessage, token: Any) -> WireMessage:
        """``msg`` (a method call the proxy makes on this connection) with a fresh serial;
        its reply comes back from :meth:`from_bus` as :class:`OwnReply` with ``token``."""
        serial = self._serial()
        if msg.expects_reply:
            self._pending[serial] = _Pending(0, msg.destination, token, own=True)
        return rewrite(msg, serial=serial)

    def from_bus(self, msg: WireMessage) -> BusDecision:
        """Decide on a message from the bus to this client."""
        mtype = msg.type
        if mtype == _SIGNAL:
            return Forward(msg)
        if mtype == _CALL:
            if msg.expects_reply:
                if len(self._inbound) >= self.limits.max_inbound:
                    return Refuse(f"client has {len(self._inbound)} calls unanswered")
                self._inbound.add((msg.sender, msg.serial))
            return Forward(msg)
        assert msg.reply_serial is not None
        entry = self._pending.get(msg.reply_serial)
        if entry is None:
            return Refuse(f"{mtype.name} for serial {msg.reply_serial}: no such pending call")
        dest = entry.destination
        if dest is not None and (dest.startswith(":") or dest == BUS_NAME) \
                and msg.sender != dest:
            return Refuse(f"{mtype.name} for serial {msg.reply_serial} from {msg.sender}, "
                          f"the call went to {dest}")
        del self._pending[msg.reply_serial]
        if entry.own:
            return OwnReply(entry.token, msg)
        self._client_pending -= 1
        return _new(Forward, (with_reply_serial(msg, entry.client_serial),))

    def close(self) -> int:
        """Forget every pending and inbound call (the client went); how many were pending."""
        count = len(self._pending)
        self._pending.clear()
        self._inbound.clear()
        self._client_pending = 0
        return count
