"""The original dbd's JSON dialect and pretty style: golden files, dialect cases, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence._jsonfmt import (
    JsonFormatError,
    _Parser,
    decode_utf8,
    dumps_compact,
    dumps_pretty,
    format_float,
    loads,
    parse_document,
)

# Hand-made samples in the original's pretty style (reference §3.4): two-space indent, one
# member per line, `{ }` and `[]` for empties, `/` escaped, floats as %f, trailing newline.
GOLDEN_DB = """\
{
  "db-version": "42",
  "xenmgr": {
    "autostart": "true",
    "url": "http:\\/\\/example.org\\/x",
    "empty": { },
    "none": [],
    "quote": "say \\"hi\\" \\\\ back"
  },
  "vm": { },
  "nothing": null
}
"""

GOLDEN_VM = """\
{
  "uuid": "00000000-0000-0000-0000-000000000001",
  "config": {
    "memory": "1024",
    "disk": {
      "0": {
        "path": "\\/storage\\/disks\\/a.vhd"
      }
    }
  },
  "numbers": [
    1,
    -2,
    1.500000,
    true,
    [],
    { },
    [
      "nested"
    ],
    {
      "k": "v"
    }
  ]
}
"""

GOLDEN_SCALARS = ['"just a string"\n', "null\n", "5\n", "true\n", "[]\n", "{ }\n"]


@pytest.mark.parametrize("golden", [GOLDEN_DB, GOLDEN_VM, *GOLDEN_SCALARS])
def test_golden_round_trips_byte_for_byte(golden: str) -> None:
    assert dumps_pretty(loads(golden)) == golden


def test_golden_values() -> None:
    db = loads(GOLDEN_DB)
    assert isinstance(db, dict)
    assert list(db) == ["db-version", "xenmgr", "vm", "nothing"]
    assert db["xenmgr"] == {
        "autostart": "true",
        "url": "http://example.org/x",
        "empty": {},
        "none": [],
        "quote": 'say "hi" \\ back',
    }
    vm = loads(GOLDEN_VM)
    assert isinstance(vm, dict)
    assert vm["numbers"] == [1, -2, 1.5, True, [], {}, ["nested"], {"k": "v"}]


def test_writer_escapes_only_what_the_original_escaped() -> None:
    text = 'a/b"c\\d\ne\tf\rg\bh\fi\x01j\x7fké€😀'
    assert dumps_pretty(text) == (
        '"a\\/b\\"c\\\\d\\ne\\tf\\rg\\bh\\fi\x01j\x7fké€😀"\n'
    )
    assert loads(dumps_pretty(text)) == text


def test_writer_numbers() -> None:
    assert dumps_pretty([0.1, -0.0, 1e20, 3, -7]) == (
        "[\n  0.100000,\n  -0.000000,\n  100000000000000000000.000000,\n  3,\n  -7\n]\n"
    )
    assert format_float(2.5) == "2.500000"
    with pytest.raises(ValueError, match="non-finite"):
        format_float(math.inf)


def test_compact_form() -> None:
    value = {"a": [1, True, 1.5, None], "b": {}, "c": []}
    assert dumps_compact(value) == '{"a": [1, true, 1.500000, null], "b": {}, "c": []}'


def test_writer_converts_foreign_objects_or_refuses() -> None:
    class Foreign:
        pass

    assert dumps_pretty({"x": Foreign()}, convert=lambda _: None) == '{\n  "x": null\n}\n'
    with pytest.raises(TypeError):
        dumps_pretty(Foreign())


# ---------------------------------------------------------------------------- dialect


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.", 1.0),
        ("-.5", -0.5),
        ("1.e5", 100000.0),
        ("1E5", 100000.0),
        ("2e-1", 0.2),
        ("-01", -1),
        ("-0", 0),
        ("0", 0),
        ("9223372036854775807", 9223372036854775807),
        ('"\\u0041\\u00e9"', "Aé"),
        ('"\\ud83d\\ude00"', "😀"),
        ('"raw\nnewline\x01"', "raw\nnewline\x01"),
        ('"\\/"', "/"),
        ('{"a": 1, "a": 2, "b": 3}', {"a": 1, "b": 3}),
        (" \t\r\n[ 1 , 2 ]", [1, 2]),
        ("[]", []),
        ("{}", {}),
        ("[[]]", [[]]),
    ],
)
def test_dialect_accepts(text: str, value: Any) -> None:
    assert loads(text) == value
    assert type(loads(text)) is type(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("01", "leading zero"),
        ("1e999", "out of range"),
        ("9223372036854775808", "64 bits"),
        ("-", "not a valid number"),
        ("1.e", "not a valid number"),
        ("[1,]", "expecting a value"),
        ('{"a": 1,}', "string key"),
        ('{"a" 1}', "':'"),
        ("[1 2]", "',' or ']'"),
        ('{"a": 1 "b"}', "',' or '}'"),
        ('"abc', "unterminated string"),
        ('"\\x"', "invalid escape"),
        ('"\\u12"', "four hex digits"),
        ('"\\udc00"', "unpaired low surrogate"),
        ('"\\ud800x"', "high surrogate"),
        ("nul", "expecting 'null'"),
        ("NaN", "unexpected character"),
        ("Infinity", "unexpected character"),
        ("[1x]", "in a number"),
        ("", "no JSON value"),
        (" \n ", "no JSON value"),
        ("{", "expecting a string key"),
    ],
)
def test_dialect_rejects_with_a_named_error(text: str, fragment: str) -> None:
    with pytest.raises(JsonFormatError, match=fragment):
        loads(text)


def test_errors_carry_line_and_column() -> None:
    with pytest.raises(JsonFormatError) as info:
        loads('{\n  "a": "1",\n  "b": oops\n}')
    assert (info.value.line, info.value.column) == (3, 8)
    assert str(info.value).startswith("line 3, column 8: ")


def test_trailing_text_is_ignored_as_the_original_did() -> None:
    parsed = parse_document('{\n  "a": "1"\n}\n  "a": "stale tail of a longer file"\n}\n')
    assert parsed.value == {"a": "1"}
    assert parsed.trailing
    assert parsed.end == 14
    assert not parse_document("{ }\n\n").trailing


def test_bounds() -> None:
    with pytest.raises(JsonFormatError, match="nesting deeper than 3"):
        loads("[[[[1]]]]", max_depth=3)
    assert loads("[[[1]]]", max_depth=3) == [[[1]]]
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(JsonFormatError, match="nesting deeper than 256"):
        loads(deep)
    with pytest.raises(JsonFormatError, match="exceeds the limit of 4"):
        loads('"abc"', max_chars=4)


def test_decode_utf8_reports_the_place() -> None:
    assert decode_utf8("é".encode()) == "é"
    with pytest.raises(JsonFormatError, match="invalid UTF-8") as info:
        decode_utf8(b'{\n  "a": "\xff"\n}')
    assert info.value.line == 2


# ---------------------------------------------------------------------------- properties


def reference(text: str) -> Any:
    """The reference parser alone (no fast path), as parse_document drives it."""
    parser = _Parser(text, 256)
    return parser.value(0)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans(), st.sampled_from([None, 0, 2]))
def test_standard_json_parses_identically_on_both_paths(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert loads(text) == value
    assert reference(text) == value


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_pretty_output_parses_back_to_its_own_rendering(value: Any) -> None:
    text = dumps_pretty(value)
    assert dumps_pretty(loads(text)) == text


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='{}[],:"\\/ \n0123456789.eE+-tfnrulase\u00e9\ud800', max_size=24))
def test_fast_path_never_disagrees_with_the_reference_parser(text: str) -> None:
    try:
        expected: Any = ("ok", reference(text))
    except JsonFormatError:
        expected = ("error",)
    try:
        got: Any = ("ok", loads(text))
    except JsonFormatError:
        got = ("error",)
    if expected[0] == "ok" and text.strip(" \t\n\r"):
        assert got == expected
    elif text.strip(" \t\n\r"):
        assert got == ("error",)
