"""xec's argument grammar: strings to typed DBus values, and every way that fails."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.idl import SignatureError, parse_single_type
from rpc.xec import LiteralError, parse_argument, parse_arguments


@pytest.mark.parametrize(
    ("text", "sig", "value"),
    [
        # top-level strings and paths are verbatim
        ("hello world", "s", "hello world"),
        ("", "s", ""),
        ("  'quoted' \\ \"x\" ", "s", "  'quoted' \\ \"x\" "),
        ("/vm/abc_1", "o", "/vm/abc_1"),
        ("/", "o", "/"),
        # integers
        ("12", "i", 12),
        ("-12", "i", -12),
        ("007", "i", 7),
        ("2147483647", "i", 2**31 - 1),
        ("-2147483648", "i", -(2**31)),
        ("-32768", "n", -32768),
        ("9223372036854775807", "x", 2**63 - 1),
        ("255", "y", 255),
        ("300", "y", 44),  # unsigned wraps modulo 2^8, as the original
        ("-1", "y", 255),
        ("-1", "q", 65535),
        ("-1", "u", 4294967295),
        ("4294967296", "u", 0),
        ("-1", "t", 2**64 - 1),
        ("3", "h", 3),
        (" 12 ", "i", 12),
        # doubles
        ("1", "d", 1.0),
        ("-1.5", "d", -1.5),
        ("0.25", "d", 0.25),
        # booleans
        ("true", "b", True),
        ("1", "b", True),
        ("false", "b", False),
        ("0", "b", False),
        # arrays
        ("[]", "as", []),
        ("[ ]", "ai", []),
        ("[\"a\", 'b']", "as", ["a", "b"]),
        ("[1,2 , 3]", "ai", [1, 2, 3]),
        ("  [ 1 ,2 ]  ", "ai", [1, 2]),
        ("[true, 0]", "ab", [True, False]),
        ("[[1], [], [2, 3]]", "aai", [[1], [], [2, 3]]),
        ('["/a", "/b/c"]', "ao", ["/a", "/b/c"]),
        ("[104, 105, -1]", "ay", b"hi\xff"),
        ("[]", "ay", b""),
        # dicts
        ("{}", "a{ss}", {}),
        ('{"a": "x", \'b\' : "y"}', "a{ss}", {"a": "x", "b": "y"}),
        ('{1: "one", 2: "two"}', "a{is}", {1: "one", 2: "two"}),
        ('{"k": [1, 2]}', "a{sai}", {"k": [1, 2]}),
        ('[{"a": "1"}, {}]', "aa{ss}", [{"a": "1"}, {}]),
        ('{"x": {"y": true}}', "a{sa{sb}}", {"x": {"y": True}}),
        # structs use square brackets
        ('[1, "a"]', "(is)", (1, "a")),
        ('[ [1, 2.5], ["q"] ]', "((id)as)", ((1, 2.5), ["q"])),
        ('[[1, "a"], [2, "b"]]', "a(is)", [(1, "a"), (2, "b")]),
        # quoting and escapes inside containers
        (r'["a\"b"]', "as", ['a"b']),
        (r"['a\'b']", "as", ["a'b"]),
        (r'["a\\b"]', "as", ["a\\b"]),
        (r'["a\nb"]', "as", ["a\\nb"]),  # other escapes stay literal
        (r"""['say "hi"']""", "as", ['say "hi"']),
        (r'["it\'s"]', "as", ["it\\'s"]),  # \' is not an escape inside "..."
        ('["a, b", "]"]', "as", ["a, b", "]"]),
        ('[""]', "as", [""]),
    ],
)
def test_valid(text: str, sig: str, value: Any) -> None:
    result = parse_argument(text, sig)
    assert result == value
    assert type(result) is type(value)


def test_accepts_a_parsed_type_and_labels_errors_by_index() -> None:
    assert parse_argument("5", parse_single_type("i")) == 5
    with pytest.raises(LiteralError) as info:
        parse_argument("x", "i", 3)
    assert info.value.index == 3
    assert str(info.value).startswith("error parsing argument 3: ")


@pytest.mark.parametrize(
    ("text", "sig", "reason"),
    [
        # trailing garbage is an error (the original ignored it)
        ("12abc", "i", "unexpected 'abc' after the value"),
        ("truex", "b", "unexpected 'x'"),
        ("10", "b", "unexpected '0'"),
        ("1.5x", "d", "unexpected 'x'"),
        ("[1] 2", "ai", "unexpected '2'"),
        ("1.", "d", "unexpected '.'"),
        # not the type at all
        ("", "i", "expected an integer for type 'i' at the end"),
        ("abc", "i", "expected an integer for type 'i' at position 1"),
        ("+1", "i", "expected an integer"),
        ("1e5", "d", "unexpected 'e5'"),
        (".5", "d", "expected a number"),
        ("yes", "b", "expected true, false, 1 or 0"),
        ("True", "b", "expected true, false, 1 or 0"),
        # signed out of range is an error (the original wrapped)
        ("2147483648", "i", "2147483648 is out of range for type 'i'"),
        ("-32769", "n", "out of range for type 'n'"),
        ("9223372036854775808", "x", "out of range"),
        # variants and signatures cannot be written
        ("1", "v", "type 'v' cannot be given"),
        ("s", "g", "type 'g' cannot be given"),
        ('["s"]', "av", "type 'v' cannot be given"),
        ('{"a": 1}', "a{sv}", "type 'v' cannot be given"),
        # containers
        ("[1, 2", "ai", "expected ',' or ']' at the end"),
        ("[1 2]", "ai", "expected ',' or ']' at position 4"),
        ("[1,]", "ai", "expected an integer"),
        ("1, 2", "ai", "expected '['"),
        ("[a]", "as", "expected a quoted string"),
        ('["a]', "as", "string opened at position 2 is not closed"),
        ('["a\\"]', "as", "is not closed"),
        ('{"a" "b"}', "a{ss}", "expected ':'"),
        ('{"a": "b",}', "a{ss}", "expected a quoted string"),
        ('{"a": "1", "a": "2"}', "a{ss}", "dict key 'a' is given twice"),
        ('["a" 1]', "(si)", "expected ','"),
        ('["a"]', "(si)", "expected ','"),
        ('["a", 1, 2]', "(si)", "struct has 2 fields, more were given"),
        ('{"a": "b"}', "as", "expected '['"),
        ("[1]", "a{ss}", "expected '{'"),
        # object paths must be valid
        ("vm", "o", "'vm' is not a valid object path"),
        ("/vm/", "o", "not a valid object path"),
        ("/vm//x", "o", "not a valid object path"),
        ("/vm-1", "o", "not a valid object path"),
        ('["/a-b"]', "ao", "not a valid object path"),
        # strings the bus would refuse
        ("caf\udce9", "s", "is not valid UTF-8"),
        ('["\udcff"]', "as", "is not valid UTF-8"),
        ("a\0b", "s", "cannot contain a NUL"),
    ],
)
def test_invalid(text: str, sig: str, reason: str) -> None:
    with pytest.raises(LiteralError) as info:
        parse_argument(text, sig, 2)
    message = str(info.value)
    assert message.startswith("error parsing argument 2: ")
    assert reason in message


def test_bad_signature_is_not_a_literal_error() -> None:
    with pytest.raises(SignatureError):
        parse_argument("1", "ii")


def test_parse_arguments() -> None:
    assert parse_arguments(["x", "5", "[true]"], "siab") == ["x", 5, [True]]
    assert parse_arguments([], "") == []
    with pytest.raises(ValueError, match="expected 2 arguments, got 1"):
        parse_arguments(["x"], "ss")
    with pytest.raises(LiteralError, match="error parsing argument 2"):
        parse_arguments(["1", "x"], [parse_single_type("i"), parse_single_type("i")])


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int32_round_trip(n: int) -> None:
    assert parse_argument(str(n), "i") == n


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_unsigned_wraps(n: int) -> None:
    assert parse_argument(str(n), "u") == n % 2**32
    assert parse_argument(str(n), "t") == n % 2**64


@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=8),
        max_size=5,
    )
)
def test_quoted_strings_round_trip(items: list[str]) -> None:
    def quote(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    assert parse_argument("[" + ", ".join(quote(s) for s in items) + "]", "as") == items


@given(st.text(max_size=30))
def test_never_crashes(text: str) -> None:
    for sig in ("i", "d", "b", "as", "a{sai}", "(sb)", "ay"):
        try:
            parse_argument(text, sig)
        except LiteralError:
            pass
