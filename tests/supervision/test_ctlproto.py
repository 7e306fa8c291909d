"""The control socket protocol (pure): frames, bounds, request checks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervision.control._proto import (
    MAX_FRAME,
    BadRequest,
    FrameParser,
    FrameTooLarge,
    ProtocolError,
    answer,
    check_request,
    error,
    event,
    frame,
)

MESSAGES = [
    {"id": 1, "op": "hello", "args": {"version": 1}},
    {"id": 2, "op": "tree", "args": {}},
    answer(2, {"path": "/", "children": ()}),  # arrays decode as tuples
    event(3, {"seq": 4, "kind": "crashed"}),
    error(5, "no running actor at /x", "not-found"),
]
GOLDEN = b"".join(frame(m) for m in MESSAGES)


def test_golden_bytes_split_at_every_position() -> None:
    for cut in range(len(GOLDEN) + 1):
        parser = FrameParser()
        got = parser.feed(GOLDEN[:cut]) + parser.feed(GOLDEN[cut:])
        assert [dict(m) for m in got] == MESSAGES
        assert parser.buffered == 0


def test_byte_at_a_time() -> None:
    parser = FrameParser()
    got = [m for b in GOLDEN for m in parser.feed(bytes([b]))]
    assert len(got) == len(MESSAGES)


def test_views_of_a_reused_receive_buffer() -> None:
    """The server and the client feed views of one buffer they receive into again: what the
    parser keeps (a partial frame) and what it returns must not change when the buffer does."""
    for cut in range(1, len(GOLDEN)):
        parser = FrameParser()
        buf = bytearray(len(GOLDEN))
        view = memoryview(buf)
        got = []
        for chunk in (GOLDEN[:cut], GOLDEN[cut:]):
            buf[:len(chunk)] = chunk
            got += parser.feed(view[:len(chunk)])
            buf[:] = b"\xff" * len(buf)  # the next receive overwrites it
        assert [dict(m) for m in got] == MESSAGES
        assert parser.buffered == 0


def test_oversize_frame_is_refused_and_the_buffer_stays_bounded() -> None:
    parser = FrameParser(max_frame=1024)
    with pytest.raises(FrameTooLarge, match="frame of 1025 bytes announced; the limit is 1024"):
        parser.feed(struct.pack(">I", 1025) + b"x" * 100)
    assert parser.buffered == 0
    with pytest.raises(FrameTooLarge):
        frame("y" * (MAX_FRAME + 1))


def test_undecodable_frame() -> None:
    with pytest.raises(ProtocolError, match="undecodable"):
        FrameParser().feed(struct.pack(">I", 3) + b"\xc1\xc1\xc1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "must be a map"),
        ({"op": "tree"}, "integer 'id'"),
        ({"id": True, "op": "tree"}, "integer 'id'"),
        ({"id": 1, "op": "explode"}, "unknown operation 'explode'"),
        ({"id": 1, "op": "tree", "args": []}, "'args' must be a map"),
        ({"id": 1, "op": "state", "args": {}}, "missing argument\\(s\\) path"),
        ({"id": 1, "op": "vm.task", "args": {"uuid": "u"}}, "missing argument\\(s\\) task"),
    ],
)
def test_bad_requests(value: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_request(value)


def test_good_request() -> None:
    req = check_request({"id": 7, "op": "state", "args": {"path": "/a", "timeout": 1}})
    assert (req.id, req.op, dict(req.args)) == (7, "state", {"path": "/a", "timeout": 1})


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_errors(data: bytes) -> None:
    parser = FrameParser(max_frame=4096)
    try:
        parser.feed(data)
    except ProtocolError:
        pass
    assert parser.buffered <= len(data)
