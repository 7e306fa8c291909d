"""The proxy's wire core against a real dbus-daemon: a client's bytes (written by jeepney) go
through ServerAuth, the splitter, the always-denied checks and the call table to the bus over
a connection authenticated by BusAuth, and the bus's answers come back mapped to the client's
own serials, once each. No actors: one thread drives the pure cores and one socket."""

from __future__ import annotations

import os
import socket
import time

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.low_level import Message

from rpc.proxy import (
    BUS_LIMITS,
    BusAuth,
    CallTable,
    Forward,
    MessageSplitter,
    MessageType,
    ServerAuth,
    WireMessage,
    always_denied,
    bus_auth_line,
    decode_body,
)

pytestmark = pytest.mark.integration
BUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                  interface="org.freedesktop.DBus")


def connect(address: str) -> socket.socket:
    path = address.split("unix:path=", 1)[1].split(",", 1)[0]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    sock.connect(path)
    return sock


def test_a_client_session_through_the_wire_core(bus_address: str) -> None:
    client_bytes = b"\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n" + b"".join([
        new_method_call(BUS, "Hello").serialise(serial=1),
        new_method_call(BUS, "AddMatch", "s", ("type='signal',eavesdrop='true'",)
                        ).serialise(serial=2),
        new_method_call(BUS, "ListNames").serialise(serial=1),  # a reused client serial
        new_method_call(BUS, "GetId").serialise(serial=3),
    ])
    server = ServerAuth("0123456789abcdef0123456789abcdef")
    result = server.feed(client_bytes)
    assert result.done and result.send.startswith(b"OK ")
    client_msgs = MessageSplitter().feed(result.leftover)
    assert [m.member for m in client_msgs] == ["Hello", "AddMatch", "ListNames", "GetId"]

    sock = connect(bus_address)
    try:
        auth = BusAuth(bus_auth_line(uid=os.getuid()))
        sock.sendall(auth.start())
        deadline = time.monotonic() + 5
        while not (step := auth.feed(sock.recv(4096))).done:
            assert time.monotonic() < deadline
        leftover = step.leftover
        table = CallTable()
        denied = []
        for msg in client_msgs:
            reason = always_denied(msg)
            if reason:
                denied.append((msg.member, reason))
                continue
            decision = table.from_client(msg)
            assert isinstance(decision, Forward)
            sock.sendall(decision.message.data)
        assert denied == [("AddMatch", "AddMatch with eavesdrop")]
        assert table.pending == 3

        splitter = MessageSplitter(BUS_LIMITS)
        to_client: list[WireMessage] = []
        incoming = splitter.feed(leftover)
        while table.pending:
            assert time.monotonic() < deadline + 5, "the bus did not answer"
            for msg in incoming:
                back = table.from_bus(msg)
                if isinstance(back, Forward):
                    to_client.append(back.message)
            if table.pending:
                incoming = splitter.feed(sock.recv(65536))
    finally:
        sock.close()
    replies = [m for m in to_client if m.type == MessageType.METHOD_RETURN]
    assert sorted(m.reply_serial or 0 for m in replies) == [1, 1, 3]
    hello, names, bus_id = replies
    unique = decode_body(hello, BUS_LIMITS)[0]
    assert unique.startswith(":") and unique in decode_body(names, BUS_LIMITS)[0]
    assert len(decode_body(bus_id, BUS_LIMITS)[0]) == 32
    assert Message.from_buffer(hello.data).header.fields  # jeepney reads what we forward
