"""Hypothesis strategies for DBus types and values, and a jeepney wire round trip (test helpers)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType, Parser

from rpc.idl import DBusType, parse_single_type

INT_RANGES = {
    "y": (0, 2**8 - 1), "n": (-2**15, 2**15 - 1), "q": (0, 2**16 - 1),
    "i": (-2**31, 2**31 - 1), "u": (0, 2**32 - 1),
    "x": (-2**63, 2**63 - 1), "t": (0, 2**64 - 1),
}
BASIC = "ynqiuxtdbsog"

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"),
                max_size=12)
object_paths = st.from_regex(r"/|(/[A-Za-z0-9_]{1,6}){1,3}", fullmatch=True)
signatures = st.sampled_from(["", "s", "a{sv}", "(ii)", "aay", "v", "a(sa{si})"])
finite = st.floats(allow_nan=False, allow_infinity=False)

#: Single complete DBus types (no ``h``: file descriptors have no JSON form).
types: st.SearchStrategy[str] = st.recursive(
    st.sampled_from([*BASIC, "v"]),
    lambda inner: st.one_of(
        inner.map(lambda t: "a" + t),
        st.tuples(st.sampled_from(BASIC), inner).map(lambda kv: "a{" + kv[0] + kv[1] + "}"),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: "(" + "".join(ts) + ")"),
    ),
    max_leaves=5,
)

#: Variant contents that the guessing rules type back to the same signature.
stable_variants = st.one_of(
    texts.map(lambda v: ("s", v)),
    st.booleans().map(lambda v: ("b", v)),
    st.integers(-2**31, 2**31 - 1).map(lambda v: ("i", v)),
    finite.map(lambda v: ("d", v)),
    st.lists(texts, min_size=1, max_size=3).map(lambda v: ("as", v)),
    st.dictionaries(texts, texts, max_size=3).map(lambda v: ("a{ss}", v)),
)


def values(sig: str | DBusType) -> st.SearchStrategy[Any]:
    """Values of the DBus type ``sig`` as jeepney takes them."""
    t = sig if isinstance(sig, DBusType) else parse_single_type(sig)
    code = t.code
    if code in INT_RANGES:
        return st.integers(*INT_RANGES[code])
    if code == "d":
        return finite
    if code == "b":
        return st.booleans()
    if code == "s":
        return texts
    if code == "o":
        return object_paths
    if code == "g":
        return signatures
    if code == "v":
        return stable_variants
    if code == "(":
        return st.tuples(*[values(c) for c in t.children])
    element = t.children[0]
    if element.code == "{":
        return st.dictionaries(values(element.children[0]), values(element.children[1]),
                               max_size=3)
    if element.code == "y":
        return st.binary(max_size=8)
    return st.lists(values(element), max_size=3)


typed_values = types.flatmap(lambda t: st.tuples(st.just(t), values(t)))


def wire(msg: Message) -> Message:
    """``msg`` serialised and parsed back by jeepney (the form the proxy receives)."""
    parser = Parser()
    parser.add_data(msg.serialise())
    out = parser.get_next_message()
    assert out is not None
    return out


def signal(signature: str, body: tuple[Any, ...], serial: int = 7) -> Message:
    """A signal ``/a/b`` ``org.example.I.Changed`` carrying ``body``."""
    fields: dict[HeaderFields, Any] = {HeaderFields.path: "/a/b",
                                       HeaderFields.interface: "org.example.I",
                                       HeaderFields.member: "Changed"}
    if signature:
        fields[HeaderFields.signature] = signature
    return Message(Header(Endianness.little, MessageType.signal, 0, 1, -1, serial, fields), body)
