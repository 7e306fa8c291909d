"""A minimal blocking DBus client for xec's fast path: no jeepney, no `typing`, no ``socket``.

xec's plain method call (`rpc.xec._fast`) needs one connection, ``Hello``, ``Introspect`` and one
call, so this module does just that over a unix socket (``_socket``, the C module, which
imports in well under a millisecond where ``socket`` costs tens):

- `WireBus.connect`: ``unix:path=`` or ``unix:abstract=`` addresses only (anything else raises
  `Unsupported`, so that the caller falls back to the full client), SASL ``EXTERNAL`` with our
  uid, ``BEGIN``, then ``Hello``;
- `WireBus.call`: a method call whose body holds basic values only (``y b n q i u x t d s o``),
  then the reply matching its serial (signals and other messages are skipped). The reply body
  is decoded whole, any signature, into jeepney's shapes (ints, bool, float, str, bytes for
  ``ay``, list, dict, tuple, ``(signature, value)`` for a variant), so that xec's formats take
  it as they take jeepney's.

Outcomes: `WireReply` (``error`` is the error name, or ``None`` for a method return). Any
failure raises `OSError` (a timeout is `TimeoutError`), or `ValueError` for a message that
does not decode (the decoder trusts the bus, which validates every message it relays, but a
malformed one still ends as `ValueError`, never another exception); the caller decides
whether that means "fall back" (nothing was sent yet) or "report" (the call went out).
"""

from __future__ import annotations

import _socket
import os
import struct
import time

__all__ = ["Unsupported", "WireBus", "WireReply", "decode", "encode_basic", "unix_socket_path"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q",
          "d": "d", "h": "I"}
_SIZE = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4}
_ALIGN = {**_SIZE, "s": 4, "o": 4, "g": 1, "v": 1, "a": 4, "(": 8, "{": 8}

BUS = "org.freedesktop.DBus"
_METHOD_CALL, _METHOD_RETURN, _ERROR = 1, 2, 3
# header field codes
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SIGNATURE = 1, 2, 3, 4, 5, \
    6, 8


class Unsupported(Exception):
    """The fast client cannot take this (an address or value it does not handle)."""


class WireReply:
    """A reply: its body values, their signature, and the error name (None: a return)."""

    __slots__ = ("body", "error", "signature")

    def __init__(self, body: tuple[Any, ...], signature: str, error: str | None) -> None:
        self.body = body
        self.signature = signature
        self.error = error


def unix_socket_path(address: str) -> str:
    """The socket of the first transport of ``address``; `Unsupported` unless it is unix."""
    transport, _, params = address.split(";")[0].partition(":")
    if transport != "unix":
        raise Unsupported(address)
    for part in params.split(","):
        key, eq, value = part.partition("=")
        if eq and key == "path" and "%" not in value:
            return value
        if eq and key == "abstract" and "%" not in value:
            return "\0" + value
    raise Unsupported(address)


# -- marshalling ---------------------------------------------------------------------------------


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def encode_basic(buf: bytearray, code: str, value: Any) -> None:
    """Append one basic value (little-endian); `Unsupported` for a container type."""
    if code in _FIXED:
        _pad(buf, _SIZE[code])
        buf.extend(struct.pack("<" + _FIXED[code], value))
    elif code in "so":
        data = value.encode("utf-8")
        _pad(buf, 4)
        buf.extend(struct.pack("<I", len(data)))
        buf.extend(data + b"\0")
    elif code == "g":
        data = value.encode("ascii")
        buf.extend(bytes((len(data),)) + data + b"\0")
    else:
        raise Unsupported(code)


def _complete(sig: str, i: int) -> int:
    """End index of the complete type starting at ``sig[i]``."""
    code = sig[i]
    if code == "a":
        return _complete(sig, i + 1)
    if code in "({":
        close = ")" if code == "(" else "}"
        i += 1
        while sig[i] != close:
            i = _complete(sig, i)
        return i + 1
    return i + 1


def split_signature(sig: str) -> list[str]:
    """The complete types of a signature, in order."""
    out: list[str] = []
    i = 0
    while i < len(sig):
        end = _complete(sig, i)
        out.append(sig[i:end])
        i = end
    return out


