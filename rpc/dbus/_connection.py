"""One connection to a message bus: a reader thread, thread-safe sends, calls with timeouts.

A :class:`BusConnection` connects to a unix-socket bus, authenticates (SASL EXTERNAL with our
uid) and says ``Hello``. Its reader thread takes every incoming message and routes it:
replies to the caller waiting for that serial, signals to ``on_signal``, method calls to
``on_call``. Both callbacks run in the reader thread and must not block (the export framework
only checks and enqueues). Sends are thread-safe and may happen from any thread.

When the bus closes the socket (the bus died) every waiting call fails with
:class:`ConnectionLost`, ``on_lost`` is called once, and the connection is dead: the owner
(a supervised service actor) crashes and its restart connects again. :meth:`close` stops the
reader thread within a bound.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from jeepney.io.blocking import prep_socket
from jeepney.low_level import HeaderFields, Message, MessageType

from rpc.dbus._address import socket_path
from rpc.dbus._errors import CallTimeout, ConnectionLost, DBusError
from rpc.dbus._marshal import serialise
from rpc.dbus._messages import method_call
from rpc.dbus._wire import WireParser

__all__ = ["BusConnection", "CallHandler", "SignalHandler"]

logger = logging.getLogger(__name__)

CallHandler = Callable[[Message], None]
SignalHandler = Callable[[Message], None]

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"

# RequestName flags and replies
ALLOW_REPLACEMENT, REPLACE_EXISTING, DO_NOT_QUEUE = 1, 2, 4
PRIMARY_OWNER, IN_QUEUE, EXISTS, ALREADY_OWNER = 1, 2, 3, 4


class BusConnection:
    """A bus connection with a reader thread (see the module docstring)."""

    def __init__(
        self,
        address: str,
        *,
        on_call: CallHandler | None = None,
        on_signal: SignalHandler | None = None,
        on_lost: Callable[[], None] | None = None,
        auth_timeout: float = 5.0,
        label: str = "",
    ) -> None:
        self.address = address
        self.on_call = on_call
        self.on_signal = on_signal
        self.on_lost = on_lost
        self.label = label or address
        self._parser = WireParser()
        try:
            self._sock = prep_socket(socket_path(address), timeout=auth_timeout)
        except (OSError, ValueError, TimeoutError) as exc:
            raise ConnectionLost(f"cannot connect to the bus at {address}: {exc}") from exc
        except Exception as exc:  # jeepney's auth errors
            raise ConnectionLost(f"cannot authenticate to the bus at {address}: {exc}") from exc
        self._early: list[Message] = []
        try:
            self.unique_name: str = self._hello(auth_timeout)
        except BaseException:
            self._sock.close()
            raise
        self._send_lock = threading.Lock()
        self._serials = itertools.count(start=1_000_000)
        self._pending: dict[int, Future[Message]] = {}
        self._pending_lock = threading.Lock()
        self._closed = threading.Event()
        self._lost = False
        self._thread = threading.Thread(target=self._reader, name=f"dbus-reader-{self.unique_name}",
                                        daemon=True)
        self._thread.start()

    def _hello(self, timeout: float) -> str:
        """Say Hello synchronously; keep any message that came after the reply."""
        sock = self._sock
        sock.sendall(serialise(method_call(BUS_NAME, BUS_PATH, BUS_NAME, "Hello"), 1))
        deadline = time.monotonic() + timeout
        name: str | None = None
        try:
            while name is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConnectionLost(f"no Hello reply from the bus at {self.address}")
                sock.settimeout(remaining)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionLost(f"the bus at {self.address} closed the connection")
                for msg in self._parser.feed(data):
                    if msg.header.fields.get(HeaderFields.reply_serial) == 1:
                        if msg.header.message_type is MessageType.error:
                            raise ConnectionLost(f"Hello refused: {msg.body}")
                        name = str(msg.body[0])
                    else:
                        self._early.append(msg)
            return name
        except OSError as exc:
            raise ConnectionLost(f"Hello to the bus at {self.address} failed: {exc}") from exc
        finally:
            sock.settimeout(None)

    # ------------------------------------------------------------------ sending

    def send(self, msg: Message) -> int:
        """Send ``msg`` (from any thread); returns its serial.

        Raises :class:`ConnectionLost`, or the serialiser's error (``TypeError``,
        ``ValueError``, ``struct.error``) when the body does not fit its signature; nothing is
        sent then.
        """
        if self._closed.is_set():
            raise ConnectionLost(f"connection {self.label} is closed")
        serial = next(self._serials)
        data = serialise(msg, serial)
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as exc:
            raise ConnectionLost(f"send on {self.label} failed: {exc}") from exc
        return serial

    def call(self, msg: Message, timeout: float) -> Message:
        """Send a method call and wait up to ``timeout`` s for its reply.

        Returns the ``method_return``; raises :class:`DBusError` for an error reply,
        :class:`CallTimeout` or :class:`ConnectionLost`.
        """
        future = self.call_async(msg)
        try:
            reply = future.result(timeout)
        except FutureTimeout:
            raise CallTimeout(f"no reply to {msg.header.fields.get(HeaderFields.member)} "
                              f"within {timeout:g} s") from None
        if reply.header.message_type is MessageType.error:
            name = str(reply.header.fields.get(HeaderFields.error_name, "?"))
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise DBusError(name, text)
        return reply

    def call_async(self, msg: Message) -> Future[Message]:
        """Send a method call; the future gets the reply message (error replies included)."""
        future: Future[Message] = Future()
        if self._closed.is_set():
            future.set_exception(ConnectionLost(f"connection {self.label} is closed"))
            return future
        serial = next(self._serials)
        with self._pending_lock:
            self._pending[serial] = future
        future.add_done_callback(lambda _f: self._forget(serial))
        try:
            data = serialise(msg, serial)
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as exc:
            future.set_exception(ConnectionLost(f"send on {self.label} failed: {exc}"))
        except Exception as exc:  # the body does not fit its signature
            future.set_exception(exc)
        return future

    def _forget(self, serial: int) -> None:
        with self._pending_lock:
            self._pending.pop(serial, None)

    def bus_call(self, member: str, signature: str = "", body: tuple[Any, ...] = (),
                 timeout: float = 5.0) -> tuple[Any, ...]:
        """Call a method of the bus itself (``org.freedesktop.DBus``); returns the body."""
        msg = method_call(BUS_NAME, BUS_PATH, BUS_NAME, member, signature, body)
        return tuple(self.call(msg, timeout).body)

    def request_name(self, name: str, flags: int = DO_NOT_QUEUE, timeout: float = 5.0) -> int:
        """RequestName; returns the bus's answer code (1 = primary owner)."""
        return int(self.bus_call("RequestName", "su", (name, flags), timeout)[0])

    def add_match(self, rule: str, timeout: float = 5.0) -> None:
        """AddMatch ``rule`` (signals matching it are delivered to ``on_signal``)."""
        self.bus_call("AddMatch", "s", (rule,), timeout)

    def unix_user(self, unique_name: str, timeout: float = 5.0) -> int:
        """GetConnectionUnixUser of a peer."""
        return int(self.bus_call("GetConnectionUnixUser", "s", (unique_name,), timeout)[0])

    # ------------------------------------------------------------------ receiving

    def _reader(self) -> None:
        sock = self._sock
        parser = self._parser
        pending = self._pending
        batch = self._early
        self._early = []
        while True:
            for msg in batch:
                kind = msg.header.message_type
                if kind is MessageType.method_return or kind is MessageType.error:
                    serial = msg.header.fields.get(HeaderFields.reply_serial)
                    future = pending.get(serial) if serial is not None else None
                    if future is not None and not future.done():
                        future.set_result(msg)
                elif kind is MessageType.method_call:
                    if self.on_call is not None:
                        self._safely(self.on_call, msg)
                elif kind is MessageType.signal and self.on_signal is not None:
                    self._safely(self.on_signal, msg)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self._closed.is_set():
                    logger.warning("%s: the bus closed the connection", self.label)
                    self._lose()
                return
            try:
                batch = parser.feed(data)
            except Exception as exc:  # a malformed message: the stream cannot be trusted
                logger.error("%s: malformed message from the bus: %s", self.label, exc)
                self._lose()
                return

    def _safely(self, handler: Callable[[Message], None], msg: Message) -> None:
        try:
            handler(msg)
        except Exception:
            logger.exception("%s: handler failed on %s", self.label,
                             msg.header.fields.get(HeaderFields.member))

    def _lose(self) -> None:
        self._lost = True
        self._closed.set()
        self._fail_pending(ConnectionLost(f"connection to the bus at {self.address} lost"))
        if self.on_lost is not None:
            try:
                self.on_lost()
            except Exception:
                logger.exception("%s: on_lost failed", self.label)

    def _fail_pending(self, exc: Exception) -> None:
        with self._pending_lock:
            futures = list(self._pending.values())
            self._pending.clear()
        for future in futures:
            if not future.done():
                future.set_exception(exc)

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        """False once closed or lost."""
        return not self._closed.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader thread and close the socket (idempotent)."""
        if not self._closed.is_set():
            self._closed.set()
            self._fail_pending(ConnectionLost(f"connection {self.label} closed"))
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BusConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
