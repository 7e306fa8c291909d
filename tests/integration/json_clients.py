"""JSON clients of the proxy for the tests and the benchmark: NUL-framed and WebSocket (wsproto)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)

T = 10.0


class JsonClient:
    """A JSON client over a stream: send objects, receive objects (every wait bounded)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox: list[dict[str, Any]] = []
        self.eof = False
        self._ids = iter(range(1, 1 << 31))

    def next_id(self) -> int:
        """A fresh message id."""
        return next(self._ids)

    def send(self, obj: dict[str, Any] | bytes) -> None:
        """Send one JSON object (``bytes``: that raw text)."""
        raise NotImplementedError

    def _decode(self, data: bytes) -> list[bytes | str]:
        raise NotImplementedError

    def pump(self, timeout: float) -> None:
        """Read what arrives within ``timeout`` s (at least one recv)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
        for text in self._decode(data):
            self.inbox.append(json.loads(text))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool],
                 timeout: float = T) -> dict[str, Any] | None:
        """The first received object for which ``pred`` holds (removed), or None at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, obj in enumerate(self.inbox):
                if pred(obj):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.pump(min(left, 0.2))

    def call(self, destination: str, path: str, interface: str, method: str, *args: Any,
             timeout: float = T, **extra: Any) -> dict[str, Any] | None:
        """A request; its response or error, or None when nothing came within ``timeout``."""
        ident = self.next_id()
        self.send({"id": ident, "type": "request", "destination": destination, "path": path,
                   "interface": interface, "method": method, "args": list(args), **extra})
        return self.wait_for(lambda o: o.get("response-to") == str(ident), timeout)

    def hello(self) -> str:
        """Say Hello; the unique name."""
        reply = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "Hello")
        assert reply is not None and reply["type"] == "response", reply
        name = reply["args"][0]
        assert isinstance(name, str)
        return name

    def db(self, method: str, *args: Any, timeout: float = T) -> dict[str, Any] | None:
        """A call to dbd."""
        return self.call("com.citrix.xenclient.db", "/", "com.citrix.xenclient.db", method,
                         *args, timeout=timeout)

    def closed_by_peer(self, timeout: float = T) -> bool:
        """Whether the proxy closes the stream within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.2)
        return self.eof

    def close(self) -> None:
        """Close the stream."""
        self.sock.close()


class NulClient(JsonClient):
    """``--json-in``: NUL-framed JSON texts."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._buf = b""

    def send(self, obj: dict[str, Any] | bytes) -> None:
        """Send one JSON text and its NUL."""
        text = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.sock.sendall(text + b"\0")

    def _decode(self, data: bytes) -> list[bytes | str]:
        self._buf += data
        *texts, self._buf = self._buf.split(b"\0")
        return [t for t in texts if t]


class WsClient(JsonClient):
    """``--websockets-in``: one JSON text per WebSocket text message (wsproto client)."""

    def __init__(self, sock: socket.socket, origin: str | None = "null",
                 host: str = "localhost") -> None:
        super().__init__(sock)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.refused: int | None = None
        headers = [] if origin is None else [(b"origin", origin.encode())]
        sock.sendall(self.ws.send(Request(host=host, target="/", extra_headers=headers)))
        self.accepted = False
        deadline = time.monotonic() + T
        while not self.accepted and self.refused is None and not self.eof \
                and time.monotonic() < deadline:
            self.pump(0.2)

    def send(self, obj: dict[str, Any] | bytes) -> None:
        """Send one text message."""
        text = obj.decode() if isinstance(obj, bytes) else json.dumps(obj)
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def _decode(self, data: bytes) -> list[bytes | str]:
        self.ws.receive_data(data or None)
        out: list[bytes | str] = []
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, RejectConnection):
                self.refused = event.status_code
            elif isinstance(event, TextMessage):
                out.append(event.data)
            elif isinstance(event, BytesMessage):
                out.append(bytes(event.data))
            elif isinstance(event, CloseConnection):
                self.eof = True
        return out


def connect_unix(path: str) -> socket.socket:
    """A stream to the proxy's unix socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(T)
    s.connect(path)
    return s
