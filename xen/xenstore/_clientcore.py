"""Pure parts of the xenstore client: its exceptions, its retry policy and its state table.

Exceptions. A server's ERROR reply becomes a subclass of `XenstoreError` chosen by the errno
name (`error_from_reply`): `NoSuchNode` (ENOENT), `PermissionDenied` (EACCES, EPERM),
`NodeExists` (EEXIST), `TransactionConflict` (EAGAIN), `InvalidRequest` (EINVAL),
`QuotaExceeded` (ENOSPC, EQUOTA), `LimitExceeded` (E2BIG), `Busy` (EBUSY), `NotSupported`
(ENOSYS); any other name is a plain `XenstoreError`. ``.name`` always keeps the exact name.
Failures of the client itself are not `XenstoreError`s: `XenstoreTimeout` (no answer in time;
the request may or may not have been applied), and the `XenstoreConnectionError` family:
`ConnectionLost` (the connection dropped while the request was in flight: it may or may not
have been applied), `XenstoreUnavailable` (no connection could be made within the retry bound),
`ClientClosed` (the client was closed, or never connected).

`RetryPolicy` bounds a retry loop by a count and a time, with exponential backoff and optional
jitter; `next_delay` is a pure function of the attempt number and the elapsed time.

`ReplySlot` is where a connection's reader puts the reply to one request (`reply_of` gives it
or raises its error); `millis` turns seconds into a ``poll()`` timeout.

`ClientState` and `TRANSITIONS` are the client's connection state machine (STYLE point 4): the
driver calls `next_state`, which raises `IllegalTransition` on a pair not in the table. This
module does no I/O.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xen.xenstore._wire import ERRORS, PAYLOAD_MAX, PacketTooLarge, XenstoreError

if TYPE_CHECKING:
    import threading

    from xen.xenstore._wire import Packet

__all__ = [
    "TRANSITIONS",
    "Busy",
    "ClientClosed",
    "ClientState",
    "Close",
    "Connected",
    "ConnectionLost",
    "GaveUp",
    "IllegalTransition",
    "InvalidRequest",
    "LimitExceeded",
    "Lost",
    "NoSuchNode",
    "NodeExists",
    "NotSupported",
    "PermissionDenied",
    "QuotaExceeded",
    "ReplySlot",
    "RetryPolicy",
    "StateEvent",
    "TransactionConflict",
    "XenstoreConnectionError",
    "XenstoreTimeout",
    "XenstoreUnavailable",
    "connection_failed",
    "error_from_reply",
    "millis",
    "next_state",
    "reply_of",
    "too_large",
    "unanswered",
    "writer_busy",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


# --- errors the server sends -------------------------------------------------------------------


class NoSuchNode(XenstoreError):
    """ENOENT: the node (or, for a write, its parent chain) does not exist."""


class PermissionDenied(XenstoreError):
    """EACCES or EPERM: this connection may not do that to that node."""


class NodeExists(XenstoreError):
    """EEXIST: e.g. a watch with the same path and token is already registered."""


class TransactionConflict(XenstoreError):
    """EAGAIN: the transaction conflicted with another write; rerun its whole body."""


class InvalidRequest(XenstoreError):
    """EINVAL: a malformed path, value, permission or domid."""


class QuotaExceeded(XenstoreError):
    """ENOSPC or EQUOTA: a per-domain quota (nodes, value size, transactions) was hit."""


class LimitExceeded(XenstoreError):
    """E2BIG: a reply or a list would exceed a protocol limit."""


class Busy(XenstoreError):
    """EBUSY: xenstored refused for now (e.g. a domain already introduced)."""


class NotSupported(XenstoreError):
    """ENOSYS: this xenstored does not implement that request."""


_ERROR_CLASSES: Mapping[str, type[XenstoreError]] = {
    "ENOENT": NoSuchNode,
    "EACCES": PermissionDenied,
    "EPERM": PermissionDenied,
    "EEXIST": NodeExists,
    "EAGAIN": TransactionConflict,
    "EINVAL": InvalidRequest,
    "ENOSPC": QuotaExceeded,
    "EQUOTA": QuotaExceeded,
    "E2BIG": LimitExceeded,
    "EBUSY": Busy,
    "ENOSYS": NotSupported,
}


def error_from_reply(name: str, detail: str = "") -> XenstoreError:
    """The exception for an ERROR reply carrying ``name``; an unknown name becomes EINVAL (as
    libxenstore does), with the name it had kept in the detail."""
    if name not in ERRORS:
        detail = f"{detail} (server sent unknown error {name[:32]!r})".strip()
        name = "EINVAL"
    return _ERROR_CLASSES.get(name, XenstoreError)(name, detail)


# --- failures of the client itself -----------------------------------------------------------


class XenstoreTimeout(TimeoutError):
    """No reply within the request's timeout. The request may still be applied later; the
    connection stays usable (a late reply is dropped)."""


class XenstoreConnectionError(ConnectionError):
    """Base of the failures of the connection to xenstored."""


class ConnectionLost(XenstoreConnectionError):
    """The connection dropped while the request was in flight (it may or may not have been
    applied), or a transaction's connection dropped (the transaction is gone)."""


class XenstoreUnavailable(XenstoreConnectionError):
    """No connection could be made within the retry bound; the client has given up."""


