"""Versioned msgpack codec: round trips, registered types, and clear errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import CODEC_VERSION, CodecError, decode, encode, wire_type


@wire_type("test.color")
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@wire_type("test.point")
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int
    label: str = ""
    color: Color = Color.RED


@wire_type("test.shape")
@dataclass(frozen=True, slots=True)
class Shape:
    points: tuple[Point, ...]
    meta: dict[str, int]


def test_round_trip_of_nested_registered_types() -> None:
    shape = Shape((Point(1, 2), Point(3, 4, "b", Color.BLUE)), {"z": 1})
    assert decode(encode(shape)) == shape


def test_frame_carries_the_version() -> None:
    frame = msgpack.unpackb(encode("x"))
    assert frame == [CODEC_VERSION, "x"]


def test_unknown_version_is_rejected() -> None:
    with pytest.raises(CodecError, match="unsupported message version 99"):
        decode(msgpack.packb([99, "x"]))


def test_not_a_frame() -> None:
    with pytest.raises(CodecError, match="versioned"):
        decode(msgpack.packb({"a": 1}))


def test_truncated_input() -> None:
    data = encode(Point(1, 2))
    with pytest.raises(CodecError):
        decode(data[:-3])


def test_unregistered_type_cannot_be_encoded() -> None:
    @dataclass
    class Loose:
        a: int

    with pytest.raises(CodecError, match="Loose"):
        encode(Loose(1))


def test_unknown_tag_and_unknown_field() -> None:
    bogus = msgpack.packb([CODEC_VERSION, msgpack.ExtType(1, msgpack.packb(["nope", {}]))])
    with pytest.raises(CodecError, match="unknown wire type 'nope'"):
        decode(bogus)
    extra = msgpack.packb(
        [CODEC_VERSION, msgpack.ExtType(1, msgpack.packb(["test.point", {"x": 1, "y": 2, "q": 3}]))]
    )
    with pytest.raises(CodecError, match="no field"):
        decode(extra)


def test_duplicate_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="already used"):

        @wire_type("test.point")
        @dataclass(frozen=True)
        class Other:
            a: int


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5).map(tuple)
    | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@given(plain)
def test_plain_values_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


@given(st.binary(max_size=64))
def test_garbage_never_escapes_as_another_exception(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass
