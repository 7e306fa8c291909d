"""Fuzzing the wire core: thousands of malformed, truncated, bit-flipped and hostile inputs per
run end in a valid parse or a WireError, never another exception, never a hang (the splitter
is bounded, and the per-test timeout would catch a loop). The same generators drive the
standalone ``tests/fuzz/fuzz_wire.py``."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    MessageSplitter,
    ServerAuth,
    WireError,
    WireLimits,
    always_denied,
    decode_body,
    parse_message,
)
from rpc.proxy._auth import AuthError
from tests.fuzz.fuzz_wire import exercise, mutate, random_message, run

LIMITS = WireLimits(max_message_size=1 << 16)


def test_seeded_mutations_of_valid_messages_never_crash() -> None:
    inputs, parsed, rejected, crashes = run(3000, seed=20260303, report_every=1e9)
    assert crashes == 0
    assert inputs == 3000 and parsed > 300 and rejected > 1200  # both paths exercised


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_wire_error(data: bytes) -> None:
    for attempt in (data, b"l\x01\x00\x01" + data, b"B\x04\x00\x01" + data):
        try:
            exercise(attempt, random.Random(len(attempt)), LIMITS)
        except WireError:
            pass


@given(st.integers(0, 2**32 - 1), st.data())
def test_hypothesis_driven_mutations(seed: int, data: st.DataObject) -> None:
    rng = random.Random(seed)
    base = random_message(rng)
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(buf) - 1))
        buf[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    for attempt in (bytes(buf), bytes(buf[:cut]), mutate(rng, base, [base])):
        try:
            exercise(attempt, rng, LIMITS)
        except WireError:
            pass


@given(st.lists(st.sampled_from([0, 1, 4, 7, 16, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF]),
                min_size=3, max_size=3), st.sampled_from([b"l", b"B"]))
def test_hostile_length_fields(lengths: list[int], endian: bytes) -> None:
    fmt = "<III" if endian == b"l" else ">III"
    body_len, serial, fields_len = lengths
    raw = endian + b"\x01\x00\x01" + struct.pack(fmt, body_len, serial, fields_len)
    splitter = MessageSplitter(LIMITS)
    try:
        splitter.feed(raw + b"\0" * 64)
    except WireError:
        return
    assert splitter.buffered <= LIMITS.max_message_size


def test_a_flood_of_partial_data_stays_bounded() -> None:
    header = b"l\x01\x00\x01" + struct.pack("<III", 60000, 1, 8)
    splitter = MessageSplitter(LIMITS)
    assert splitter.feed(header) == []
    for _ in range(100):
        try:
            splitter.feed(b"\0" * 1000)
        except WireError:
            break
        assert splitter.buffered <= 16 + 8 + 60000


@pytest.mark.parametrize("seed", range(4))
def test_parsed_messages_survive_every_later_step(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        raw = random_message(rng)
        msg = parse_message(raw, LIMITS)
        decode_body(msg, LIMITS)
        always_denied(msg)
        assert parse_message(msg.data, LIMITS) == msg


@given(st.binary(max_size=200))
def test_auth_never_raises_anything_but_auth_error(data: bytes) -> None:
    server = ServerAuth("0" * 32)
    for chunk in (b"\0", data, b"\r\n", data):
        try:
            server.feed(chunk)
        except AuthError:
            return


#: Inputs that once crashed the parser (found by tests/fuzz/fuzz_wire.py, a million inputs):
#: a header field array whose length counted the padding after its last field.
REGRESSIONS = [
    "42030101000000003a66a0290000003004017300000000216f72672e667265656465736b746f702e44427573"
    "2e4572726f722e4661696c65640000000000000005017500020b22d7",
    "420200010000000098e79bff0000003806017300000000146f72672e667265656465736b746f702e44427573"
    "00000000070173000000000b6f72672e785f792e5a2d710000000000080167000a28617b626e7d296e716700"
    "0000000e00000000000000007f50000000000001c261e20f78c4017600",
    "42040101000000000314ddba0000002001016f00000000152f6f72472f667265656465736b746f702f444275"
    "730000000201730000000003636f6d2e782e7900030173000000000548656c6c6f0000000601730000000017"
    "636f6d2e6369747229782e78656e636c69656e742e646200",
    "6c0200010000000029a2255e4800000002017300140000006f72672e667265656465736b746f702e44427573"
    "0000000005017500c9ec0a000601730003000000612e62000000000008016700096776617b69787d61790000"
    "07617b71747d6976000176000169000077a8030b30000000b842758700000000e0b7d1bb3df25efa95e78c080000000013d18eaa9d5b9083d254504a0000000001492b2a2ac1e14c03000000c373a6",
]


@pytest.mark.parametrize("hexed", REGRESSIONS)
def test_regressions_split_anywhere_raise_wire_error(hexed: str) -> None:
    data = bytes.fromhex(hexed)
    for cut in range(len(data) + 1):
        splitter = MessageSplitter(LIMITS)
        with pytest.raises(WireError, match="padding"):
            splitter.feed(data[:cut])
            splitter.feed(data[cut:])
