"""DBus signature parser: valid trees round-trip, every rule of the spec is enforced."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.idl import (
    DBusType,
    SignatureError,
    is_valid_signature,
    parse_signature,
    parse_single_type,
    split_signature,
)

BASIC = "ybnqiuxtdsogh"


def _types() -> st.SearchStrategy[DBusType]:
    leaves = st.sampled_from(BASIC + "v").map(DBusType)

    def extend(children: st.SearchStrategy[DBusType]) -> st.SearchStrategy[DBusType]:
        return st.one_of(
            children.map(lambda c: DBusType("a", (c,))),
            st.lists(children, min_size=1, max_size=4).map(lambda cs: DBusType("(", tuple(cs))),
            st.tuples(st.sampled_from(BASIC).map(DBusType), children).map(
                lambda kv: DBusType("a", (DBusType("{", kv),))
            ),
        )

    return st.recursive(leaves, extend, max_leaves=12)


signatures = (
    st.lists(_types(), min_size=0, max_size=5)
    .map(lambda ts: "".join(t.signature for t in ts))
    .filter(lambda s: len(s) <= 255)
)


@given(signatures)
def test_valid_signatures_round_trip(sig: str) -> None:
    types = parse_signature(sig)
    assert "".join(t.signature for t in types) == sig
    assert "".join(split_signature(sig)) == sig
    for piece in split_signature(sig):
        assert parse_single_type(piece).signature == piece


@given(st.text(alphabet="ybnqiuxtdsoghva(){}rm*", max_size=20))
def test_random_text_parses_or_raises_signature_error(text: str) -> None:
    try:
        types = parse_signature(text)
    except SignatureError as exc:
        assert exc.signature == text
        assert 0 <= exc.position <= len(text)
        assert not is_valid_signature(text)
    else:
        assert "".join(str(t) for t in types) == text


@given(signatures.filter(bool))
def test_dangling_array_is_invalid(sig: str) -> None:
    with pytest.raises(SignatureError, match="array code 'a'"):
        parse_signature(sig + "a")


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        ("a", "not followed by an element type"),
        ("()", "empty struct"),
        ("(i", "is not closed"),
        ("i)", "unbalanced ')'"),
        ("{ss}", "outside an array"),
        ("a({ss})", "outside an array"),
        ("a{vs}", "dict key must be a basic type"),
        ("a{(i)s}", "dict key must be a basic type"),
        ("a{s}", "needs a key and a value"),
        ("a{sss}", "more than two types"),
        ("a{ss", "is not closed"),
        ("r", "reserved type code 'r'"),
        ("m", "reserved type code"),
        ("z", "unknown type code 'z'"),
        ("a" * 33 + "i", "more than 32 nested arrays"),
        ("(" * 33 + "i" + ")" * 33, "more than 32 nested structs"),
        ("i" * 256, "longer than 255"),
    ],
)
def test_invalid_signatures_name_the_rule(sig: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_signature(sig)


def test_limits_are_inclusive() -> None:
    assert parse_signature("a" * 32 + "i")[0].signature == "a" * 32 + "i"
    assert parse_single_type("(" * 32 + "i" + ")" * 32).is_struct
    assert len(parse_signature("i" * 255)) == 255


def test_tree_accessors() -> None:
    t = parse_single_type("a{sa(iv)}")
    assert t.is_dict and t.is_array and not t.is_basic
    assert t.key == DBusType("s")
    assert t.value.element.children == (DBusType("i"), DBusType("v"))
    assert parse_single_type("as").element.is_basic
    with pytest.raises(TypeError):
        _ = parse_single_type("s").element
    with pytest.raises(TypeError):
        _ = parse_single_type("ai").key


def test_single_type_rejects_zero_or_many() -> None:
    with pytest.raises(SignatureError, match="is empty"):
        parse_single_type("")
    with pytest.raises(SignatureError, match="holds 2 complete types"):
        parse_single_type("si")
    assert split_signature("sa{sv}(ii)") == ("s", "a{sv}", "(ii)")
    assert parse_signature("") == ()
