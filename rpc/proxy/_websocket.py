"""The server side of a WebSocket connection (``--websockets-in``), sans-I/O, on wsproto.

`WebSocketServer` owns a wsproto connection and a small outbox. The driver (an actor holding the
socket) loops: read bytes, `WebSocketServer.feed` them (``b""`` when the peer closed the stream),
act on the returned events, write `WebSocketServer.data_to_send` (handshake answers, pongs and
close replies that ``feed`` queued), and write what `send_text` / `close` return.

Behaviour:

- **Handshake.** An RFC 6455 upgrade ``GET`` is answered ``101`` when its ``Origin`` passes
  `origin_allowed`, else ``403``; a request that is not a WebSocket upgrade gets ``400`` (or
  ``426`` for a wrong version) from wsproto. Either refusal is one `WebSocketRefused` event and
  the connection is finished. No extension (no compression: no inflation bombs) and no
  subprotocol is accepted. A client must wait for the ``101`` before sending frames (RFC 6455
  4.1); frames pipelined behind the request are not read.
- **Messages.** Text and binary messages are both delivered (the original accepted both), one
  `WebSocketMessage` per complete message: fragments are joined, and a message whose size passes
  ``max_message`` (default 1 MiB, the original's limit; counted in UTF-8 bytes) closes the
  connection with code 1009. We send text messages, unmasked as a server must.
- **Control.** A ping is answered with a pong; a close is answered with a close, and reported as
  `WebSocketClosed`; a protocol error from the peer closes with wsproto's code (1002, 1007);
  the end of the stream without a close is `WebSocketClosed` with code 1006.
- After `WebSocketClosed` or `WebSocketRefused`, ``feed`` ignores data and returns no event;
  `send_text` raises `WebSocketError`.

Empty bytes are never given to wsproto except to signal the end of the stream (its API reads
``b""``/``None`` as EOF). Pure: wsproto and h11 do no I/O (checked by the architecture test's
isolated import).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_WEBSOCKET_MESSAGE",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketEvent",
    "WebSocketMessage",
    "WebSocketOpened",
    "WebSocketRefused",
    "WebSocketServer",
    "origin_allowed",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: Largest message accepted (bytes): the original's received-frame limit, 1 MiB.
MAX_WEBSOCKET_MESSAGE = 1 << 20
_MESSAGE_TOO_BIG = 1009
_EOF_REASON = "the stream ended without a close"
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class WebSocketError(ValueError):
    """A WebSocket operation is not possible in the connection's state."""


@dataclass(frozen=True, slots=True)
class WebSocketOpened:
    """The handshake was accepted (``101`` queued in ``data_to_send``)."""

    host: str
    target: str
    origin: str | None


@dataclass(frozen=True, slots=True)
class WebSocketRefused:
    """The handshake was refused with HTTP ``status`` (response queued); the connection is over."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class WebSocketMessage:
    """One complete message: ``str`` from a text message, ``bytes`` from a binary one."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class WebSocketClosed:
    """The connection is over: ``code`` and ``reason`` as received or as we sent them."""

    code: int
    reason: str


WebSocketEvent: TypeAlias = (
    "WebSocketOpened | WebSocketRefused | WebSocketMessage | WebSocketClosed")


def _host_port(netloc: str, default: int | None) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None:
        return None
    return (parts.hostname.lower(), default if port is None else port)


def origin_allowed(origin: str | None, host: str, allowed: Collection[str] | None = None,
                   *, allow_missing: bool = True) -> bool:
    """Whether a handshake with this ``Origin`` header (None: absent) may open.

    ``allowed`` None (the default) allows only *same-host* origins: the origin's host name and
    port (scheme default when absent) equal the ``Host`` header's (port 80 when absent).
    Otherwise ``allowed`` is the exact list of origins (``scheme://host[:port]``, compared
    case-insensitively, trailing ``/`` ignored); ``"*"`` in it allows every origin. The
    opaque origin ``null`` (a ``file:`` page, a sandbox) passes only through an explicit
    ``"null"`` or ``"*"``. A request without ``Origin`` does not come from a browser page (the
    cross-site attack this check stops needs one): it is allowed when ``allow_missing``.
    """
    if origin is None:
        return allow_missing
    origin = origin.strip()
    if allowed is not None:
        wanted = {a.strip().lower().rstrip("/") for a in allowed}
        return "*" in wanted or origin.lower().rstrip("/") in wanted
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.netloc:
        return False
    mine = _host_port(parts.netloc, _DEFAULT_PORTS[parts.scheme.lower()])
    theirs = _host_port(host, 80)
    return mine is not None and mine == theirs


