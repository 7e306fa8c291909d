"""Pure tests of the xenstore wire codec: framing, bounds, request and reply payloads."""

from __future__ import annotations

import dataclasses
import errno
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen import xenstore
from xen.xenstore import (
    HEADER_SIZE,
    PAYLOAD_MAX,
    Access,
    Control,
    Directory,
    DirectoryPart,
    GetDomainPath,
    GetPerms,
    Introduce,
    IsDomainIntroduced,
    LocalProtocolError,
    Mkdir,
    Op,
    Packet,
    PacketParser,
    PacketTooLarge,
    PayloadTooLarge,
    Perm,
    Read,
    Release,
    RemoteProtocolError,
    ResetWatches,
    Resume,
    Rm,
    SetPerms,
    SetTarget,
    TransactionEnd,
    TransactionStart,
    Unwatch,
    Watch,
    Write,
    XenstoreError,
    decode_reply,
    decode_request,
    encode_reply,
    error_packet,
    watch_event_packet,
)

# READ "/local/domain/0/name", req_id 7, tx_id 3 (header: four little-endian uint32).
GOLDEN_READ = (
    b"\x02\x00\x00\x00\x07\x00\x00\x00\x03\x00\x00\x00\x15\x00\x00\x00/local/domain/0/name\x00"
)
# WRITE "/a" = "v\0x" (values may hold NULs), req_id 1.
GOLDEN_WRITE = b"\x0b\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x06\x00\x00\x00/a\x00v\x00x"
# WATCH_EVENT "/a/b" token "tok".
GOLDEN_EVENT = b"\x0f\x00\x00\x00" + b"\x00" * 8 + b"\x09\x00\x00\x00/a/b\x00tok\x00"
# TRANSACTION_START with an empty payload.
GOLDEN_EMPTY = b"\x06\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
GOLDEN = GOLDEN_READ + GOLDEN_WRITE + GOLDEN_EVENT + GOLDEN_EMPTY
GOLDEN_PACKETS = [
    Packet(Op.READ, 7, 3, b"/local/domain/0/name\x00"),
    Packet(Op.WRITE, 1, 0, b"/a\x00v\x00x"),
    Packet(Op.WATCH_EVENT, 0, 0, b"/a/b\x00tok\x00"),
    Packet(Op.TRANSACTION_START, 9, 0, b""),
]


def test_golden_bytes_encode_and_decode() -> None:
    assert b"".join(p.encode() for p in GOLDEN_PACKETS) == GOLDEN
    assert PacketParser().feed(GOLDEN) == GOLDEN_PACKETS
    assert Read("/local/domain/0/name").encode(7, 3).encode() == GOLDEN_READ
    assert Write("/a", b"v\0x").encode(1).encode() == GOLDEN_WRITE
    assert watch_event_packet("/a/b", b"tok").encode() == GOLDEN_EVENT


def test_golden_bytes_split_at_every_position() -> None:
    for cut in range(len(GOLDEN) + 1):
        parser = PacketParser()
        got = parser.feed(GOLDEN[:cut]) + parser.feed(GOLDEN[cut:])
        assert got == GOLDEN_PACKETS, cut
        assert parser.buffered == 0


def test_golden_bytes_one_byte_at_a_time() -> None:
    parser = PacketParser()
    got = [p for i in range(len(GOLDEN)) for p in parser.feed(GOLDEN[i : i + 1])]
    assert got == GOLDEN_PACKETS


@given(st.lists(st.integers(min_value=0, max_value=len(GOLDEN)), max_size=6))
def test_golden_bytes_arbitrary_chunks(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(GOLDEN)]
    parser = PacketParser()
    got = [p for a, b in itertools.pairwise(bounds) for p in parser.feed(GOLDEN[a:b])]
    assert got == GOLDEN_PACKETS


