"""DBus values <-> JSON values (rpc/proxy/_jsonvalues.py): every type both ways, guesses, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    MAX_JSON_DEPTH,
    JsonError,
    JsonMessageError,
    JsonOutputError,
    dbus_to_json_value,
    guess_signature,
    json_to_dbus_value,
)
from tests.proxy.jsonstrategies import typed_values, types


def _through_text(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@given(typed_values)
def test_every_dbus_value_survives_json_and_back(pair: tuple[str, Any]) -> None:
    sig, value = pair
    back = json_to_dbus_value(_through_text(dbus_to_json_value(value, sig)), sig)
    if sig == "ay":
        value = bytes(value)
    assert back == value


@pytest.mark.parametrize(("sig", "value", "expected"), [
    ("y", 255, 255), ("n", -5, -5), ("q", 65535, 65535), ("i", -2**31, -2**31),
    ("u", 2**32 - 1, 2**32 - 1), ("x", -2**63, -2**63), ("t", 2**64 - 1, 2**64 - 1),
    ("d", 1.5, 1.5), ("b", True, True), ("s", "é", "é"), ("o", "/a/b", "/a/b"),
    ("g", "a{sv}", "a{sv}"), ("v", ("i", 3), 3), ("v", ("as", ["a"]), ["a"]),
    ("ay", b"\x00\xff", [0, 255]), ("ai", [1, -1], [1, -1]), ("(is)", (1, "a"), [1, "a"]),
    ("a{sv}", {"k": ("b", False)}, {"k": False}), ("a{ib}", {-3: True}, {"-3": True}),
    ("a{bs}", {True: "y", False: "n"}, {"true": "y", "false": "n"}),
    ("a{ds}", {0.5: "h"}, {"0.5": "h"}), ("a{oi}", {"/x": 1}, {"/x": 1}),
    ("a(ii)", [(1, 2)], [[1, 2]]), ("aa{ss}", [{}], [{}]),
])
def test_dbus_to_json_of_each_type(sig: str, value: Any, expected: Any) -> None:
    out = dbus_to_json_value(value, sig)
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(("sig", "value", "expected"), [
    ("y", 7.9, 7), ("i", -1.5, -2), ("u", 3, 3), ("t", 2**64 - 1, 2**64 - 1), ("d", 2, 2.0),
    ("s", "x", "x"), ("o", "/", "/"), ("g", "", ""), ("b", False, False),
    ("ay", [1, 2], b"\x01\x02"), ("as", ["a"], ["a"]), ("(sb)", ["a", True], ("a", True)),
    ("a{us}", {"12": "a"}, {12: "a"}), ("a{bi}", {"true": 1}, {True: 1}),
    ("a{di}", {"-0.25": 1}, {-0.25: 1}),
    ("v", "s", ("s", "s")), ("v", True, ("b", True)), ("v", 5, ("i", 5)), ("v", -5, ("i", -5)),
    ("v", 2.5, ("d", 2.5)), ("v", 2**40, ("x", 2**40)), ("v", ["a"], ("as", ["a"])),
    ("v", {"a": 1}, ("a{si}", {"a": 1})), ("v", [1, "a"], ("av", [("i", 1), ("s", "a")])),
])
def test_json_to_dbus_of_each_type(sig: str, value: Any, expected: Any) -> None:
    assert json_to_dbus_value(value, sig) == expected


@pytest.mark.parametrize("sig", ["as", "ai", "ay", "a{sv}", "a(ii)", "aas", "av"])
def test_an_empty_array_stays_empty(sig: str) -> None:
    """The original turned [] into ["xyz"]; an empty JSON array (or object) is empty here."""
    empty: Any = {} if "{" in sig else []
    out = json_to_dbus_value(empty, sig)
    assert len(out) == 0
    assert dbus_to_json_value(out, sig) == empty


@pytest.mark.parametrize(("value", "expected"), [
    (True, "b"), ("x", "s"), (0, "u"), (2**32 - 1, "u"), (-1, "i"), (2**32, "x"),
    (-2**40, "x"), (2**63, "t"), (2.5, "d"), ([], "ay"), ([0, 255], "ay"), ([256], "au"),
    ([-1, 5], "ai"), ([1.5, 2], "ad"), (["a", "b"], "as"), ([True, "a"], "av"),
    ({}, "a{ss}"), ({"a": "b"}, "a{ss}"), ({"a": 1}, "a{su}"), ({"a": 1, "b": "c"}, "a{sv}"),
    ([["a"], ["b"]], "aas"), ([{"k": True}], "aa{sb}"),
])
def test_guesses_follow_the_original_with_widening(value: Any, expected: str) -> None:
    assert guess_signature(value) == expected


def test_inside_a_variant_a_number_is_an_int32() -> None:
    assert guess_signature(7, number="i") == "i"
    assert guess_signature(2**31, number="i") == "u"
    assert guess_signature(-2**31 - 1, number="i") == "x"


@pytest.mark.parametrize(("sig", "value", "field", "words"), [
    ("i", "3", "args[0]", "expected a number"),
    ("i", True, "args[0]", "expected a number"),
    ("y", 256, "args[0]", "out of range"),
    ("u", -1, "args[0]", "out of range"),
    ("t", 2**64, "args[0]", "out of range"),
    ("x", 10**1000, "args[0]", "out of range"),
    ("d", 10**400, "args[0]", "too large"),
    ("d", math.inf, "args[0]", "not a finite number"),
    ("i", math.nan, "args[0]", "not a finite number"),
    ("b", 1, "args[0]", "expected a boolean"),
    ("s", 5, "args[0]", "expected a string"),
    ("s", "a\0b", "args[0]", "NUL"),
    ("s", "\ud800", "args[0]", "surrogate"),
    ("o", "a/b", "args[0]", "not a valid object path"),
    ("o", "/a/", "args[0]", "not a valid object path"),
    ("g", "a{vs}", "args[0]", "invalid DBus signature"),
    ("h", 3, "args[0]", "file descriptors"),
    ("v", None, "args[0]", "null"),
    ("as", "abc", "args[0]", "expected an array"),
    ("as", ["a", 1], "args[0][1]", "expected a string"),
    ("a{ss}", [], "args[0]", "expected an object"),
    ("a{is}", {"x": "a"}, "args[0]['x']", "not an integer"),
    ("a{bs}", {"yes": "a"}, "args[0]['yes']", "'true' or 'false'"),
    ("a{sa{si}}", {"a": {"b": "c"}}, "args[0]['a']['b']", "expected a number"),
    ("(is)", [1], "args[0]", "2 fields"),
    ("(is)", {"a": 1}, "args[0]", "expected an array"),
    ("a(is)", [[1, 2]], "args[0][0][1]", "expected a string"),
    ("ay", [1, "a"], "args[0][1]", "expected a number"),
    ("ii", 1, "args[0]", "bad DBus type"),
])
def test_a_bad_value_names_its_field(sig: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(JsonMessageError) as caught:
        json_to_dbus_value(value, sig, "args[0]")
    assert caught.value.field == field
    assert words in caught.value.reason
    assert str(caught.value).startswith(field)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH * 3):
        deep = [deep]
    with pytest.raises(JsonMessageError, match="nested deeper"):
        guess_signature(deep)
    with pytest.raises(JsonMessageError, match="nested deeper"):
        json_to_dbus_value(deep, "v")


@pytest.mark.parametrize(("sig", "value", "words"), [
    ("d", math.nan, "cannot be written"), ("d", math.inf, "cannot be written"),
    ("h", 0, "file descriptors"), ("s", 5, "does not match"), ("(ii)", (1,), "does not match"),
    ("a{ds}", {math.inf: "a"}, "cannot be written"),
])
def test_a_dbus_value_without_a_json_form_is_a_clear_error(sig: str, value: Any,
                                                           words: str) -> None:
    with pytest.raises(JsonOutputError, match=words):
        dbus_to_json_value(value, sig, "args[2]")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@given(json_values, types)
def test_any_json_against_any_type_converts_or_fails_clearly(value: Any, sig: str) -> None:
    try:
        out = json_to_dbus_value(value, sig, "args[0]")
    except JsonError as exc:
        assert exc.field.startswith("args[0]")
        return
    assert dbus_to_json_value(out, sig) is not None or sig == "v"


@given(json_values)
def test_any_json_is_guessed_or_refused_clearly(value: Any) -> None:
    try:
        sig = guess_signature(value)
    except JsonError:
        return
    try:
        json_to_dbus_value(value, sig)  # a guess fits the shape of its value
    except JsonError as exc:  # ... but not the content: a NUL or a lone surrogate in a string
        assert "NUL" in exc.reason or "surrogate" in exc.reason
