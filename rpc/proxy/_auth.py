"""The DBus SASL handshake the proxy speaks: server side to clients, client side to the bus.

**Server side** (:class:`ServerAuth`, what a guest or a browser talks to). The proxy knows the
client's identity from the transport (the Argo peer domid, or ``-d``), so the handshake only
has to let a standard client library through: it accepts ``EXTERNAL`` (with or without an
initial response; the identity claimed is recorded, never trusted) and ``ANONYMOUS``, as the
original did (it replaced any ``AUTH EXTERNAL``/``AUTH ANONYMOUS`` line with its own). Other
mechanisms get ``REJECTED EXTERNAL ANONYMOUS``. ``NEGOTIATE_UNIX_FD`` is refused with
``ERROR``: the proxy passes no file descriptors (Argo and TCP cannot carry them, and a guest
must not hand dom0 services descriptors), which clients handle by not using fds. ``BEGIN``
before ``OK`` is a protocol error (the original raised AuthError). With ``announce_uuid``
(``-u``) a ``DATA <uuid>`` line precedes each ``OK``, as in the original.

The handshake is the table :data:`TRANSITIONS` (state -> event type -> next state) with the
reply for each step in :data:`REPLIES`; a line becomes one event (:func:`classify`), the driver
does one lookup, and a miss is :class:`IllegalTransition`. Any error poisons the object (every
later ``feed`` raises). Bounds: a line is at most ``max_line`` bytes (default 512: the longest
legitimate line, ``AUTH EXTERNAL`` with a hex uid, is under 40) and the client gets at most
``max_steps`` lines (default 16) before ``BEGIN``; bytes after ``BEGIN`` are handed back as
``leftover`` (pipelining clients send their first messages with it).

``--auto-auth`` (``ServerAuth(auto=True)``): the client does no handshake at all; the object
starts authenticated and every byte is message data.

**Client side** (:class:`BusAuth`): the proxy authenticates its own bus connection, pipelined
(``\\0AUTH ... \\r\\nBEGIN\\r\\n`` in one write, saving a round trip per client), and requires
``OK`` (the original read and ignored one line). The AUTH line is ``EXTERNAL`` with the
proxy's uid for a stock dbus-daemon, or ``DOMID <hex of the decimal domid>`` for OpenXT's
patched one (:func:`bus_auth_line`).
"""

from __future__ import annotations

import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from rpc.proxy._limits import ProxyProtocolError