def test_oversize_header_raises_and_buffer_stays_bounded() -> None:
    parser = PacketParser()
    bad = Packet(Op.WRITE, 5, 0, b"").encode()[:12] + (PAYLOAD_MAX + 1).to_bytes(4, "little")
    with pytest.raises(PayloadTooLarge, match="4097-byte payload") as info:
        parser.feed(GOLDEN_READ + bad + b"x" * 100_000)
    assert info.value.packets == (GOLDEN_PACKETS[0],)  # what came before is not lost
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="unusable"):
        parser.feed(GOLDEN_READ)
    assert parser.buffered == 0


def test_partial_packet_buffer_is_bounded_by_one_packet() -> None:
    parser = PacketParser()
    big = Packet(Op.WRITE, 1, 0, b"/a\0" + b"v" * (PAYLOAD_MAX - 3)).encode()
    assert parser.feed(big[:-1]) == []
    assert parser.buffered == HEADER_SIZE + PAYLOAD_MAX - 1
    assert len(parser.feed(big[-1:] + big[:10])) == 1
    assert parser.buffered == 10


def test_encode_refuses_oversize_and_bad_header_fields() -> None:
    Packet(Op.WRITE, 0, 0, b"x" * PAYLOAD_MAX).encode()
    with pytest.raises(PacketTooLarge):
        Packet(Op.WRITE, 0, 0, b"x" * (PAYLOAD_MAX + 1)).encode()
    with pytest.raises(LocalProtocolError, match="req_id"):
        Packet(Op.READ, 2**32, 0, b"").encode()
    with pytest.raises(PacketTooLarge):
        watch_event_packet("/" + "a" * 3000, b"t" * 2000)


def test_op_numbers_match_xs_wire_h() -> None:
    ops = [Op.DEBUG, Op.DIRECTORY, Op.WATCH_EVENT, Op.ERROR, Op.RESET_WATCHES]
    assert ops == [0, 1, 15, 16, 21]
    assert Op.CONTROL is Op.DEBUG
    assert Op.DIRECTORY_PART == 22
    assert Op.INVALID == 0xFFFF


