"""A client that speaks JSON (``--json-in``), NUL-framed or in WebSocket messages
(``--websockets-in``): the binary client's actor with its two ends translated.

A :class:`JsonProxyClient` is a :class:`ProxyClient`: the setup (bus connection, Hello,
identity registration), the checks, the rules, the call table and the bus side are the binary
client's own code. Only the client's stream differs:

* **Client -> bus.** No SASL: a JSON client authenticates with nothing (as ``--auto-auth``; the
  proxy authenticates to the bus itself). Each JSON text (one NUL-framed text, or one WebSocket
  message, text or binary holding UTF-8) is parsed (``parse_json_message``), typed, built into
  a DBus message and parsed back with the client limits, then handed to the binary client's
  ``_from_client``: the same always-denied checks, rules, ``-n`` rewrite and call table.
  The first message must be ``Hello``, answered locally, as for a binary client.
* **Typing.** ``dbus-signature`` when given; else, for a request with arguments, the ``in``
  signature from introspecting (destination, path) over the policy's own dom0 connection, with a
  bounded wait (:data:`INTROSPECT_TIMEOUT`), cached per (destination, path) for this client; a
  failed introspection is logged and not cached (the arguments are then guessed). A request the
  rules deny is not introspected (its guessed form is checked first), so a client cannot make
  the proxy talk to a service it may not reach.
* **Bus -> client.** Every DBus message the binary client would send (replies, errors, signals,
  calls, the local Hello answer) is written as one JSON text (``encode_json``): NUL-framed, or one
  WebSocket text message. A message with no JSON form is logged and dropped.
* **Failures.** A JSON text that cannot be parsed or converted is logged and skipped; the
  connection goes on (as the original). A broken stream ends this client only: a NUL-framed
  text over 1 MiB, an empty text (the end of the stream), a WebSocket protocol error, a message
  over 1 MiB (close 1009), a refused handshake (``403`` for an origin not allowed by
  ``--allow-origin``, default same host; ``400`` for a request that is not a WebSocket upgrade).

Threads: as the binary client. The WebSocket state is shared by both pumps and guarded by the
binary client's send lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from jeepney.low_level import Message

from rpc.dbus import RemoteObject
from rpc.proxy._client import ProxyClient, ProxyContext
from rpc.proxy._frames import MessageSplitter
from rpc.proxy._json import (
    IntrospectionError,
    JsonMessage,
    encode_json,
    parse_introspection,
    parse_json_message,
    to_dbus_message,
)
from rpc.proxy._jsonstream import JsonStreamError, NulSplitter, nul_frame
from rpc.proxy._jsonvalues import JsonError
from rpc.proxy._limits import BUS_LIMITS, CLIENT_LIMITS, ProxyProtocolError
from rpc.proxy._message import WireMessage, parse_message
from rpc.proxy._policy import PolicyError
from rpc.proxy._transports import Accepted
from rpc.proxy._websocket import (
    WebSocketClosed,
    WebSocketMessage,
    WebSocketOpened,
    WebSocketRefused,
    WebSocketServer,
)

__all__ = ["INTROSPECT_TIMEOUT", "JsonProxyClient"]

log = logging.getLogger("rpc.proxy")

#: Longest wait for one introspection (seconds); then the arguments are guessed.
INTROSPECT_TIMEOUT = 2.0
#: At most this many (destination, path) introspections are cached per client.
MAX_CACHED = 256
_INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"


class JsonProxyClient(ProxyClient):
    """One JSON or WebSocket client connection (see the module docstring)."""

    def __init__(self, context: ProxyContext, accepted: Accepted) -> None:
        super().__init__(context, accepted)
        origins = context.options.allow_origins
        self._ws = (WebSocketServer(origins or None) if context.options.websockets_in
                    else None)
        self._nul = NulSplitter()
        self._introspected: dict[tuple[str, str], Mapping[tuple[str, str], str]] = {}

    # ------------------------------------------------------------------ client -> bus

    def _client_data(self, data: bytes) -> str | None:
        texts, why = self._texts(data)
        for text in texts:
            if not self._json_from_client(text):
                return "client broke the protocol"
        if why is not None:
            return why
        return None if data else "client closed the connection"

    def _texts(self, data: bytes) -> tuple[list[str | bytes], str | None]:
        """The JSON texts ``data`` completes, and why the stream is over (None: it goes on)."""
        if self._ws is None:
            try:
                texts: list[str | bytes] = list(self._nul.feed(data))
            except JsonStreamError as exc:
                return [], f"client stream refused: {exc}"
            return texts, ("client ended the JSON stream" if self._nul.ended else None)
        out: list[str | bytes] = []
        why: str | None = None
        with self._send_lock:
            events = self._ws.feed(data)
            reply = self._ws.data_to_send()
            if reply:
                self.client.sendall(reply)
        for event in events:
            if isinstance(event, WebSocketMessage):
                out.append(event.data)
            elif isinstance(event, WebSocketOpened):
                log.info("client %s: WebSocket opened (origin %s)", self.peer, event.origin)
            elif isinstance(event, WebSocketRefused):
                why = f"WebSocket refused ({event.status}): {event.reason}"
            elif isinstance(event, WebSocketClosed):
                why = f"WebSocket closed ({event.code}) {event.reason}".rstrip()
        return out, why

    def _json_from_client(self, text: str | bytes) -> bool:
        """Convert and handle one JSON text; False to end the connection."""
        try:
            msg = parse_json_message(text)
            introspected = self._introspection(msg)
            wire = _to_wire(msg, introspected)
        except (JsonError, ProxyProtocolError, UnicodeDecodeError, ValueError) as exc:
            log.warning("client %s: JSON message skipped: %s", self.peer, exc)
            return True
        return self._from_client(wire)

    def _introspection(self, msg: JsonMessage) -> Mapping[tuple[str, str], str] | None:
        """The introspected (interface, method) -> in-signature map for ``msg``, or None."""
        target = msg.introspection_target
        if target is None or not self._hello_done:
            return None
        found = self._introspected.get(target)
        if found is not None:
            return found
        if not self._worth_introspecting(msg):
            return None
        assert self._policy is not None
        destination, path = target
        try:
            obj = RemoteObject(self._policy.connection(), destination, path,
                               timeout=INTROSPECT_TIMEOUT)
            body = obj.call(_INTROSPECTABLE, "Introspect")
            if not body or not isinstance(body[0], str):
                raise IntrospectionError("Introspect returned no XML")
            found = parse_introspection(body[0])
        except Exception as exc:  # any failure: guess the types, try again next time
            log.info("client %s: cannot introspect %s %s (arguments guessed): %s",
                     self.peer, destination, path, exc)
            return None
        if len(self._introspected) >= MAX_CACHED:
            self._introspected.pop(next(iter(self._introspected)))
        self._introspected[target] = found
        return found

    def _worth_introspecting(self, msg: JsonMessage) -> bool:
        """False when the rules would deny ``msg`` anyway (then nothing is asked of dom0)."""
        if not self.opts.firewall:
            return True
        assert self._policy is not None and self._domain is not None
        try:
            guessed = _to_wire(msg, None)
        except (JsonError, ProxyProtocolError, ValueError):
            guessed = _to_wire(replace(msg, args=()), None)
        try:
            return self._policy.check(guessed, self._domain).allowed
        except PolicyError:
            return False

    # ------------------------------------------------------------------ bus -> client

    def _write_client(self, data: bytes) -> None:
        """Write whole DBus messages as JSON texts (the send lock is held)."""
        out = bytearray()
        for wire in MessageSplitter(BUS_LIMITS).feed(data):
            try:
                payload = encode_json(Message.from_buffer(wire.data))
            except (JsonError, ValueError) as exc:
                log.warning("client %s: %s not written as JSON: %s", self.peer,
                            wire.member or wire.type.name, exc)
                continue
            if self._ws is None:
                out += nul_frame(payload)
            elif self._ws.opened and not self._ws.closed:
                out += self._ws.send_text(payload.decode("utf-8"))
        if out:
            self.client.sendall(out)

    def _close(self) -> None:
        # say goodbye on a WebSocket, unless a send is stuck on a client that does not read
        if not self._closed and self._ws is not None and self._send_lock.acquire(timeout=0.5):
            try:
                goodbye = self._ws.close(1001, "going away")
                if goodbye:
                    self.client.settimeout(0.5)
                    self.client.sendall(goodbye)
            except OSError:
                pass
            finally:
                self._send_lock.release()
        super()._close()


def _to_wire(msg: JsonMessage, introspected: Mapping[tuple[str, str], str] | None,
             ) -> WireMessage:
    """``msg`` typed and built, as the wire core sees a client's message."""
    return parse_message(to_dbus_message(msg, introspected).serialise(), CLIENT_LIMITS)
