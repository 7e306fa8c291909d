"""The incremental message splitter (rpc.proxy._frames): every split position, bounds, poison."""

from __future__ import annotations

import random
import struct

import pytest

from rpc.proxy import (
    CLIENT_LIMITS,
    HeaderCache,
    MessageSplitter,
    WireError,
    WireLimits,
    WireReason,
    parse_message,
)
from tests.fuzz.fuzz_wire import random_message

LIMITS = WireLimits(max_message_size=1 << 16)


def stream(n: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [random_message(rng) for _ in range(n)]


def test_golden_stream_split_at_every_position_gives_the_same_messages() -> None:
    msgs = stream(3)
    data = b"".join(msgs)
    whole = MessageSplitter(LIMITS).feed(data)
    assert [m.data for m in whole] == msgs
    for cut in range(len(data) + 1):
        splitter = MessageSplitter(LIMITS)
        got = splitter.feed(data[:cut]) + splitter.feed(data[cut:])
        assert got == whole, cut
        assert splitter.buffered == 0


def test_byte_at_a_time() -> None:
    msgs = stream(4, seed=9)
    splitter = MessageSplitter(LIMITS)
    got = []
    for i, b in enumerate(b"".join(msgs)):
        got += splitter.feed(bytes([b]))
        assert splitter.buffered <= max(len(m) for m in msgs)
        assert i >= 0
    assert [m.data for m in got] == msgs


def test_oversize_is_refused_from_its_first_16_bytes_and_nothing_is_buffered() -> None:
    header = b"l\x01\x00\x01" + struct.pack("<III", 100 << 20, 1, 16)
    splitter = MessageSplitter(CLIENT_LIMITS)
    with pytest.raises(WireError) as info:
        splitter.feed(header)
    assert info.value.reason is WireReason.TOO_LARGE
    assert splitter.buffered == 0


def test_messages_before_an_error_are_kept_and_the_splitter_is_poisoned() -> None:
    good = stream(2)
    splitter = MessageSplitter(LIMITS)
    with pytest.raises(WireError) as info:
        splitter.feed(good[0] + good[1] + b"X" * 16)
    assert [m.data for m in info.value.messages] == good
    assert info.value.reason is WireReason.BAD_FIXED_HEADER
    assert splitter.error is info.value
    with pytest.raises(WireError) as again:
        splitter.feed(good[0])
    assert again.value.reason is WireReason.POISONED and "byte order" in str(again.value)


def test_take_rest_empties_a_partial_message() -> None:
    msg = stream(1)[0]
    splitter = MessageSplitter(LIMITS)
    assert splitter.feed(msg[:20]) == []
    assert splitter.take_rest() == msg[:20]
    assert splitter.buffered == 0
    assert [m.data for m in splitter.feed(msg)] == [msg]


def test_limits_validate_themselves() -> None:
    bad: dict[str, int]
    for bad in ({"max_message_size": 8}, {"max_message_size": 1 << 28},
                {"max_header_fields": 0}, {"max_unix_fds": -1}):
        with pytest.raises(ValueError):
            WireLimits(**bad)


def test_header_cache_gives_the_same_messages_and_stays_bounded() -> None:
    cache = HeaderCache(max_entries=4, max_key=512)
    msgs = stream(50, seed=11)
    for raw in msgs + msgs:
        assert parse_message(raw, LIMITS, cache) == parse_message(raw, LIMITS)
        assert len(cache) <= 4
    repeat = msgs[0]
    parse_message(repeat, LIMITS, cache)
    order = ">I" if repeat[0:1] == b"B" else "<I"
    again = repeat[:8] + struct.pack(order, 9) + repeat[12:]  # same fields, another serial
    assert parse_message(again, LIMITS, cache).serial == 9
    small = HeaderCache(max_key=8)
    parse_message(repeat, LIMITS, small)
    assert len(small) == 0


def _reply(reply_serial: int, *, sender: str = ":1.7", error: bool = False,
           big: bool = False) -> bytes:
    from rpc.proxy import MessageType, build_message
    return build_message(MessageType.ERROR if error else MessageType.METHOD_RETURN,
                         serial=5, reply_serial=reply_serial, destination=":1.3", sender=sender,
                         error_name="org.example.Error.Bad" if error else None,
                         signature="s", body=(b"\0\0\0\x03" if big else b"\x03\0\0\0")
                         + b"abc\0", big=big)


@pytest.mark.parametrize("error", [False, True])
@pytest.mark.parametrize("big", [False, True])
def test_replies_differing_only_in_their_reply_serial_share_one_cache_entry(
        error: bool, big: bool) -> None:
    cache = HeaderCache()
    for serial in (1, 2, 0xFFFF_FFFF, 77):
        raw = _reply(serial, error=error, big=big)
        got = parse_message(raw, LIMITS, cache)
        assert got == parse_message(raw, LIMITS)
        assert got.reply_serial == serial
    assert len(cache) == 1  # one shape: every later reply was a hit


def test_a_cached_reply_shape_still_refuses_reply_serial_zero() -> None:
    cache = HeaderCache()
    parse_message(_reply(9), LIMITS, cache)
    with pytest.raises(WireError) as info:
        parse_message(_reply(0), LIMITS, cache)
    assert "reply serial 0" in str(info.value)


def test_a_reply_with_other_field_bytes_misses_the_cache() -> None:
    cache = HeaderCache()
    parse_message(_reply(9, sender=":1.7"), LIMITS, cache)
    other = parse_message(_reply(10, sender=":1.8"), LIMITS, cache)  # same length, new sender
    assert other.sender == ":1.8" and other.reply_serial == 10
    assert len(cache) == 2


def test_reply_serial_mutations_through_the_cache_match_an_uncached_parse() -> None:
    """Random messages, each re-sent with random bytes where its reply serial sits: the
    cached parse and the plain parse agree (same message or the same error)."""
    rng = random.Random(5)
    cache = HeaderCache()
    for raw in stream(400, seed=21):
        try:
            first = parse_message(raw, LIMITS, cache)
        except WireError:
            continue
        at = first.reply_serial_at
        variants = [raw]
        if at > 0:
            variants += [raw[:at] + bytes(rng.choice((0, rng.randrange(256))) for _ in range(4))
                         + raw[at + 4:] for _ in range(4)]
        for variant in variants:
            try:
                plain: object = parse_message(variant, LIMITS)
            except WireError as exc:
                plain = str(exc)
            try:
                cached: object = parse_message(variant, LIMITS, cache)
            except WireError as exc:
                cached = str(exc)
            assert cached == plain