class ClientClosed(XenstoreConnectionError):
    """The client was closed (or never connected)."""


def too_large(op_name: str, size: int) -> PacketTooLarge:
    """A request whose payload the protocol cannot carry (nothing was sent)."""
    return PacketTooLarge(f"{op_name} payload of {size} bytes exceeds the {PAYLOAD_MAX}-byte"
                          " protocol limit")


def connection_failed(path: str, exc: Exception) -> ConnectionLost:
    """The connection to ``path`` failed with ``exc`` (a read error, a malformed stream)."""
    return ConnectionLost(f"connection to xenstored at {path} failed: {exc!r}")


def writer_busy() -> XenstoreTimeout:
    """The deadline passed while another thread was sending."""
    return XenstoreTimeout("timed out waiting to send to xenstored (writer busy)")


def unanswered(op_name: str, req_id: int) -> XenstoreTimeout:
    """No reply to request ``req_id`` by its deadline (it may still be applied)."""
    return XenstoreTimeout(f"xenstored did not answer {op_name} (req_id {req_id}) in time;"
                           " it may still be applied")


# --- retry policy ---------------------------------------------------------------------------


class ReplySlot:
    """Where the reader puts the reply to one request. ``done``, ``packet``, ``error`` and
    ``event`` change under the connection's lock; ``event`` exists only while a caller waits
    for someone else to read its reply, and is set when ``done`` becomes True."""

    __slots__ = ("done", "error", "event", "packet")

    def __init__(self) -> None:
        self.done = False
        self.packet: Packet | None = None
        self.error: Exception | None = None
        self.event: threading.Event | None = None


def reply_of(slot: ReplySlot) -> Packet:
    """The reply a done ``slot`` holds, or its error raised."""
    if slot.error is not None:
        raise slot.error
    assert slot.packet is not None
    return slot.packet


def millis(seconds: float) -> int:
    """A poll() timeout: ``seconds`` rounded up to whole milliseconds, at least 0."""
    return max(0, int(seconds * 1000) + 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` attempts within ``max_time`` seconds from the first one.

    Before attempt ``n + 1`` the loop waits ``min(maximum, initial * factor**(n-1))`` seconds,
    spread by ``± jitter`` (a fraction) so that clients do not retry in lock step.
    """

    attempts: int = 10
    max_time: float = 10.0
    initial: float = 0.05
    maximum: float = 1.0
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.max_time < 0 or self.initial < 0 or self.maximum < self.initial:
            raise ValueError(
                f"RetryPolicy needs 0 <= initial <= maximum and max_time >= 0, got {self}"
            )
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"RetryPolicy needs factor >= 1 and 0 <= jitter < 1, got {self}")

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1) picks the
        jitter (0.5 means none)."""
        base = min(self.maximum, self.initial * self.factor ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))

    def next_delay(self, attempt: int, elapsed: float, rand: float | None = None) -> float | None:
        """The wait before the next attempt after failed attempt ``attempt``, ``elapsed``
        seconds after the first started; None when the bound (count or time) is reached."""
        if attempt >= self.attempts:
            return None
        wait = self.delay(attempt, random.random() if rand is None else rand)
        if elapsed + wait > self.max_time:
            return None
        return wait


# --- connection state machine -----------------------------------------------------------------


class ClientState(enum.Enum):
    IDLE = "idle"  # created, connect() not yet succeeded
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the connection dropped; a thread is making a new one
    FAILED = "failed"  # gave up reconnecting: every request raises XenstoreUnavailable
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StateEvent:
    """Base of the events that drive `ClientState`."""


@dataclass(frozen=True, slots=True)
class Connected(StateEvent):
    """A connection was made (and the watches were registered on it)."""


@dataclass(frozen=True, slots=True)
class Lost(StateEvent):
    """The current connection dropped."""


@dataclass(frozen=True, slots=True)
class GaveUp(StateEvent):
    """Reconnection exhausted its `RetryPolicy`."""


@dataclass(frozen=True, slots=True)
class Close(StateEvent):
    """The owner closed the client."""


_S = ClientState
TRANSITIONS: Mapping[ClientState, Mapping[type[StateEvent], ClientState]] = {
    _S.IDLE: {Connected: _S.CONNECTED, Close: _S.CLOSED},
    _S.CONNECTED: {Lost: _S.RECONNECTING, Close: _S.CLOSED},
    _S.RECONNECTING: {Connected: _S.CONNECTED, GaveUp: _S.FAILED, Close: _S.CLOSED},
    _S.FAILED: {Lost: _S.FAILED, Close: _S.CLOSED},
    # Closed absorbs everything: a reader or a reconnect thread may report late.
    _S.CLOSED: {Connected: _S.CLOSED, Lost: _S.CLOSED, GaveUp: _S.CLOSED, Close: _S.CLOSED},
}


class IllegalTransition(RuntimeError):
    """An event that the state table has no entry for in the current state."""

    def __init__(self, state: ClientState, event: StateEvent) -> None:
        super().__init__(f"no transition from {state.value} on {type(event).__name__}")
        self.state = state
        self.event = event


def next_state(state: ClientState, event: StateEvent) -> ClientState:
    """The state after ``event`` in ``state``; `IllegalTransition` if the table has none."""
    try:
        return TRANSITIONS[state][type(event)]
    except KeyError:
        raise IllegalTransition(state, event) from None
