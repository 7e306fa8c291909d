"""NUL framing of JSON texts (rpc/proxy/_jsonstream.py): golden splits, end of stream, bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import JsonFrameTooLarge, NulSplitter, encode_json, json_to_dbus, nul_frame

GOLDEN = b'{"id":1,"args":[]}\0{"id":2,"args":["a\\u0000b"]}\0{"x":"\xc3\xa9"}\0'
TEXTS = [b'{"id":1,"args":[]}', b'{"id":2,"args":["a\\u0000b"]}', b'{"x":"\xc3\xa9"}']


def test_one_feed_gives_every_text() -> None:
    splitter = NulSplitter()
    assert splitter.feed(GOLDEN) == TEXTS
    assert splitter.buffered == 0
    assert not splitter.ended


@pytest.mark.parametrize("cut", range(len(GOLDEN) + 1))
def test_a_split_at_every_position_gives_the_same_texts(cut: int) -> None:
    splitter = NulSplitter()
    assert splitter.feed(GOLDEN[:cut]) + splitter.feed(GOLDEN[cut:]) == TEXTS


@given(st.lists(st.integers(0, len(GOLDEN)), max_size=8))
def test_any_chunking_gives_the_same_texts(cuts: list[int]) -> None:
    splitter = NulSplitter()
    bounds = [0, *sorted(cuts), len(GOLDEN)]
    out = [t for a, b in itertools.pairwise(bounds) for t in splitter.feed(GOLDEN[a:b])]
    assert out == TEXTS


def test_an_empty_segment_ends_the_stream_and_later_data_is_ignored() -> None:
    splitter = NulSplitter()
    assert splitter.feed(b"a\0\0b\0") == [b"a"]
    assert splitter.ended
    assert splitter.feed(b"c\0") == []
    assert splitter.buffered == 0


def test_a_nul_at_the_start_ends_the_stream() -> None:
    splitter = NulSplitter()
    assert splitter.feed(b"\0") == []
    assert splitter.ended


def test_an_oversize_text_is_refused_and_the_buffer_stays_bounded() -> None:
    splitter = NulSplitter(max_message=10)
    assert splitter.feed(b"0123456789") == []
    with pytest.raises(JsonFrameTooLarge, match="limit of 10"):
        splitter.feed(b"a")
    assert splitter.buffered == 0
    with pytest.raises(JsonFrameTooLarge):  # poisoned: the stream cannot resynchronise
        splitter.feed(b"\0{}\0")


def test_an_oversize_text_inside_one_feed_is_refused() -> None:
    splitter = NulSplitter(max_message=4)
    with pytest.raises(JsonFrameTooLarge):
        splitter.feed(b"ab\0" + b"x" * 5 + b"\0")


def test_a_text_of_exactly_the_limit_passes() -> None:
    assert NulSplitter(max_message=4).feed(b"abcd\0") == [b"abcd"]


def test_nul_frame_appends_one_nul_and_refuses_what_would_break_the_stream() -> None:
    assert nul_frame(b"{}") == b"{}\0"
    for bad in (b"", b"a\0b"):
        with pytest.raises(ValueError):
            nul_frame(bad)


def test_a_message_goes_out_framed_and_comes_back_through_the_splitter() -> None:
    text = ('{"type":"signal","id":3,"path":"/","method":"m","interface":"a.b",'
            '"args":["x\\u0000y"]}')
    with pytest.raises(ValueError, match="NUL"):  # a DBus string cannot hold NUL
        json_to_dbus(text)
    ok = json_to_dbus(text.replace("\\u0000", ""))
    framed = nul_frame(encode_json(ok))
    assert NulSplitter().feed(framed) == [encode_json(ok)]