class WebSocketServer:
    """One server-side WebSocket connection, as a sans-I/O object (module docstring).

    ``allowed_origins`` and ``allow_missing_origin`` go to `origin_allowed`; ``max_message`` is
    the largest message accepted, in bytes.
    """

    def __init__(self, allowed_origins: Collection[str] | None = None, *,
                 allow_missing_origin: bool = True,
                 max_message: int = MAX_WEBSOCKET_MESSAGE) -> None:
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        self.allowed_origins = None if allowed_origins is None else tuple(allowed_origins)
        self.allow_missing_origin = allow_missing_origin
        self.max_message = max_message
        self._ws = WSConnection(ConnectionType.SERVER)
        self._outbox = bytearray()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._opened = False
        self._done = False

    @property
    def opened(self) -> bool:
        """True once the handshake was accepted."""
        return self._opened

    @property
    def closed(self) -> bool:
        """True once the connection is over (closed, refused or failed)."""
        return self._done

    def data_to_send(self) -> bytes:
        """The bytes ``feed`` queued for the peer (then the queue is empty)."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def feed(self, data: bytes) -> list[WebSocketEvent]:
        """Take bytes from the peer (``b""``: the stream ended) and return what happened.

        Never raises for anything the peer sends: refusals and errors become
        `WebSocketRefused` / `WebSocketClosed` events. After either, returns ``[]``.
        """
        if self._done:
            return []
        try:
            self._ws.receive_data(data if data else None)
            return self._drain(eof=not data)
        except RemoteProtocolError as exc:
            if not data:  # the peer is gone mid-request: nobody to answer
                self._done = True
                return [WebSocketClosed(1006, _EOF_REASON)]
            return self._refuse(exc)

    def send_text(self, text: str) -> bytes:
        """The frame carrying one text message. Raises `WebSocketError` unless open."""
        if self._done or self._ws.state is not ConnectionState.OPEN:
            raise WebSocketError("the WebSocket connection is not open")
        return self._ws.send(TextMessage(data=text))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """The close frame to send (``b""`` if the connection is already over or not open).

        The connection then counts as closed: later data from the peer is ignored.
        """
        self._done = True
        if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        return self._ws.send(CloseConnection(code=code, reason=reason or None))

    # ------------------------------------------------------------------ internals

    def _refuse(self, exc: RemoteProtocolError) -> list[WebSocketEvent]:
        self._done = True
        hint = exc.event_hint
        if isinstance(hint, RejectConnection) and self._ws.state is ConnectionState.CONNECTING:
            self._outbox += self._ws.send(hint)
            return [WebSocketRefused(hint.status_code, str(exc))]
        return [WebSocketClosed(1002, str(exc))]

    def _drain(self, eof: bool) -> list[WebSocketEvent]:
        out: list[WebSocketEvent] = []
        for event in self._ws.events():
            if self._done:
                break
            if isinstance(event, Request):
                out.append(self._handshake(event))
            elif isinstance(event, (TextMessage, BytesMessage)):
                out.extend(self._message(event))
            elif isinstance(event, Ping):
                self._outbox += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._outbox += self._ws.send(event.response())
                elif self._ws.state is ConnectionState.OPEN:  # wsproto found a bad frame
                    self._outbox += self._ws.send(CloseConnection(event.code, event.reason))
                self._done = True
                reason = event.reason or (_EOF_REASON if eof else "")
                out.append(WebSocketClosed(int(event.code), reason))
        if eof and not self._done:
            self._done = True
            out.append(WebSocketClosed(1006, _EOF_REASON))
        return out

    def _handshake(self, request: Request) -> WebSocketEvent:
        origin = None
        for name, value in request.extra_headers:
            if bytes(name).lower() == b"origin":
                origin = bytes(value).decode("latin-1")
        if not origin_allowed(origin, request.host, self.allowed_origins,
                              allow_missing=self.allow_missing_origin):
            self._outbox += self._ws.send(RejectConnection(status_code=403))
            self._done = True
            return WebSocketRefused(403, f"origin {origin!r} is not allowed for host "
                                         f"{request.host!r}")
        self._outbox += self._ws.send(AcceptConnection())
        self._opened = True
        return WebSocketOpened(request.host, request.target, origin)

    def _message(self, event: TextMessage | BytesMessage) -> list[WebSocketEvent]:
        part = event.data
        self._size += len(part.encode("utf-8")) if isinstance(part, str) else len(part)
        if self._size > self.max_message:
            reason = f"message larger than {self.max_message} bytes"
            try:
                self._outbox += self._ws.send(CloseConnection(_MESSAGE_TOO_BIG, reason))
            except LocalProtocolError:  # pragma: no cover - only reachable in a closing state
                pass
            self._parts.clear()
            self._done = True
            return [WebSocketClosed(_MESSAGE_TOO_BIG, reason)]
        if part:
            self._parts.append(part if isinstance(part, str) else bytes(part))
        if not event.message_finished:
            return []
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(event, TextMessage):
            return [WebSocketMessage("".join(p for p in parts if isinstance(p, str)))]
        return [WebSocketMessage(b"".join(p for p in parts if isinstance(p, (bytes, bytearray))))]
