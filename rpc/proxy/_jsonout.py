"""``--json-out``: the outgoing side speaks NUL-framed JSON instead of DBus.

:class:`JsonOutMixin` turns a client actor's bus end into a JSON end; it is combined with the
binary client (:class:`JsonOutProxyClient`) or the JSON one (:class:`JsonInOutProxyClient`), so
the client side, the checks, the rules and the call table are unchanged. What differs:

* **Setup.** The outgoing peer is not a dbus-daemon: no SASL. The proxy says ``Hello`` to it as
  a JSON request (id 1) and waits (bounded, 5 s) for the response, whose first argument is the
  unique name the client's own ``Hello`` is then answered with. Messages that arrive before
  the response are held for the client, as with a bus. No identity is registered with dom0's
  caller-identity registry: the name lives on the peer's side, which identifies us itself (for
  example another rpc-proxy with ``--json-in``).
* **Client -> peer.** Each message that passed the checks and the call table is written as one
  JSON text (``encode_json``) and a NUL. A message with no JSON form (a call without destination
  or interface, a file descriptor, ...) is logged and dropped, as in the original.
* **Peer -> client.** Each NUL-framed text is parsed (a ``response-to`` that is a decimal
  string and a signal's ``member`` are accepted too: that is what a ``--json-in`` peer writes,
  the original's quirk) and typed (``dbus-signature``, else the
  guesses: there is no introspection of a JSON peer), built into a DBus message and handed to
  the call table as a bus message would be: replies go back to their caller's serial,
  unrequested replies are dropped. A text that cannot be converted is logged and skipped; an
  empty text or one over 1 MiB ends the connection (this client only).
"""

from __future__ import annotations

import json
import logging
import socket

from jeepney.low_level import Message

from rpc.proxy._client import _RECV, BUS_NAME, BUS_PATH, ProxyClient
from rpc.proxy._json import JsonMessage, encode_json, parse_json_message, to_dbus_message
from rpc.proxy._jsonclient import JsonProxyClient
from rpc.proxy._jsonstream import JsonStreamError, NulSplitter, nul_frame
from rpc.proxy._jsonvalues import JsonError
from rpc.proxy._limits import BUS_LIMITS, ProxyProtocolError
from rpc.proxy._message import WireMessage, parse_message
from rpc.proxy._policy import ProxyPolicy
from rpc.proxy._registrar import IdentityRegistrar

__all__ = ["JsonInOutProxyClient", "JsonOutMixin", "JsonOutProxyClient"]

log = logging.getLogger("rpc.proxy")

_HELLO_TIMEOUT = 5.0


class JsonOutMixin(ProxyClient):
    """The JSON outgoing side (see the module docstring); put it first among the bases."""

    _out_splitter: NulSplitter | None = None

    def _splitter(self) -> NulSplitter:
        if self._out_splitter is None:
            self._out_splitter = NulSplitter()
        return self._out_splitter

    def _identity_registrar(self, policy: ProxyPolicy) -> IdentityRegistrar | None:
        return None

    def _bus_hello(self, sock: socket.socket) -> str:
        sock.settimeout(_HELLO_TIMEOUT)
        hello = {"id": 1, "type": "request", "destination": BUS_NAME, "path": BUS_PATH,
                 "interface": BUS_NAME, "method": "Hello", "args": []}
        sock.sendall(nul_frame(json.dumps(hello).encode()))
        name: str | None = None
        while name is None:
            data = sock.recv(_RECV)
            if not data:
                raise ConnectionError("the JSON peer closed the connection before Hello")
            for text in self._splitter().feed(data):
                reply = _parsed(text)
                if name is None and isinstance(reply, dict) \
                        and reply.get("response-to") in ("1", 1):
                    args = reply.get("args")
                    if reply.get("type") != "response" or not isinstance(args, list) \
                            or not args or not isinstance(args[0], str):
                        raise ConnectionError(f"the JSON peer refused Hello: {reply}")
                    name = args[0]
                else:
                    self._early.extend(self._converted([text]))
        sock.settimeout(None)
        return name

    def _to_bus(self, data: bytes) -> None:
        assert self.upstream is not None
        try:
            payload = encode_json(Message.from_buffer(data))
        except (JsonError, ValueError) as exc:
            log.warning("client %s: not written as JSON to %s: %s", self.peer,
                        self.opts.outgoing, exc)
            return
        self.upstream.sendall(nul_frame(payload))

    def _bus_messages(self, data: bytes) -> list[WireMessage]:
        splitter = self._splitter()
        try:
            texts = splitter.feed(data)
        except JsonStreamError as exc:
            raise ConnectionError(f"JSON from {self.opts.outgoing}: {exc}") from None
        out = self._converted(texts)
        if splitter.ended:
            raise ConnectionError(f"{self.opts.outgoing} ended its JSON stream")
        return out

    def _converted(self, texts: list[bytes]) -> list[WireMessage]:
        out = []
        for text in texts:
            try:
                msg = to_dbus_message(parse_json_message(_as_input(text)))
                out.append(parse_message(msg.serialise(), BUS_LIMITS))
            except (JsonError, ProxyProtocolError, ValueError) as exc:
                log.warning("client %s: JSON from %s skipped: %s", self.peer,
                            self.opts.outgoing, exc)
        return out


def _as_input(text: bytes) -> bytes:
    """Our own JSON output made readable as input: ``response-to`` as a decimal string and a
    signal's ``member`` are accepted (what an rpc-proxy ``--json-in`` peer writes)."""
    if b'"response-to"' not in text and b'"member"' not in text:
        return text
    obj = _parsed(text)
    if not isinstance(obj, dict):
        return text
    reply_to = obj.get("response-to")
    changed = False
    if isinstance(reply_to, str) and reply_to.isdigit() and len(reply_to) <= 10:
        obj["response-to"] = int(reply_to)
        changed = True
    if obj.get("type") == "signal" and "method" not in obj and "member" in obj:
        obj["method"] = obj["member"]
        changed = True
    return json.dumps(obj).encode() if changed else text


def _parsed(text: bytes) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


class JsonOutProxyClient(JsonOutMixin, ProxyClient):
    """A DBus client whose outgoing side speaks JSON (``--json-out``)."""


class JsonInOutProxyClient(JsonOutMixin, JsonProxyClient):
    """A JSON client whose outgoing side speaks JSON (``--json-in --json-out``): arguments are
    typed by ``dbus-signature`` or guessed (dom0's bus is not where the destinations live)."""

    def _introspection(self, msg: JsonMessage) -> None:
        return None
