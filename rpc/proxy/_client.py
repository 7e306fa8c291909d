"""One client connection of a proxy instance: an actor that owns the client's stream, its own
connection to dom0's bus, and the two threads that pump messages between them.

Life of a client (guarantees in order):

1. **Setup** (the actor's first message, so its supervisor is never blocked by a slow bus):
   the source domain is the transport's peer domid (``-d N`` overrides it); with the firewall
   on, its VM uuid and stubdomain flag are read from the domain directory (xenstore). The
   actor connects to the outgoing channel, authenticates to the bus itself (pipelined SASL,
   EXTERNAL with the proxy's uid), says ``Hello``, and **registers the unique name it got with
   the caller-identity registry** (domid, uuid, stubdomain) before the client may send
   anything. Any failure here (bus down, registration refused) closes the client: a
   connection whose identity is not established is never forwarded, so no service can take it
   for dom0.
2. **Client handshake**: the client's SASL is answered locally (``ServerAuth``: EXTERNAL or
   ANONYMOUS accepted, nothing else; ``--auto-auth``: none; ``-u``: ``DATA <uuid>``).
   The client's ``Hello`` is answered locally with the unique name from step 1; the bus's
   ``NameAcquired`` follows it, as from a real bus. A second ``Hello`` gets the bus's error.
3. **Client -> bus**, per message in order: the always-denied checks (eavesdropping,
   monitors, forged reply serials, fds), then the rules (``policy.check``: denied ->
   dropped, nothing is sent back, logged as ``DENY``; ``-v`` logs ``ALLOW``), then the
   ``-n`` RequestName rewrite, then the call table (serial remapping; replies only to calls
   this client received). With ``--translate-anonymous-dests`` a method call to a unique name
   the instance's table knows is first sent to that name's well-known name instead (before
   every check, so the rules see the well-known name; an unknown one refreshes the table once,
   then goes unchanged with a warning). With ``--owner-name`` the bus serial of each
   ``GetNameOwner`` call to the bus driver is noted with the name asked for.
4. **Bus -> client**: with ``--owner-name`` a reply of the bus driver to a noted
   ``GetNameOwner`` carries the name asked for instead of the owner's unique name. The call
   table routes replies back to the caller's own serial and drops
   replies nobody asked for; signals and calls pass (the outgoing firewall's source is dom0,
   always allowed, as in the original).
5. **End**: the client closing, or a malformed stream, ends this client only: the bus
   connection is closed and the name unregistered. The bus closing (dbus-daemon restarted)
   closes the client cleanly. An unexpected error in a pump thread crashes this actor (and
   only it): ``on_failure`` (and after a kill ``on_killed``) closes both streams, unregisters.

Thread: one daemon thread per client (``proxy-c<id>``), owned by the actor, waits on both
streams with epoll and handles whichever is readable, so a call and its reply never cross from
one thread to another (no interpreter-lock hand-over on the path of a call). Woken by shutting
the sockets down and joined (bounded) when the actor stops. Sends are blocking: a client that
does not read stalls only its own connection. The locks stay, for the actor's own messages
(setup, end) that touch the same state.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors import Actor, handles, service
from rpc.dbus import CallerIdentity
from rpc.proxy._auth import AuthError, BusAuth, ServerAuth, bus_auth_line
from rpc.proxy._calls import CallTable, Forward, Refuse
from rpc.proxy._frames import MessageSplitter
from rpc.proxy._limits import BUS_LIMITS, CLIENT_LIMITS, ProxyProtocolError, WireError
from rpc.proxy._message import (
    MessageType,
    WireMessage,
    build_message,
    decode_body,
    error_reply,
    parse_message,
)
from rpc.proxy._names import OwnerNames, rewrite_request_name
from rpc.proxy._options import ProxyOptions
from rpc.proxy._policy import PolicyError, ProxyPolicy, SourceDomain, message_facts
from rpc.proxy._registrar import BusRegistrar, IdentityRegistrar, LocalRegistrar
from rpc.proxy._rules_eval import deny_log_line
from rpc.proxy._security import always_denied
from rpc.proxy._signature import encode_values
from rpc.proxy._transports import Accepted, connect_outgoing

if TYPE_CHECKING:
    from rpc.proxy._rules_model import DomainFacts

__all__ = ["ProxyClient", "ProxyContext"]

log = logging.getLogger("rpc.proxy")

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
_SETUP_TIMEOUT = 5.0
_JOIN_TIMEOUT = 2.0
_RECV = 65536


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """What every client of one instance shares: its options, the dom0 bus address, the names
    of its sibling actors, and where identities are registered (``registry`` for the
    in-process registry, ``None`` for the bus identity service)."""

    options: ProxyOptions
    address: str
    policy: str
    argo_dir: str | None = None
    registry: CallerIdentity | None = None


@dataclass(frozen=True, slots=True)
class _Setup:
    """Connect, authenticate and register (the actor's first message)."""


@dataclass(frozen=True, slots=True)
class _Ended:
    """A pump ended normally (EOF, a refused stream): stop this client."""

    why: str


@dataclass(frozen=True, slots=True)
class _PumpFailed:
    """A pump hit an unexpected error: crash this client."""

    error: str


class ClientCrash(RuntimeError):
    """A pump thread failed unexpectedly (the client actor crashes with this)."""


class ProxyClient(Actor):
    """One client connection (see the module docstring)."""

    def __init__(self, context: ProxyContext, accepted: Accepted) -> None:
        super().__init__()
        self.ctx = context
        self.opts = context.options
        self.client = accepted.sock
        self.peer = accepted.peer
        domid = self.opts.incoming_domid
        self.source = SourceDomain(accepted.domid if domid is None else domid)
        self.upstream: socket.socket | None = None
        self.unique_name: str | None = None
        self.calls = CallTable()
        self._calls_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._early: list[WireMessage] = []
        self._bus_splitter = MessageSplitter(BUS_LIMITS)
        self._hello_done = False
        self._threads: list[threading.Thread] = []
        self._registrar: IdentityRegistrar | None = None
        self._policy: ProxyPolicy | None = None
        self._domain: DomainFacts | None = None
        self._closed = False
        self._owner_names = OwnerNames() if self.opts.owner_name else None
        self._client_auth: ServerAuth | None = None
        self._client_splitter = MessageSplitter(CLIENT_LIMITS)

    # ------------------------------------------------------------------ setup

    def on_start(self) -> None:
        """Queue the setup (so that the supervisor's start of this child returns at once)."""
        self._tell_self(_Setup())

    @handles(_Setup)
    def _setup(self, _msg: _Setup) -> None:
        try:
            policy = service(self.ctx.policy, ProxyPolicy)
            self._policy = policy
            if self.opts.firewall and self.source.domid != 0:
                self.source = policy.source(self.source.domid)
            self._domain = policy.facts(self.source)
            self.upstream = connect_outgoing(self.opts.outgoing, argo_dir=self.ctx.argo_dir,
                                             domains=policy.domains, timeout=_SETUP_TIMEOUT)
            self.unique_name = self._bus_hello(self.upstream)
            self._registrar = self._identity_registrar(policy)
            if self._registrar is not None:
                self._registrar.register(self.unique_name, self.source.domid,
                                         self.source.uuid or "", self.source.stubdom)
        except Exception as exc:
            log.warning("client %s (domain %d) refused: %s", self.peer, self.source.domid, exc)
            self._registrar = None
            self.request_stop()
            return
        log.info("client %s: domain %d%s as %s", self.peer, self.source.domid,
                 f" (vm {self.source.uuid})" if self.source.uuid else "", self.unique_name)
        if not self.opts.auto_auth:
            self._client_auth = ServerAuth(
                os.urandom(16).hex(), auto=False,
                announce_uuid=self.source.uuid if self.opts.send_uuid else None)
        thread = threading.Thread(target=self._pump, name=f"proxy-{self.name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _identity_registrar(self, policy: ProxyPolicy) -> IdentityRegistrar | None:
        """Where the client's bus name is registered (``_jsonout``: nowhere, no bus there)."""
        return (LocalRegistrar(self.ctx.registry) if self.ctx.registry is not None
                else BusRegistrar(policy.connection))

    def _bus_hello(self, sock: socket.socket) -> str:
        """Authenticate to the bus and say Hello; keep what the bus sent after the reply."""
        sock.settimeout(_SETUP_TIMEOUT)
        auth = BusAuth(bus_auth_line(uid=os.geteuid()))
        hello = build_message(MessageType.METHOD_CALL, serial=1, path=BUS_PATH,
                              interface=BUS_NAME, member="Hello", destination=BUS_NAME)
        sock.sendall(auth.start() + hello)
        rest = b""
        while True:
            data = sock.recv(_RECV)
            if not data:
                raise ConnectionError("the bus closed the connection during authentication")
            result = auth.feed(data)
            if result.done:
                rest = result.leftover
                break
        name: str | None = None
        while name is None:
            for msg in self._bus_splitter.feed(rest):
                if msg.reply_serial == 1 and name is None:
                    if msg.type != MessageType.METHOD_RETURN:
                        raise ConnectionError(f"Hello refused: {msg.error_name}")
                    name = self._hello_name(msg)
                else:
                    self._early.append(msg)
            if name is None:
                rest = sock.recv(_RECV)
                if not rest:
                    raise ConnectionError("the bus closed the connection before Hello")
        sock.settimeout(None)
        return name

    @staticmethod
    def _hello_name(msg: WireMessage) -> str:
        body = decode_body(msg, BUS_LIMITS)
        if not body or not isinstance(body[0], str) or not body[0].startswith(":"):
            raise ConnectionError("the bus answered Hello without a unique name")
        return body[0]

    # ------------------------------------------------------------------ the pump

    def _pump(self) -> None:
        """The client's thread: both streams until one ends (see the module docstring)."""
        try:
            why = self._pump_loop()
        except Exception as exc:
            log.exception("client %s: the pump failed", self.peer)
            self._tell_self(_PumpFailed(f"{type(exc).__name__}: {exc}"))
            return
        self._tell_self(_Ended(why))

    def _pump_loop(self) -> str:
        assert self.upstream is not None
        client_fd, bus_fd = self.client.fileno(), self.upstream.fileno()
        poller = select.epoll(2)
        try:
            poller.register(client_fd, select.EPOLLIN)
            poller.register(bus_fd, select.EPOLLIN)
            poll = poller.poll
            from_client, from_bus = self._client_readable, self._bus_readable
            while True:
                for fd, _events in poll():
                    why = from_client() if fd == client_fd else from_bus()
                    if why is not None:
                        return why
        finally:
            poller.close()

    # ------------------------------------------------------------------ client -> bus

    def _client_readable(self) -> str | None:
        """Read what the client sent and handle it; why the connection ends, or None."""
        try:
            return self._client_data(self.client.recv(_RECV))
        except (ProxyProtocolError, OSError) as exc:
            return f"client stream refused: {exc}"

    def _client_data(self, data: bytes) -> str | None:
        """Handle bytes from the client (b"": it closed); why the connection ends, or None.
        The JSON client (``_jsonclient``) overrides this to read JSON texts."""
        if not data:
            return "client closed the connection"
        auth = self._client_auth
        if auth is not None:
            try:
                result = auth.feed(data)
            except AuthError as exc:
                return f"authentication failed: {exc}"
            if result.send:
                self._to_client(result.send)
            if not result.done:
                return None
            self._client_auth = None
            data = result.leftover
        for msg in self._client_splitter.feed(data):
            if not self._from_client(msg):
                return "client broke the protocol"
        return None

    def _from_client(self, msg: WireMessage) -> bool:
        """Handle one client message; False to end the connection."""
        if not self._hello_done:
            if msg.type != MessageType.METHOD_CALL or msg.member != "Hello" \
                    or msg.destination != BUS_NAME:
                log.warning("client %s: first message is not Hello", self.peer)
                return False
            self._answer_hello(msg)
            return True
        if msg.member == "Hello" and msg.destination == BUS_NAME \
                and msg.type == MessageType.METHOD_CALL:
            self._error_to_client(msg, "org.freedesktop.DBus.Error.Failed",
                                  "Already handled an Hello message")
            return True
        opts = self.opts
        if opts.translate_anonymous_dests:
            msg = self._translate_destination(msg)
        denied = always_denied(msg)
        if denied is not None:
            log.warning("(%d->0) DENY %s from %s: %s", self.source.domid,
                        msg.member or msg.type.name, self.peer, denied)
            return True
        if not opts.no_firewall and not self._allowed(msg):
            return True
        if opts.request_name and self.source.uuid:
            msg = rewrite_request_name(msg, opts.request_name, self.source.uuid)
        with self._calls_lock:
            decision = self.calls.from_client(msg)
            if self._owner_names is not None and type(decision) is Forward:
                self._note_owner_call(decision.message)
        if type(decision) is Forward:
            self._to_bus(decision.message.data)
        elif isinstance(decision, Refuse):
            log.info("client %s: %s", self.peer, decision.reason)
            if decision.error is not None:
                self._to_client(decision.error)
        return True

    def _to_bus(self, data: bytes) -> None:
        """Send one checked DBus message to the bus (``_jsonout`` writes it as JSON)."""
        assert self.upstream is not None
        self.upstream.sendall(data)

    def _allowed(self, msg: WireMessage) -> bool:
        assert self._policy is not None and self._domain is not None
        try:
            verdict = self._policy.check(msg, self._domain)
        except PolicyError as exc:
            log.error("(%d->0) rules unusable, message not forwarded: %s",
                      self.source.domid, exc)
            return False
        if not verdict.allowed or self.opts.verbose:
            line = deny_log_line(message_facts(msg), self._domain, verdict)
            (log.warning if not verdict.allowed else log.info)("%s", line)
        return verdict.allowed

    def _answer_hello(self, msg: WireMessage) -> None:
        assert self.unique_name is not None
        with self._calls_lock:
            serial = self.calls.synthetic_serial()
        reply = build_message(MessageType.METHOD_RETURN, serial=serial, reply_serial=msg.serial,
                              destination=self.unique_name, sender=BUS_NAME, signature="s",
                              body=encode_values("s", [self.unique_name], msg.big), big=msg.big)
        with self._send_lock:  # against the bus pump holding early messages
            early, self._early = self._early, []
            self._hello_done = True
            self._write_client(reply + b"".join(m.data for m in early))

    def _error_to_client(self, msg: WireMessage, name: str, text: str) -> None:
        with self._calls_lock:
            serial = self.calls.synthetic_serial()
        self._to_client(error_reply(msg, name, text, serial=serial, sender=BUS_NAME))

    def _to_client(self, data: bytes) -> None:
        with self._send_lock:
            self._write_client(data)

    def _write_client(self, data: bytes) -> None:
        """Send whole DBus messages to the client (the send lock is held). The JSON client
        (``_jsonclient``) overrides this to write them as JSON."""
        self.client.sendall(data)

    # ------------------------------------------------------------------ bus -> client

    def _bus_readable(self) -> str | None:
        """Read what the bus sent and pass on what the client may have; why the connection
        ends, or None."""
        assert self.upstream is not None
        try:
            data = self.upstream.recv(_RECV)
            if not data:
                return "the bus closed the connection"
            out: list[bytes] = []
            calls, lock, owner_names = self.calls, self._calls_lock, self._owner_names
            for msg in self._bus_messages(data):
                with lock:
                    if owner_names is not None:
                        msg = self._spoof_owner_reply(msg)
                    decision = calls.from_bus(msg)
                if type(decision) is Forward:
                    out.append(decision.message.data)
                elif type(decision) is Refuse:
                    log.debug("client %s: from the bus: %s", self.peer, decision.reason)
            if out:
                if not self._hello_done:  # the client has not said Hello yet: hold them
                    self._hold(out)
                else:
                    self._to_client(b"".join(out))
        except (ProxyProtocolError, OSError) as exc:
            return f"bus stream ended: {exc}"
        return None

    def _bus_messages(self, data: bytes) -> list[WireMessage]:
        """The bus's messages that ``data`` completes (``_jsonout`` reads JSON texts)."""
        return self._bus_splitter.feed(data)

    def _hold(self, data: list[bytes]) -> None:
        with self._send_lock:
            if not self._hello_done:
                self._early.extend(parse_message(d, BUS_LIMITS) for d in data)
                return
        self._to_client(b"".join(data))

    # ------------------------------------------------------------------ name rewriting
    # (--translate-anonymous-dests, --owner-name; reference §2.7)

    def _translate_destination(self, msg: WireMessage) -> WireMessage:
        """``msg`` sent to the well-known name of its ``:x.y`` destination, when known."""
        if msg.type != MessageType.METHOD_CALL or not (msg.destination or "").startswith(":"):
            return msg
        assert self._policy is not None
        table = self._policy.anonymous
        found = table.translate(msg)
        if found is None:
            self._policy.refresh_names()
            found = table.translate(msg)
        if found is None:
            log.warning("client %s: no well-known name owned by %s; sent unchanged",
                        self.peer, msg.destination)
            return msg
        return found

    def _note_owner_call(self, sent: WireMessage) -> None:
        """Note a GetNameOwner call as it goes to the bus (call with the calls lock)."""
        assert self._owner_names is not None
        try:
            self._owner_names.note_call(sent)
        except (WireError, ValueError) as exc:  # a body the bus will refuse anyway
            log.info("client %s: GetNameOwner not noted: %s", self.peer, exc)

    def _spoof_owner_reply(self, msg: WireMessage) -> WireMessage:
        """The bus driver's reply to a noted GetNameOwner with the name asked for (call with
        the calls lock; only the driver's own replies are touched, so a forged reply cannot
        consume the note)."""
        assert self._owner_names is not None
        if msg.sender != BUS_NAME or msg.reply_serial is None:
            return msg
        return self._owner_names.spoof_reply(msg)

    # ------------------------------------------------------------------ end

    @handles(_Ended)
    def _ended(self, msg: _Ended) -> None:
        log.info("client %s (domain %d): %s", self.peer, self.source.domid, msg.why)
        self.request_stop()

    @handles(_PumpFailed)
    def _pump_failed(self, msg: _PumpFailed) -> None:
        raise ClientCrash(msg.error)

    def on_stop(self) -> None:
        """Close both streams, join the pumps, unregister the name."""
        self._close()

    def on_failure(self, *_exc: object) -> None:
        """Same as a stop (and after a kill): this client only is disconnected."""
        self._close()

    on_killed = on_failure

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(_JOIN_TIMEOUT)
        for sock in (self.client, self.upstream):
            if sock is not None:
                sock.close()
        if self._registrar is not None and self.unique_name is not None:
            self._registrar.unregister(self.unique_name)
        with self._calls_lock:
            self.calls.close()
            if self._owner_names is not None:
                self._owner_names.forget_all()
