"""The server-side WebSocket adapter (rpc/proxy/_websocket.py) against wsproto's real client side.

Everything runs in memory: bytes go from a wsproto client connection to `WebSocketServer` and
back, so each test sees exactly what a browser and the proxy would exchange.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol, Opcode

from rpc.proxy import (
    WebSocketClosed,
    WebSocketError,
    WebSocketMessage,
    WebSocketOpened,
    WebSocketRefused,
    WebSocketServer,
    origin_allowed,
)

HOST = "1.0.0.0:8080"


class Pair:
    """A wsproto client and our server, joined in memory."""

    def __init__(self, server: WebSocketServer | None = None) -> None:
        self.client = WSConnection(ConnectionType.CLIENT)
        self.server = server or WebSocketServer()
        self.server_events: list[Any] = []

    def client_sends(self, data: bytes) -> list[Any]:
        """Deliver client bytes to the server; return the client's events for the answer."""
        events = self.server.feed(data)
        self.server_events += events
        return self.to_client(self.server.data_to_send())

    def to_client(self, data: bytes) -> list[Any]:
        if data:
            self.client.receive_data(data)
        return list(self.client.events())

    def open(self, origin: str | None = "http://1.0.0.0:8080", host: str = HOST) -> list[Any]:
        headers = [] if origin is None else [(b"Origin", origin.encode())]
        return self.client_sends(self.client.send(Request(host=host, target="/json",
                                                          extra_headers=headers)))


def test_the_handshake_is_accepted_for_a_same_host_origin() -> None:
    pair = Pair()
    answer = pair.open()
    assert [type(e) for e in answer] == [AcceptConnection]
    assert pair.server_events == [WebSocketOpened(HOST, "/json", "http://1.0.0.0:8080")]
    assert pair.server.opened and not pair.server.closed
    assert pair.client.state is ConnectionState.OPEN


def test_a_foreign_origin_is_refused_with_403() -> None:
    pair = Pair()
    answer = pair.open(origin="http://evil.example")
    assert isinstance(answer[0], RejectConnection)
    assert answer[0].status_code == 403
    assert isinstance(pair.server_events[0], WebSocketRefused)
    assert pair.server_events[0].status == 403
    assert "evil.example" in pair.server_events[0].reason
    assert pair.server.closed and not pair.server.opened
    assert pair.server.feed(b"more") == []


def test_an_allow_list_replaces_the_same_host_rule() -> None:
    pair = Pair(WebSocketServer(allowed_origins=["http://ui.local"]))
    assert isinstance(pair.open(origin="http://UI.local/")[0], AcceptConnection)
    pair = Pair(WebSocketServer(allowed_origins=["http://ui.local"]))
    assert isinstance(pair.open()[0], RejectConnection)


def test_no_origin_is_allowed_unless_told_otherwise() -> None:
    assert isinstance(Pair().open(origin=None)[0], AcceptConnection)
    strict = Pair(WebSocketServer(allow_missing_origin=False))
    assert isinstance(strict.open(origin=None)[0], RejectConnection)


@pytest.mark.parametrize(("origin", "host", "allowed", "expected"), [
    ("http://1.0.0.0:8080", "1.0.0.0:8080", None, True),
    ("http://localhost", "localhost", None, True),
    ("http://LocalHost:80", "localhost", None, True),
    ("https://h", "h:443", None, True),
    ("https://h", "h", None, False),
    ("http://h:8080", "h:8081", None, False),
    ("http://other", "h", None, False),
    ("null", "h", None, False),
    ("file://", "h", None, False),
    ("http://[::1]:8080", "[::1]:8080", None, True),
    ("http://user@h", "h", None, False),
    ("http://h:99999", "h", None, False),
    ("null", "h", ["null"], True),
    ("http://anything", "h", ["*"], True),
    ("http://a", "a", [], False),
    (None, "h", None, True),
])
def test_origin_allowed(origin: str | None, host: str, allowed: list[str] | None,
                        expected: bool) -> None:
    assert origin_allowed(origin, host, allowed) is expected


def test_text_frames_both_ways_and_binary_in() -> None:
    pair = Pair()
    pair.open()
    pair.client_sends(pair.client.send(TextMessage(data='{"id":1}')))
    pair.client_sends(pair.client.send(BytesMessage(data=b'{"id":2}')))
    assert pair.server_events[1:] == [WebSocketMessage('{"id":1}'), WebSocketMessage(b'{"id":2}')]
    events = pair.to_client(pair.server.send_text('{"id":3,"type":"response"}'))
    assert events == [TextMessage(data='{"id":3,"type":"response"}')]


def test_fragmented_messages_are_joined() -> None:
    pair = Pair()
    pair.open()
    pair.client_sends(pair.client.send(TextMessage(data='{"id"', message_finished=False)))
    assert pair.server_events[1:] == []
    pair.client_sends(pair.client.send(TextMessage(data=":", message_finished=False)))
    pair.client_sends(pair.client.send(Ping(payload=b"between")))  # control inside a message
    pair.client_sends(pair.client.send(TextMessage(data="1}", message_finished=True)))
    assert pair.server_events[1:] == [WebSocketMessage('{"id":1}')]