__all__ = ["REPLIES", "TRANSITIONS", "AuthError", "AuthEvent", "AuthResult", "AuthState",
           "BusAuth", "IllegalTransition", "Reply", "ServerAuth", "bus_auth_line", "classify"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

MECHANISMS = ("EXTERNAL", "ANONYMOUS")


class AuthError(ProxyProtocolError):
    """The handshake failed; the connection is to be closed."""


class AuthState(enum.Enum):
    """States of the server side (the DBus spec's server states, plus start and ends)."""

    WAIT_NUL = "wait-nul"
    WAIT_AUTH = "wait-auth"
    WAIT_DATA = "wait-data"
    WAIT_BEGIN = "wait-begin"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Nul:
    """The single zero byte that opens a DBus connection."""


@dataclass(frozen=True, slots=True)
class AuthAccepted:
    """``AUTH EXTERNAL <hex>`` or ``AUTH ANONYMOUS [hex]``."""

    mechanism: str
    identity: str | None


@dataclass(frozen=True, slots=True)
class AuthNeedsData:
    """``AUTH EXTERNAL`` without an initial response."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class AuthUnsupported:
    """``AUTH`` with another mechanism, none, or a malformed initial response."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class DataValid:
    """``DATA`` with hex (or nothing)."""

    payload: str


@dataclass(frozen=True, slots=True)
class DataInvalid:
    """``DATA`` with something not hex."""


@dataclass(frozen=True, slots=True)
class Begin:
    """``BEGIN``."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """``CANCEL``."""


@dataclass(frozen=True, slots=True)
class ClientError:
    """``ERROR [text]`` from the client."""


@dataclass(frozen=True, slots=True)
class NegotiateUnixFd:
    """``NEGOTIATE_UNIX_FD``."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """Any other line."""

    line: str


AuthEvent = (Nul | AuthAccepted | AuthNeedsData | AuthUnsupported | DataValid | DataInvalid
             | Begin | Cancel | ClientError | NegotiateUnixFd | Unknown)


class Reply(enum.Enum):
    """What the server answers to a step."""

    NONE = "none"
    OK = "ok"            # [DATA <uuid>] OK <guid>
    DATA = "data"        # DATA (asking for the EXTERNAL identity)
    REJECTED = "rejected"  # REJECTED EXTERNAL ANONYMOUS
    ERROR = "error"      # ERROR "..."


_S = AuthState
_AUTH_LINES: tuple[type[AuthEvent], ...] = (AuthAccepted, AuthNeedsData, AuthUnsupported)
_DATA_LINES: tuple[type[AuthEvent], ...] = (DataValid, DataInvalid)

#: The handshake: state -> event type -> next state. Pairs not listed are illegal.
TRANSITIONS: Mapping[AuthState, Mapping[type[AuthEvent], AuthState]] = {
    _S.WAIT_NUL: {Nul: _S.WAIT_AUTH},
    _S.WAIT_AUTH: {
        AuthAccepted: _S.WAIT_BEGIN, AuthNeedsData: _S.WAIT_DATA,
        AuthUnsupported: _S.WAIT_AUTH, Cancel: _S.WAIT_AUTH, ClientError: _S.WAIT_AUTH,
        DataValid: _S.WAIT_AUTH, DataInvalid: _S.WAIT_AUTH, NegotiateUnixFd: _S.WAIT_AUTH,
        Unknown: _S.WAIT_AUTH,
    },
    _S.WAIT_DATA: {
        DataValid: _S.WAIT_BEGIN, DataInvalid: _S.WAIT_AUTH, Cancel: _S.WAIT_AUTH,
        ClientError: _S.WAIT_AUTH, **dict.fromkeys(_AUTH_LINES, _S.WAIT_DATA),
        NegotiateUnixFd: _S.WAIT_DATA, Unknown: _S.WAIT_DATA,
    },
    _S.WAIT_BEGIN: {
        Begin: _S.AUTHENTICATED, Cancel: _S.WAIT_AUTH, ClientError: _S.WAIT_AUTH,
        NegotiateUnixFd: _S.WAIT_BEGIN, **dict.fromkeys(_AUTH_LINES, _S.WAIT_BEGIN),
        **dict.fromkeys(_DATA_LINES, _S.WAIT_BEGIN), Unknown: _S.WAIT_BEGIN,
    },
    _S.AUTHENTICATED: {},
    _S.FAILED: {},
}

#: The server's answer to each legal step (absent: no answer).
REPLIES: Mapping[tuple[AuthState, type[AuthEvent]], Reply] = {
    (_S.WAIT_AUTH, AuthAccepted): Reply.OK,
    (_S.WAIT_AUTH, AuthNeedsData): Reply.DATA,
    (_S.WAIT_AUTH, AuthUnsupported): Reply.REJECTED,
    (_S.WAIT_AUTH, Cancel): Reply.REJECTED,
    (_S.WAIT_AUTH, ClientError): Reply.REJECTED,
    (_S.WAIT_AUTH, DataValid): Reply.ERROR,
    (_S.WAIT_AUTH, DataInvalid): Reply.ERROR,
    (_S.WAIT_AUTH, NegotiateUnixFd): Reply.ERROR,
    (_S.WAIT_AUTH, Unknown): Reply.ERROR,
    (_S.WAIT_DATA, DataValid): Reply.OK,
    (_S.WAIT_DATA, DataInvalid): Reply.REJECTED,
    (_S.WAIT_DATA, Cancel): Reply.REJECTED,
    (_S.WAIT_DATA, ClientError): Reply.REJECTED,
    **{(_S.WAIT_DATA, t): Reply.ERROR for t in (*_AUTH_LINES, NegotiateUnixFd, Unknown)},
    (_S.WAIT_BEGIN, Cancel): Reply.REJECTED,
    (_S.WAIT_BEGIN, ClientError): Reply.REJECTED,
    **{(_S.WAIT_BEGIN, t): Reply.ERROR
       for t in (*_AUTH_LINES, *_DATA_LINES, NegotiateUnixFd, Unknown)},
}


class IllegalTransition(AuthError):
    """An event the table does not allow in the current state."""

    def __init__(self, state: AuthState, event: AuthEvent) -> None:
        super().__init__(f"{type(event).__name__} is not allowed in state {state.value}")
        self.state = state
        self.event = event


def _hex_ok(text: str) -> bool:
    try:
        binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        return False
    return True


def classify(line: str) -> AuthEvent:
    """The event one client line (without CRLF) is."""
    command, _, rest = line.partition(" ")
    if command == "AUTH":
        mechanism, _, response = rest.strip().partition(" ")
        if mechanism not in MECHANISMS or (response and not _hex_ok(response)):
            return AuthUnsupported(mechanism)
        if mechanism == "EXTERNAL" and not response:
            return AuthNeedsData(mechanism)
        identity = binascii.unhexlify(response).decode("ascii", "replace") if response else None
        return AuthAccepted(mechanism, identity)
    if command == "DATA":
        payload = rest.strip()
        return DataValid(payload) if _hex_ok(payload) else DataInvalid()
    simple: dict[str, AuthEvent] = {"BEGIN": Begin(), "CANCEL": Cancel(),
                                    "ERROR": ClientError(),
                                    "NEGOTIATE_UNIX_FD": NegotiateUnixFd()}
    if command in simple and (command == "ERROR" or not rest):
        return simple[command]
    return Unknown(line)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What one ``feed`` produced: bytes to send back, whether the handshake is over, and the
    bytes that followed ``BEGIN`` (message data)."""

    send: bytes = b""
    done: bool = False
    leftover: bytes = b""


class ServerAuth:
    """The server side of the handshake with one client (see the module docstring)."""

    def __init__(self, guid: str, *, auto: bool = False, announce_uuid: str | None = None,
                 max_line: int = 512, max_steps: int = 16) -> None:
        if len(guid) != 32 or not _hex_ok(guid):
            raise ValueError(f"guid must be 32 hex digits, got {guid!r}")
        self.guid = guid
        self.announce_uuid = announce_uuid
        self.max_line = max_line
        self.max_steps = max_steps
        self.state = AuthState.AUTHENTICATED if auto else AuthState.WAIT_NUL
        self.mechanism: str | None = None
        self.claimed_identity: str | None = None
        self._buf = bytearray()
        self._steps = 0
        self._error: AuthError | None = None

    def _reply(self, reply: Reply) -> bytes:
        if reply is Reply.OK:
            prefix = f"DATA {self.announce_uuid}\r\n" if self.announce_uuid else ""
            return f"{prefix}OK {self.guid}\r\n".encode("ascii")
        return {Reply.NONE: b"", Reply.DATA: b"DATA\r\n",
                Reply.REJECTED: ("REJECTED " + " ".join(MECHANISMS) + "\r\n").encode("ascii"),
                Reply.ERROR: b'ERROR "not supported here"\r\n'}[reply]

    def step(self, event: AuthEvent) -> bytes:
        """Apply one event: the reply bytes; :class:`IllegalTransition` on a miss."""
        state = self.state
        target = TRANSITIONS[state].get(type(event))
        if target is None:
            self.state = AuthState.FAILED
            raise IllegalTransition(state, event)
        if isinstance(event, AuthAccepted | AuthNeedsData):
            self.mechanism = event.mechanism
            self.claimed_identity = getattr(event, "identity", None)
        elif isinstance(event, DataValid) and state is AuthState.WAIT_DATA:
            self.claimed_identity = binascii.unhexlify(event.payload).decode("ascii", "replace")
        self.state = target
        return self._reply(REPLIES.get((state, type(event)), Reply.NONE))

    def feed(self, data: bytes) -> AuthResult:
        """Consume client bytes; :class:`AuthError` (and poisoned) on any protocol error."""
        if self._error is not None:
            raise AuthError(f"handshake unusable after: {self._error}")
        if self.state is AuthState.AUTHENTICATED:
            return AuthResult(done=True, leftover=bytes(data))
        try:
            return self._feed(data)
        except AuthError as exc:
            self._error = exc
            self.state = AuthState.FAILED
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> AuthResult:
        buf = self._buf
        buf += data
        out = bytearray()
        if self.state is AuthState.WAIT_NUL and buf:
            if buf[0] != 0:
                raise AuthError(f"first byte {buf[0]:#04x} is not NUL")
            del buf[0]
            out += self.step(Nul())
        while self.state is not AuthState.WAIT_NUL:
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > self.max_line:
                    raise AuthError(f"line longer than {self.max_line} bytes")
                break
            if end > self.max_line:
                raise AuthError(f"line longer than {self.max_line} bytes")
            raw = bytes(buf[:end])
            del buf[:end + 2]
            if not raw.isascii() or any(b < 0x20 for b in raw):
                raise AuthError("non-ASCII or control bytes in an auth line")
            self._steps += 1
            if self._steps > self.max_steps:
                raise AuthError(f"more than {self.max_steps} auth lines")
            out += self.step(classify(raw.decode("ascii")))
            if self.state is AuthState.AUTHENTICATED:
                rest = bytes(buf)
                buf.clear()
                return AuthResult(bytes(out), True, rest)
        return AuthResult(bytes(out))


def bus_auth_line(*, uid: int | None = None, domid: int | None = None) -> bytes:
    """The AUTH line for the bus: ``AUTH DOMID <hex>`` when ``domid`` is given (OpenXT's
    patched dbus-daemon), else ``AUTH EXTERNAL <hex of the decimal uid>``."""
    if domid is not None:
        return b"AUTH DOMID " + str(domid).encode().hex().encode() + b"\r\n"
    if uid is None:
        raise ValueError("bus_auth_line needs uid or domid")
    return b"AUTH EXTERNAL " + str(uid).encode().hex().encode() + b"\r\n"


class BusAuth:
    """The client side of the handshake with the bus, pipelined (module docstring)."""

    def __init__(self, auth_line: bytes, *, max_line: int = 512) -> None:
        if not auth_line.startswith(b"AUTH ") or not auth_line.endswith(b"\r\n"):
            raise ValueError(f"not an AUTH line: {auth_line!r}")
        self.auth_line = auth_line
        self.max_line = max_line
        self.guid: str | None = None
        self._buf = bytearray()
        self._done = False

    def start(self) -> bytes:
        """The bytes to write first: NUL, the AUTH line and BEGIN."""
        return b"\0" + self.auth_line + b"BEGIN\r\n"

    def feed(self, data: bytes) -> AuthResult:
        """Consume bus bytes: done on ``OK <guid>`` (bytes after it are ``leftover``);
        :class:`AuthError` on anything else."""
        if self._done:
            return AuthResult(done=True, leftover=bytes(data))
        self._buf += data
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > self.max_line:
                raise AuthError(f"bus auth line longer than {self.max_line} bytes")
            return AuthResult()
        line = bytes(self._buf[:end]).decode("ascii", "replace")
        rest = bytes(self._buf[end + 2:])
        self._buf.clear()
        if not line.startswith("OK "):
            raise AuthError(f"the bus refused authentication: {line[:120]!r}")
        self.guid = line[3:].strip()
        self._done = True
        return AuthResult(done=True, leftover=rest)
