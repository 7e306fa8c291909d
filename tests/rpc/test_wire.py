"""The fast wire codec gives jeepney's bytes and values, and refuses what jeepney refuses."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jeepney.low_level import Endianness, Header, Message, MessageType, Parser

from rpc.dbus._marshal import serialise
from rpc.dbus._messages import error_reply, method_call, method_return, signal
from rpc.dbus._wire import MAX_MESSAGE, WireError, WireParser, parse_message, split

BASIC = "ybnqiuxtdsog"
_PATH = st.lists(st.text("abcXYZ019_", min_size=1, max_size=5), max_size=3).map(
    lambda parts: "/" + "/".join(parts))
_SIG = st.sampled_from(["s", "i", "b", "as", "a{ss}", "(is)", "ao", "v", "ay", "d"])


def _basic(code: str) -> st.SearchStrategy[Any]:
    bits = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
            "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1),
            "x": (-(1 << 63), (1 << 63) - 1), "t": (0, (1 << 64) - 1)}
    if code in bits:
        lo, hi = bits[code]
        return st.integers(lo, hi)
    if code == "b":
        return st.booleans()
    if code == "d":
        return st.floats(allow_nan=False)
    if code == "o":
        return _PATH
    if code == "g":
        return _SIG
    return st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                   max_size=8)


def _values(t: str) -> st.SearchStrategy[Any]:
    c = t[0]
    if c in BASIC:
        return _basic(c)
    if c == "v":
        return _SIG.flatmap(lambda sig: st.tuples(st.just(sig), _values(sig)))
    if c == "(":
        return st.tuples(*[_values(m) for m in split(t[1:-1])])
    elem = t[1:]
    if elem == "y":
        return st.binary(max_size=10)
    if elem[0] == "{":
        k, v = split(elem[1:-1])
        return st.dictionaries(_basic(k), _values(v), max_size=4)
    return st.lists(_values(elem), max_size=4)


def _types() -> st.SearchStrategy[str]:
    leaves = st.sampled_from(BASIC + "v")

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda c: "a" + c),
            st.lists(children, min_size=1, max_size=3).map(lambda cs: "(" + "".join(cs) + ")"),
            st.tuples(st.sampled_from(BASIC), children).map(lambda kv: f"a{{{kv[0]}{kv[1]}}}"),
        )
    return st.recursive(leaves, extend, max_leaves=6)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, tuple[Any, ...]]:
    types = draw(st.lists(_types(), max_size=4))
    return "".join(types), tuple(draw(_values(t)) for t in types)


def _same_as_jeepney(msg: Message) -> bytes:
    ours = serialise(msg, 42)
    assert ours == msg.serialise(serial=42)
    mine, theirs = parse_message(ours), Parser().feed(ours)[0]
    assert mine.body == theirs.body
    assert mine.header.fields == theirs.header.fields
    assert (mine.header.message_type, mine.header.flags, mine.header.serial) == (
        theirs.header.message_type, theirs.header.flags, theirs.header.serial)
    return ours


@settings(max_examples=300, deadline=None)
@given(_bodies())
def test_bodies_encode_and_decode_as_jeepney(body: tuple[str, tuple[Any, ...]]) -> None:
    sig, values = body
    _same_as_jeepney(method_call("org.x.Y", "/a/b", "org.x.I", "M", sig, values))


def test_every_message_kind_round_trips() -> None:
    call = method_call("org.x.Y", "/", None, "M", "s", ("x",))
    call.header.serial = 7
    props = {f"p{i}": (("s", "v"), ("b", True), ("i", -3), ("as", ["a"]), ("o", "/x"))[i % 5]
             for i in range(40)}
    for msg in (call, method_return(call, "a{sv}", (props,)), method_return(call),
                error_reply(call, "org.x.Error", "text"), error_reply(call, "org.x.E"),
                signal("/p", "org.x.I", "S", "ao", (["/a", "/b/c", "/"],))):
        _same_as_jeepney(msg)


def test_big_endian_messages_are_read() -> None:
    header = Header(Endianness.big, MessageType.method_call, 0, 1, 0, 5,
                    {})
    msg = method_call("org.x.Y", "/a", "org.x.I", "M", "a{sv}(ix)ay",
                      ({"k": ("i", 3), "l": ("as", ["z"])}, (1, -2), b"\x01\x02"))
    msg.header = Header(Endianness.big, header.message_type, 0, 1, 0, 5, msg.header.fields)
    data = msg.serialise(serial=9)
    assert data[:1] == b"B"
    assert parse_message(data).body == Parser().feed(data)[0].body


@pytest.mark.parametrize(("sig", "value"), [
    ("o", "no/slash"), ("o", "/a//b"), ("o", "/a/"), ("ao", ["/ok", "/bad-dash"]),
    ("s", 3), ("i", "3"), ("i", 1 << 40), ("b", "yes"), ("(is)", (1,)), ("as", ("a",)),
    ("v", (1, "x")), ("a{ss}", {"k": 1}), ("ay", bytearray(b"x")),
])
def test_what_jeepney_refuses_is_refused(sig: str, value: Any) -> None:
    msg = method_call("org.x.Y", "/", "org.x.I", "M", sig, (value,))
    with pytest.raises(Exception) as theirs:
        msg.serialise(serial=1)
    with pytest.raises(type(theirs.value)):
        serialise(msg, 1)


def test_a_stream_split_anywhere_gives_the_same_messages() -> None:
    msgs = [method_call("org.x.Y", "/a", "org.x.I", "M", "sa{sv}", (f"x{i}", {"k": ("u", i)}))
            for i in range(3)]
    data = b"".join(serialise(m, n + 1) for n, m in enumerate(msgs))
    whole = [m.body for m in WireParser().feed(data)]
    assert whole == [m.body for m in msgs]
    for cut in range(len(data)):
        parser = WireParser()
        got = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [m.body for m in got] == whole
        assert parser.buffered == 0


def test_an_oversize_message_is_refused_before_it_is_buffered() -> None:
    head = struct.pack("<cBBBIII", b"l", 1, 0, 1, MAX_MESSAGE, 1, 0)
    parser = WireParser()
    with pytest.raises(WireError, match="larger than"):
        parser.feed(head)


@pytest.mark.parametrize("data", [
    b"X" + bytes(15),
    # a string length that runs past the message
    serialise(method_call("a.b", "/", "a.b", "M", "s", ("hello",)), 1)[:-7] + b"\xff\0\0\0xx\0",
])
def test_garbage_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        WireParser().feed(data)


def test_remembered_dictionaries_come_back_equal_and_independent() -> None:
    props = {"a": ("s", "x"), "b": ("b", True), "l": ("as", ["p"]), "d": ("a{ss}", {"k": "v"})}
    data = serialise(method_call("org.x.Y", "/", "org.x.I", "M", "a{sv}", (props,)), 3)
    first = parse_message(data).body[0]
    first["l"][1].append("changed")
    first["d"][1]["k"] = "changed"
    first["new"] = ("s", "y")
    again = parse_message(data).body[0]
    assert again == props and again is not first
    again["l"][1].append("changed")
    assert parse_message(data).body[0] == props