def test_a_message_fed_one_byte_at_a_time_arrives_whole() -> None:
    pair = Pair()
    handshake = pair.client.send(Request(host=HOST, target="/"))
    for i in range(len(handshake)):
        pair.client_sends(handshake[i:i + 1])
    frames = pair.client.send(TextMessage(data="é" * 50)) + pair.client.send(Ping(b"p"))
    answers: list[Any] = []
    for i in range(len(frames)):
        answers += pair.client_sends(frames[i:i + 1])
    assert pair.server_events[1:] == [WebSocketMessage("é" * 50)]
    assert answers[-1] == Pong(payload=b"p")


def test_ping_is_answered_with_pong() -> None:
    pair = Pair()
    pair.open()
    assert pair.client_sends(pair.client.send(Ping(payload=b"hi"))) == [Pong(payload=b"hi")]
    assert pair.server_events[1:] == []


def test_a_close_from_the_client_is_answered_and_reported() -> None:
    pair = Pair()
    pair.open()
    answer = pair.client_sends(pair.client.send(CloseConnection(code=1000, reason="bye")))
    assert pair.server_events[1:] == [WebSocketClosed(1000, "bye")]
    assert isinstance(answer[0], CloseConnection)
    assert pair.client.state is ConnectionState.CLOSED
    assert pair.server.closed
    with pytest.raises(WebSocketError):
        pair.server.send_text("late")
    assert pair.server.feed(b"ignored") == []


def test_the_server_closes() -> None:
    pair = Pair()
    pair.open()
    events = pair.to_client(pair.server.close(1001, "going away"))
    assert events == [CloseConnection(code=1001, reason="going away")]
    assert pair.server.closed
    assert pair.server.close() == b""


def test_an_oversized_message_closes_with_1009() -> None:
    pair = Pair(WebSocketServer(max_message=100))
    pair.open()
    answer = pair.client_sends(pair.client.send(TextMessage(data="a" * 101)))
    assert pair.server_events[1:] == [WebSocketClosed(1009, "message larger than 100 bytes")]
    assert isinstance(answer[0], CloseConnection)
    assert answer[0].code == 1009


def test_an_oversized_fragmented_message_closes_before_it_is_complete() -> None:
    pair = Pair(WebSocketServer(max_message=100))
    pair.open()
    for _ in range(2):
        pair.client_sends(pair.client.send(BytesMessage(data=b"a" * 50, message_finished=False)))
    assert pair.server_events[1:] == []
    pair.client_sends(pair.client.send(BytesMessage(data=b"a", message_finished=False)))
    assert pair.server_events[1:] == [WebSocketClosed(1009, "message larger than 100 bytes")]


def test_a_huge_announced_frame_is_refused_from_its_first_bytes() -> None:
    pair = Pair(WebSocketServer(max_message=1000))
    pair.open()
    proto = FrameProtocol(client=True, extensions=[])
    frame = bytes(proto._serialize_frame(Opcode.BINARY, b"x" * 70000))
    pair.client_sends(frame[:2000])  # a 64-bit length header, then only part of the payload
    assert pair.server_events[1:] == [WebSocketClosed(1009, "message larger than 1000 bytes")]


def test_the_end_of_the_stream_is_an_abnormal_close() -> None:
    pair = Pair()
    pair.open()
    pair.client_sends(b"")
    assert pair.server_events[1:] == [WebSocketClosed(1006, "the stream ended without a close")]


def test_the_end_of_the_stream_during_the_handshake() -> None:
    server = WebSocketServer()
    assert server.feed(b"GET / HTTP/1.1\r\n") == []
    assert server.feed(b"") == [WebSocketClosed(1006, "the stream ended without a close")]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    (b"\x16\x03\x01 tls hello\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n", 400),
])
def test_a_request_that_is_not_a_websocket_upgrade_is_refused(request_bytes: bytes,
                                                             status: int) -> None:
    server = WebSocketServer()
    events = server.feed(request_bytes)
    assert len(events) == 1 and isinstance(events[0], WebSocketRefused)
    assert events[0].status == status
    assert server.data_to_send().startswith(b"HTTP/1.1 %d" % status)
    assert server.closed


def test_a_bad_frame_closes_with_a_protocol_error() -> None:
    pair = Pair()
    pair.open()
    unmasked = bytes(FrameProtocol(client=False, extensions=[])._serialize_frame(
        Opcode.TEXT, b"x"))  # a client must mask its frames
    answer = pair.client_sends(unmasked)
    assert isinstance(pair.server_events[1], WebSocketClosed)
    assert pair.server_events[1].code == 1002
    assert isinstance(answer[0], CloseConnection) and answer[0].code == 1002


def test_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    pair = Pair()
    pair.open()
    frame = bytes(FrameProtocol(client=True, extensions=[])._serialize_frame(Opcode.TEXT,
                                                                              b"\xff\xfe"))
    pair.client_sends(frame)
    assert pair.server_events[1:][0].code == 1007


@given(st.binary(max_size=300))
def test_any_bytes_after_the_handshake_never_crash(data: bytes) -> None:
    pair = Pair()
    pair.open()
    events = pair.server.feed(data)
    assert all(isinstance(e, (WebSocketMessage, WebSocketClosed)) for e in events)
    pair.server.data_to_send()


@given(st.binary(max_size=300))
def test_any_bytes_as_a_handshake_never_crash(data: bytes) -> None:
    server = WebSocketServer()
    events = server.feed(data) + server.feed(b"")
    assert all(isinstance(e, (WebSocketRefused, WebSocketClosed)) for e in events)