def decode(data: bytes, pos: int, sig: str, big: bool) -> tuple[Any, int]:
    """Decode one complete type ``sig`` at ``pos``; returns the value and the next position."""
    code = sig[0]
    order = ">" if big else "<"
    if code in _FIXED:
        pos += -pos % _SIZE[code]
        (value,) = struct.unpack_from(order + _FIXED[code], data, pos)
        if code == "b":
            if value > 1:
                raise ValueError(f"boolean {value}")
            value = bool(value)
        return value, pos + _SIZE[code]
    if code in "so":
        pos += -pos % 4
        (size,) = struct.unpack_from(order + "I", data, pos)
        start = pos + 4
        return data[start:start + size].decode("utf-8"), start + size + 1
    if code == "g":
        size = data[pos]
        return data[pos + 1:pos + 1 + size].decode("ascii"), pos + size + 2
    if code == "v":
        inner, pos = decode(data, pos, "g", big)
        value, pos = decode(data, pos, inner, big)
        return (inner, value), pos
    if code == "(":
        pos += -pos % 8
        fields = []
        for field in split_signature(sig[1:-1]):
            value, pos = decode(data, pos, field, big)
            fields.append(value)
        return tuple(fields), pos
    if code != "a":
        raise ValueError(f"unknown type code {code!r}")
    pos += -pos % 4
    (size,) = struct.unpack_from(order + "I", data, pos)
    element = sig[1:]
    pos += 4
    pos += -pos % _ALIGN[element[0]]
    end = pos + size
    if element == "y":
        return bytes(data[pos:end]), end
    if element[0] == "{":
        key_t, value_t = split_signature(element[1:-1])
        entries = {}
        while pos < end:
            pos += -pos % 8
            key, pos = decode(data, pos, key_t, big)
            entries[key], pos = decode(data, pos, value_t, big)
        return entries, end
    items = []
    while pos < end:
        value, pos = decode(data, pos, element, big)
        items.append(value)
    return items, end


def _message(serial: int, fields: list[tuple[int, str, Any]], signature: str,
             body: list[tuple[str, Any]]) -> bytes:
    payload = bytearray()
    for code, value in body:
        encode_basic(payload, code, value)
    if signature:
        fields = [*fields, (_SIGNATURE, "g", signature)]
    head = bytearray(struct.pack("<cBBBII", b"l", _METHOD_CALL, 0, 1, len(payload), serial))
    head.extend(b"\0\0\0\0")  # the fields' array length, patched below
    for field, type_code, value in fields:
        _pad(head, 8)
        head.append(field)
        encode_basic(head, "g", type_code)
        encode_basic(head, type_code, value)
    struct.pack_into("<I", head, 12, len(head) - 16)
    _pad(head, 8)
    return bytes(head + payload)


# -- the connection ------------------------------------------------------------------------------


class WireBus:
    """One authenticated connection (use `WireBus.connect`; close it with `close`)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._serial = 0
        self._buffer = b""

    @classmethod
    def connect(cls, address: str, timeout: float) -> WireBus:
        """Connect, authenticate (EXTERNAL), ``Hello``; `Unsupported` or `OSError` if not."""
        path = unix_socket_path(address)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        bus = cls(sock)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            uid = str(os.geteuid()).encode("ascii").hex().encode("ascii")
            sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
            if not bus._line().startswith(b"OK "):
                raise ConnectionRefusedError("authentication refused")
            sock.sendall(b"BEGIN\r\n")
            hello = bus.call(BUS, "/org/freedesktop/DBus", BUS, "Hello", "", [], timeout)
            if hello.error is not None:
                raise ConnectionRefusedError(f"Hello answered {hello.error}")
        except BaseException:
            bus.close()
            raise
        return bus

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill(4096)
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _fill(self, want: int) -> None:
        chunk = self._sock.recv(max(want, 4096))
        if not chunk:
            raise ConnectionResetError("the bus closed the connection")
        self._buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill(size - len(self._buffer))
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def call(self, service: str, path: str, interface: str | None, member: str,
             signature: str, body: list[tuple[str, Any]], timeout: float) -> WireReply:
        """Send one method call and return its reply (within ``timeout`` seconds)."""
        self._serial += 1
        serial = self._serial
        fields: list[tuple[int, str, Any]] = [(_PATH, "o", path), (_MEMBER, "s", member),
                                              (_DESTINATION, "s", service)]
        if interface is not None:
            fields.insert(1, (_INTERFACE, "s", interface))
        self._sock.settimeout(timeout)
        self._sock.sendall(_message(serial, fields, signature, body))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(serial)
            if reply is not None:
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)

    def _receive(self, serial: int) -> WireReply | None:
        head = self._take(16)
        big = head[:1] == b"B"
        body_size, _serial, fields_size = struct.unpack(
            (">" if big else "<") + "III", head[4:16])
        data = head + self._take(fields_size + (-(16 + fields_size) % 8) + body_size)
        try:
            return _reply(data, big, serial)
        except (struct.error, IndexError, KeyError, TypeError, RecursionError) as exc:
            raise ValueError(f"malformed message from the bus: {exc!r}") from None


def _reply(data: bytes, big: bool, serial: int) -> WireReply | None:
    """The reply to ``serial`` in the whole message ``data``, or None for any other message."""
    kind = data[1]
    fields, end = decode(data, 12, "a(yv)", big)
    if kind not in (_METHOD_RETURN, _ERROR):
        return None
    named = {code: value[1] for code, value in fields}
    if named.get(_REPLY_SERIAL) != serial:
        return None
    signature = named.get(_SIGNATURE, "")
    pos = end + (-end % 8)
    values = []
    for field in split_signature(signature):
        value, pos = decode(data, pos, field, big)
        values.append(value)
    error = named.get(_ERROR_NAME, "") if kind == _ERROR else None
    return WireReply(tuple(values), signature, error)
