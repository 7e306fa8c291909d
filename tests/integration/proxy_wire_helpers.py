"""Helpers for the proxy's hostile-client tests: a bus monitor (what really reaches the bus),
raw clients speaking bytes, and message builders."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

from rpc.proxy._frames import MessageSplitter
from rpc.proxy._limits import BUS_LIMITS
from rpc.proxy._message import MessageType, build_message
from rpc.proxy._signature import encode_values

T = 10.0
BUS = "org.freedesktop.DBus"


class BusMonitor:
    """A monitor connection on the bus (BecomeMonitor): every message the bus routes, kept as
    (sender, destination, interface, member, type, serial). Stopped by :meth:`close`."""

    def __init__(self, address: str) -> None:
        self.conn = open_dbus_connection(address)
        become = new_method_call(DBusAddress("/org/freedesktop/DBus", BUS,
                                             "org.freedesktop.DBus.Monitoring"),
                                 "BecomeMonitor", "asu", ([], 0))
        self.conn.send_and_get_reply(become, timeout=T)
        self.seen: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            f = msg.header.fields
            self.seen.append((f.get(HeaderFields.sender), f.get(HeaderFields.destination),
                              f.get(HeaderFields.interface), f.get(HeaderFields.member),
                              msg.header.message_type.value, msg.header.serial,
                              f.get(HeaderFields.reply_serial)))

    def from_sender(self, name: str) -> list[tuple[Any, ...]]:
        """What the bus got from ``name``."""
        return [m for m in list(self.seen) if m[0] == name]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(T)
        self.conn.close()


def call(serial: int, member: str, *, destination: str = BUS, path: str = "/org/freedesktop/DBus",
         interface: str | None = BUS, signature: str = "", args: tuple[Any, ...] = (),
         flags: int = 0) -> bytes:
    """A method call's bytes."""
    return build_message(MessageType.METHOD_CALL, serial=serial, path=path, interface=interface,
                         member=member, destination=destination, signature=signature,
                         body=encode_values(signature, list(args), False) if signature else b"",
                         flags=flags)


class RawClient:
    """A byte-level client of the proxy at ``path``: authenticated (EXTERNAL) and said Hello."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(T)
        self.sock.connect(path)
        self.sock.sendall(b"\0AUTH EXTERNAL 30\r\n")
        reply = self.sock.recv(256)
        if not reply.startswith(b"OK "):
            raise ConnectionError(f"auth refused: {reply!r}")
        self.sock.sendall(b"BEGIN\r\n" + call(1, "Hello"))
        self.splitter = MessageSplitter(BUS_LIMITS)
        self.inbox: list[Any] = []
        hello = self.wait_reply(1)
        self.unique_name = _first_string(hello)

    def wait_reply(self, serial: int, timeout: float = T) -> Any:
        """The reply to our ``serial`` (messages before it kept in ``inbox``)."""
        self.sock.settimeout(timeout)
        while True:
            for msg in list(self.inbox):
                if msg.reply_serial == serial:
                    self.inbox.remove(msg)
                    return msg
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.inbox.extend(self.splitter.feed(data))

    def closed_by_peer(self, timeout: float = T) -> bool:
        """True when the proxy closes this connection within ``timeout`` (what it sends before
        is read and dropped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def drain(self) -> None:
        """Read and drop whatever is waiting (non-blocking)."""
        self.sock.setblocking(False)
        try:
            while self.sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.setblocking(True)
            self.sock.settimeout(T)

    def close(self) -> None:
        self.sock.close()


def _first_string(msg: Any) -> str:
    from rpc.proxy._message import decode_body
    return str(decode_body(msg, BUS_LIMITS)[0])


def too_many_fields(serial: int, extra: int = 17) -> bytes:
    """A call whose header has ``extra`` unknown fields besides path and member."""
    fields = bytearray()

    def add(chunk: bytes) -> None:
        fields.extend(b"\0" * (-len(fields) % 8))
        fields.extend(chunk)
    add(bytes((1, 1)) + b"o\0" + struct.pack("<I", 1) + b"/\0")
    add(bytes((3, 1)) + b"s\0" + struct.pack("<I", 1) + b"X\0")
    for code in range(20, 20 + extra):
        add(bytes((code, 1)) + b"y\0" + b"\x07")
    fixed = b"l" + bytes((1, 0, 1)) + struct.pack("<III", 0, serial, len(fields))
    return fixed + bytes(fields) + b"\0" * (-len(fields) % 8)


def deep_signature(serial: int, depth: int = 40) -> bytes:
    """A call whose body signature nests ``depth`` arrays (over the limit of 32)."""
    sig = "a" * depth + "y"
    header = build_message(MessageType.METHOD_CALL, serial=serial, path="/", member="X",
                           destination=BUS, signature=sig, body=b"\0\0\0\0")
    return header


def oversized(serial: int) -> bytes:
    """The first bytes of a call announcing a 5 MiB body (over the 4 MiB client limit)."""
    msg = bytearray(call(serial, "GetId"))
    struct.pack_into("<I", msg, 4, 5 << 20)
    return bytes(msg)