REQUESTS = [
    Read("/a/b"),
    Mkdir("rel/path"),
    Rm("/a"),
    Directory("/"),
    GetPerms("/a"),
    Write("/a", b""),
    Write("/a", b"with\0nul"),
    DirectoryPart("/a", 40),
    SetPerms("/a", (Perm(3, Access.READ), Perm(0, Access.BOTH), Perm(7, Access.NONE))),
    Watch("@releaseDomain", b"tok"),
    Unwatch("/a", b"t"),
    TransactionStart(),
    TransactionEnd(True),
    TransactionEnd(False),
    Introduce(5, 1234, 7),
    Release(5),
    GetDomainPath(65535),
    IsDomainIntroduced(0),
    Resume(3),
    SetTarget(4, 2),
    ResetWatches(),
    Control((b"print", b"hello")),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_request_round_trip(request_: xenstore.Request) -> None:
    packet = request_.encode(req_id=11, tx_id=2)
    assert (packet.op, packet.req_id, packet.tx_id) == (request_.OP, 11, 2)
    assert decode_request(packet) == request_
    assert dataclasses.is_dataclass(request_)
    fields = dataclasses.fields(request_)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(request_, fields[0].name, None)


def test_request_payload_shapes_follow_the_spec() -> None:
    assert Read("/a").payload() == b"/a\0"
    assert Write("/a", b"v").payload() == b"/a\0v"
    assert Watch("/a", b"t").payload() == b"/a\0t\0"
    assert TransactionStart().payload() == b"\0"
    assert TransactionEnd(True).payload() == b"T\0"
    assert Introduce(1, 2, 3).payload() == b"1\0002\0003\0"
    assert SetPerms("/a", (Perm(0, Access.NONE),)).payload() == b"/a\0n0\0"


@pytest.mark.parametrize(
    ("op", "payload", "name"),
    [
        (Op.READ, b"/a", "EINVAL"),  # not NUL-terminated
        (Op.READ, b"/a\0/b\0", "EINVAL"),  # two strings
        (Op.READ, b"", "EINVAL"),
        (Op.READ, b"/\xff\0", "EINVAL"),  # not ASCII
        (Op.WRITE, b"/a", "EINVAL"),
        (Op.WATCH, b"/a\0", "EINVAL"),
        (Op.TRANSACTION_END, b"X\0", "EINVAL"),
        (Op.RELEASE, b"65536\0", "EINVAL"),
        (Op.RELEASE, b"-1\0", "EINVAL"),
        (Op.INTRODUCE, b"1\0two\0003\0", "EINVAL"),
        (Op.SET_PERMS, b"/a\0", "EINVAL"),
        (Op.SET_PERMS, b"/a\0x0\0", "EINVAL"),
        (Op.SET_PERMS, b"/a\0r\0", "EINVAL"),
        (Op.DIRECTORY_PART, b"/a\0-1\0", "EINVAL"),
        (Op.RESTRICT, b"1\0", "ENOSYS"),
        (Op.WATCH_EVENT, b"/a\0t\0", "ENOSYS"),
        (Op.ERROR, b"EINVAL\0", "ENOSYS"),
        (Op.INVALID, b"", "ENOSYS"),
        (999, b"", "ENOSYS"),
    ],
)
def test_bad_requests_are_named_errors(op: int, payload: bytes, name: str) -> None:
    with pytest.raises(XenstoreError) as info:
        decode_request(Packet(op, 1, 0, payload))
    assert info.value.name == name
    assert info.value.errno == getattr(errno, name)


def test_replies_encode_and_decode() -> None:
    cases: list[tuple[int, object, bytes]] = [
        (Op.READ, b"val\0ue", b"val\0ue"),
        (Op.DIRECTORY, ["a", "b"], b"a\0b\0"),
        (Op.DIRECTORY, [], b""),
        (Op.GET_PERMS, (Perm(1, Access.WRITE), Perm(2, Access.READ)), b"w1\0r2\0"),
        (Op.TRANSACTION_START, 42, b"42\0"),
        (Op.GET_DOMAIN_PATH, "/local/domain/3", b"/local/domain/3\0"),
        (Op.IS_DOMAIN_INTRODUCED, True, b"T\0"),
        (Op.IS_DOMAIN_INTRODUCED, False, b"F\0"),
        (Op.DIRECTORY_PART, (7, ["a", "b"], False), b"7\0a\0b\0"),
        (Op.DIRECTORY_PART, (7, ["c"], True), b"7\0c\0\0"),
        (Op.DIRECTORY_PART, (7, [], True), b"7\0\0"),
    ]
    for op, value, payload in cases:
        assert encode_reply(op, value) == payload
        assert decode_reply(op, payload) == value
    assert encode_reply(Op.WRITE, "OK") == b"OK\0"
    assert decode_reply(Op.WRITE, b"OK\0") == "OK"


def test_error_replies() -> None:
    packet = error_packet("EAGAIN", 4, 9)
    assert (packet.op, packet.req_id, packet.tx_id, packet.payload) == (Op.ERROR, 4, 9, b"EAGAIN\0")
    with pytest.raises(XenstoreError) as info:
        decode_reply(Op.ERROR, packet.payload)
    assert info.value.name == "EAGAIN"
    with pytest.raises(XenstoreError) as info:
        decode_reply(Op.ERROR, b"EWHATEVER\0")
    assert info.value.name == "EINVAL"  # what libxenstore does with an unknown name
    with pytest.raises(ValueError, match="unknown"):
        XenstoreError("ENOTANERROR")


def test_perm_strings() -> None:
    assert str(Perm(0, Access.BOTH)) == "b0"
    assert Perm.parse("r65535") == Perm(65535, Access.READ)
    assert Perm.parse(b"n7") == Perm(7, Access.NONE)
    assert Access.BOTH.can_read and Access.BOTH.can_write
    assert Access.READ.can_read and not Access.READ.can_write
    assert not Access.NONE.can_read
    for bad in ("", "r", "q1", "r-1", "r1x", "r65536", "R1"):
        with pytest.raises(XenstoreError, match="EINVAL"):
            Perm.parse(bad)


def test_package_all_resolves() -> None:
    for name in xenstore.__all__:
        assert hasattr(xenstore, name), name
