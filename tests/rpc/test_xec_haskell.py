"""Haskell ``show`` for Double and String; golden values were produced by GHC 9.0.2."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.xec import show_bytes, show_double, show_string

GHC_DOUBLES = [
    (0.0, "0.0"),
    (-0.0, "-0.0"),
    (1.0, "1.0"),
    (0.1, "0.1"),
    (0.01, "1.0e-2"),
    (10000000.0, "1.0e7"),
    (1234567.0, "1234567.0"),
    (12345678.0, "1.2345678e7"),
    (5e-324, "5.0e-324"),
    (1.7976931348623157e308, "1.7976931348623157e308"),
    (0.3, "0.3"),
    (100.0, "100.0"),
    (-1.5, "-1.5"),
    (1e22, "1.0e22"),
    (math.nan, "NaN"),
    (math.inf, "Infinity"),
    (-math.inf, "-Infinity"),
    # a tie between two shortest candidates: GHC rounds up where Python's repr rounds to even
    (1948657086451635.25, "1.9486570864516353e15"),
    (9999999.0, "9999999.0"),
    (99999999.0, "9.9999999e7"),
    (0.09999999999999999, "9.999999999999999e-2"),
    (2.2250738585072014e-308, "2.2250738585072014e-308"),
    (123.456, "123.456"),
    (1e-07, "1.0e-7"),
    (0.5, "0.5"),
    (2.5e-05, "2.5e-5"),
    (4.35, "4.35"),
]


@pytest.mark.parametrize(("value", "shown"), GHC_DOUBLES)
def test_show_double_matches_ghc(value: float, shown: str) -> None:
    assert show_double(value) == shown


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_show_double_reads_back(x: float) -> None:
    text = show_double(x)
    assert float(text) == x
    assert math.copysign(1.0, float(text)) == math.copysign(1.0, x)
    mantissa = text.lstrip("-").split("e")[0]
    assert "." in mantissa and mantissa[-1].isdigit()
    if "e" in text:
        assert len(mantissa.split(".")[0]) == 1  # d.ddd form


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_show_double_is_no_longer_than_repr(bits: int) -> None:
    x = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isfinite(x) and x != 0:
        ours = show_double(x).lstrip("-").split("e")[0].replace(".", "").strip("0")
        theirs = repr(x).lstrip("-").split("e")[0].replace(".", "").strip("0")
        assert len(ours) == len(theirs)  # both are shortest-digit algorithms


GHC_BYTES = [
    (b"\x0eH", '"\\SO\\&H"'),
    (b"\x0eh", '"\\SOh"'),
    (b"\xe91", '"\\233\\&1"'),
    (b"\xe9a", '"\\233a"'),
    (b"\x7f1", '"\\DEL1"'),
    (b"\"\\'", '"\\"\\\\\'"'),
    (b"\x001", '"\\NUL1"'),
    (b"\x01\x02\x1f", '"\\SOH\\STX\\US"'),
    (b"\x07\x08\t\n\x0b\x0c\r", '"\\a\\b\\t\\n\\v\\f\\r"'),
    (b"\x80\xff9", '"\\128\\255\\&9"'),
    (b"caf\xc3\xa9", '"caf\\195\\169"'),
    (b"", '""'),
    (b"plain text", '"plain text"'),
    (b"\x1b[0m", '"\\ESC[0m"'),
]


@pytest.mark.parametrize(("data", "shown"), GHC_BYTES)
def test_show_bytes_matches_ghc(data: bytes, shown: str) -> None:
    assert show_bytes(data) == shown


def test_show_string_above_latin1() -> None:
    assert show_string("\u20ac1") == '"\\8364\\&1"'
    assert show_string("\U0001f600") == '"\\128512"'


@given(st.binary(max_size=40))
def test_show_bytes_is_printable_ascii_and_quoted(data: bytes) -> None:
    text = show_bytes(data)
    assert text[0] == text[-1] == '"'
    assert all(32 <= ord(c) < 127 for c in text)
