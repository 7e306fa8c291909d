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
