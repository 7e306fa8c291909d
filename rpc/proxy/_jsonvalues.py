"""DBus values <-> JSON values for the proxy's JSON path (docs/rpc-proxy.md, "JSON and WebSocket").

A DBus value is what jeepney's ``low_level`` serialiser takes and gives: ``int`` for the integer
codes ``y n q i u x t``, ``float`` for ``d``, ``bool`` for ``b``, ``str`` for ``s o g``, ``bytes``
(or a list of ints) for ``ay``, ``list`` for other arrays, ``dict`` for ``a{..}``, ``tuple`` for a
struct and ``(signature, value)`` for a variant. A JSON value is what :func:`json.loads` gives.

**JSON -> DBus** (`json_to_dbus_value`), typed by a DBus type:

- integer codes take a JSON number (not a boolean), floored (the original's rule), and must fit
  the type's range; ``d`` takes any finite number; ``b`` takes ``true``/``false``;
- ``s`` takes a string without NUL and without lone surrogates; ``o`` a valid object path;
  ``g`` a valid signature; ``h`` (a file descriptor) can never travel over JSON;
- arrays take a JSON array element-wise (an empty array is an empty array: the original turned
  ``[]`` into ``["xyz"]``, a bug fixed here); ``a{KV}`` takes a JSON object whose key strings are
  read as the key type (``"12"`` -> 12, ``"true"`` -> True); a struct takes a JSON array of
  exactly its fields (the original could not convert structs at all);
- ``v`` takes any JSON value typed by `guess_signature` with ``number="i"``.

**Guesses** (`guess_signature`), used when neither a ``dbus-signature`` field nor introspection
types an argument: boolean -> ``b``, string -> ``s``, integer -> ``u`` (``i`` inside a variant),
widened to ``i``/``x``/``t`` when the value does not fit; a number with a fraction or exponent
(a Python ``float``) -> ``d``; an array whose elements are all integers 0..255 (the empty array
included) -> ``ay`` (the original's array rule); any other array -> ``a`` + the elements' common
guess (``av`` when they differ); an object whose values are all strings (or that is empty) ->
``a{ss}`` (the original's object rule), otherwise ``a{s`` + common guess + ``}``; ``null`` has
no DBus form and is an error.

**DBus -> JSON** (`dbus_to_json_value`): booleans stay booleans, every numeric type becomes a
number, strings/paths/signatures strings, a variant is unwrapped, structs and arrays become
arrays (``ay`` a list of numbers), ``a{KV}`` an object whose keys are the keys' text (``12`` ->
``"12"``; the original dropped messages with non-string keys). A non-finite double or a file
descriptor cannot be written as JSON and raises `JsonOutputError`.

Every failure raises a `JsonError` subclass whose ``field`` names the offending place, e.g.
``args[1]["key"][0]``. Nesting is bounded by the DBus limits (32 arrays, 32 structs) and by
`MAX_JSON_DEPTH`, so hostile input costs bounded recursion. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeAlias

from rpc.idl import DBusType, SignatureError, parse_signature, parse_single_type

__all__ = [
    "MAX_JSON_DEPTH",
    "Json",
    "JsonError",
    "JsonMessageError",
    "JsonOutputError",
    "dbus_to_json_value",
    "guess_signature",
    "is_object_path",
    "json_to_dbus_value",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: Deepest JSON nesting accepted (arrays/objects inside each other). DBus itself allows 32
#: nested arrays plus 32 nested structs; 64 covers every DBus value and bounds recursion.
MAX_JSON_DEPTH = 64

#: A JSON value as :func:`json.loads` returns it.
Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"

_INT_RANGES: dict[str, tuple[int, int]] = {
    "y": (0, 2**8 - 1), "n": (-2**15, 2**15 - 1), "q": (0, 2**16 - 1),
    "i": (-2**31, 2**31 - 1), "u": (0, 2**32 - 1),
    "x": (-2**63, 2**63 - 1), "t": (0, 2**64 - 1),
}
_OBJECT_PATH = re.compile(r"/|(/[A-Za-z0-9_]+)+")


class JsonError(ValueError):
    """A value or message could not be converted; ``field`` names where, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class JsonMessageError(JsonError):
    """Incoming JSON (from a client) is malformed or cannot become a DBus message."""


class JsonOutputError(JsonError):
    """A DBus message or value cannot be written as the JSON the protocol defines."""


def is_object_path(text: str) -> bool:
    """Whether ``text`` is a valid DBus object path."""
    return _OBJECT_PATH.fullmatch(text) is not None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _as_type(sig: str | DBusType, field: str) -> DBusType:
    if isinstance(sig, DBusType):
        return sig
    try:
        return parse_single_type(sig)
    except SignatureError as exc:
        raise JsonMessageError(field, f"bad DBus type: {exc}") from None


# ------------------------------------------------------------------ JSON -> DBus


def _check_string(value: object, field: str, what: str) -> str:
    if not isinstance(value, str):
        raise JsonMessageError(field, f"expected a string for {what}, got {_kind(value)}")
    if "\0" in value:
        raise JsonMessageError(field, f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonMessageError(field, f"{what} is not valid Unicode (lone surrogate)") from None
    return value


def _integer(value: object, code: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsonMessageError(field, f"expected a number for DBus type {code!r}, "
                                      f"got {_kind(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonMessageError(field, f"{value} is not a finite number")
        value = math.floor(value)
    lo, hi = _INT_RANGES[code]
    if not lo <= value <= hi:
        shown = str(value) if abs(value) < 10**30 else f"a {value.bit_length()}-bit number"
        raise JsonMessageError(field, f"{shown} is out of range for DBus type {code!r} "
                                      f"({lo}..{hi})")
    return value


def _double(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsonMessageError(field, f"expected a number for DBus type 'd', got {_kind(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise JsonMessageError(field, "number too large for DBus type 'd'") from None
    if not math.isfinite(out):
        raise JsonMessageError(field, f"{out} is not a finite number")
    return out


def _key(text: str, key_type: DBusType, field: str) -> Any:
    code = key_type.code
    if code in _INT_RANGES:
        if re.fullmatch(r"-?[0-9]{1,40}", text) is None:
            raise JsonMessageError(field, f"key {text!r} is not an integer "
                                          f"(dict key type {code!r})")
        return _integer(int(text), code, field)
    if code == "b":
        if text not in ("true", "false"):
            raise JsonMessageError(field, f"key {text!r} is not 'true' or 'false'")
        return text == "true"
    if code == "d":
        try:
            return _double(float(text), field)
        except ValueError:
            raise JsonMessageError(field, f"key {text!r} is not a number") from None
    return json_to_dbus_value(text, key_type, field)


def _key_field(field: str, key: str) -> str:
    shown = key if len(key) <= 40 else key[:37] + "..."
    return f"{field}[{shown!r}]"


def json_to_dbus_value(value: object, sig: str | DBusType, field: str = "value",
                       _depth: int = 0) -> Any:
    """Convert the JSON ``value`` into the DBus value of the single complete type ``sig``.

    Returns what jeepney serialises for that type (module docstring). Raises `JsonMessageError`
    naming ``field`` (extended for nested places) when the value does not fit the type, or the
    type is not a single complete DBus type.
    """
    t = _as_type(sig, field)
    code = t.code
    if _depth > MAX_JSON_DEPTH:
        raise JsonMessageError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if code in _INT_RANGES:
        return _integer(value, code, field)
    if code == "d":
        return _double(value, field)
    if code == "b":
        if not isinstance(value, bool):
            raise JsonMessageError(field, f"expected a boolean, got {_kind(value)}")
        return value
    if code == "s":
        return _check_string(value, field, "a DBus string")
    if code == "o":
        text = _check_string(value, field, "an object path")
        if not is_object_path(text):
            raise JsonMessageError(field, f"{text[:80]!r} is not a valid object path")
        return text
    if code == "g":
        text = _check_string(value, field, "a signature")
        try:
            parse_signature(text)
        except SignatureError as exc:
            raise JsonMessageError(field, str(exc)) from None
        return text
    if code == "h":
        raise JsonMessageError(field, "file descriptors (DBus type 'h') cannot travel as JSON")
    if code == "v":
        inner = guess_signature(value, field, number="i")
        return (inner, json_to_dbus_value(value, inner, field, _depth + 1))
    if code == "(":
        if not isinstance(value, list):
            raise JsonMessageError(field, f"expected an array for struct {t.signature!r}, "
                                          f"got {_kind(value)}")
        if len(value) != len(t.children):
            raise JsonMessageError(field, f"struct {t.signature!r} has {len(t.children)} "
                                          f"fields, the array has {len(value)}")
        return tuple(json_to_dbus_value(v, c, f"{field}[{i}]", _depth + 1)
                     for i, (v, c) in enumerate(zip(value, t.children, strict=True)))
    if code == "a":
        element = t.children[0]
        if element.code == "{":
            if not isinstance(value, dict):
                raise JsonMessageError(field, f"expected an object for {t.signature!r}, "
                                              f"got {_kind(value)}")
            key_type, value_type = element.children
            out: dict[Any, Any] = {}
            for k, v in value.items():
                where = _key_field(field, k)
                out[_key(k, key_type, where)] = json_to_dbus_value(v, value_type, where,
                                                                   _depth + 1)
            return out
        if not isinstance(value, list):
            raise JsonMessageError(field, f"expected an array for {t.signature!r}, "
                                          f"got {_kind(value)}")
        if element.code == "y":
            return bytes(_integer(v, "y", f"{field}[{i}]") for i, v in enumerate(value))
        return [json_to_dbus_value(v, element, f"{field}[{i}]", _depth + 1)
                for i, v in enumerate(value)]
    raise JsonMessageError(field, f"DBus type {t.signature!r} cannot be built from JSON")


# ------------------------------------------------------------------ guesses


def _int_code(lo: int, hi: int, number: str, field: str) -> str:
    order = ("u", "i", "x", "t") if number == "u" else ("i", "u", "x", "t")
    for code in order:
        a, b = _INT_RANGES[code]
        if a <= lo and hi <= b:
            return code
    raise JsonMessageError(field, "integer too large for any DBus integer type (64 bits)")


def _common(values: list[Any], field: str, number: str, depth: int) -> str:
    """The one signature that types every value of ``values`` (``v`` when none does)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if any(isinstance(v, float) for v in values):
            for i, v in enumerate(values):
                _double(v, f"{field}[{i}]")
            return "d"
        return _int_code(min(values), max(values), number, field)
    guesses = {guess_signature(v, f"{field}[{i}]", number=number, _depth=depth)
               for i, v in enumerate(values)}
    return guesses.pop() if len(guesses) == 1 else "v"


def guess_signature(value: object, field: str = "value", *, number: str = "u",
                    _depth: int = 0) -> str:
    """The DBus signature the original's guessing rules give the JSON ``value``.

    ``number`` is the code for an integer: ``"u"`` for a top-level argument, ``"i"`` inside a
    variant (both as the original); integers that do not fit are widened (module docstring).
    Raises `JsonMessageError` for ``null``, non-finite numbers, integers wider than 64 bits,
    nesting deeper than `MAX_JSON_DEPTH`, or a value that is not JSON.
    """
    if _depth > MAX_JSON_DEPTH:
        raise JsonMessageError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool):
        return "b"
    if isinstance(value, str):
        return "s"
    if isinstance(value, int):
        return _int_code(value, value, number, field)
    if isinstance(value, float):
        _double(value, field)
        return "d"
    if isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
            return "ay"
        return "a" + _common(value, field, number, _depth + 1)
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            return "a{ss}"
        return "a{s" + _common(list(value.values()), field, number, _depth + 1) + "}"
    if value is None:
        raise JsonMessageError(field, "null has no DBus type (give a dbus-signature)")
    raise JsonMessageError(field, f"{_kind(value)} is not a JSON value")


# ------------------------------------------------------------------ DBus -> JSON


def _key_text(key: Any, code: str, field: str) -> str:
    if code == "b":
        return "true" if key else "false"
    if code == "d":
        return repr(float(_finite(key, field)))
    return str(key)


def _finite(value: Any, field: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise JsonOutputError(field, f"{value!r} cannot be written as a JSON number")
    return float(value)


def dbus_to_json_value(value: Any, sig: str | DBusType, field: str = "value",
                       _depth: int = 0) -> Json:
    """Convert the DBus ``value`` of type ``sig`` (as jeepney gives it) into a JSON value.

    Raises `JsonOutputError` naming ``field`` when the value has no JSON form (a non-finite
    double, a file descriptor) or does not match ``sig``.
    """
    try:
        t = sig if isinstance(sig, DBusType) else parse_single_type(sig)
    except SignatureError as exc:
        raise JsonOutputError(field, f"bad DBus type: {exc}") from None
    code = t.code
    if _depth > MAX_JSON_DEPTH:
        raise JsonOutputError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        if code in _INT_RANGES:
            return int(value)
        if code == "d":
            return _finite(value, field)
        if code == "b":
            return bool(value)
        if code in "sog":
            if not isinstance(value, str):
                raise TypeError(type(value).__name__)
            return value
        if code == "h":
            raise JsonOutputError(field, "file descriptors (DBus type 'h') cannot travel as JSON")
        if code == "v":
            inner, inner_value = value
            return dbus_to_json_value(inner_value, inner, field, _depth + 1)
        if code == "(":
            return [dbus_to_json_value(v, c, f"{field}[{i}]", _depth + 1)
                    for i, (v, c) in enumerate(zip(value, t.children, strict=True))]
        if code == "a":
            element = t.children[0]
            if element.code == "{":
                key_type, value_type = element.children
                out: dict[str, Json] = {}
                items = value.items() if isinstance(value, dict) else value
                for k, v in items:
                    text = _key_text(k, key_type.code, field)
                    out[text] = dbus_to_json_value(v, value_type, _key_field(field, text),
                                                   _depth + 1)
                return out
            if element.code == "y" and isinstance(value, (bytes, bytearray)):
                return list(value)
            return [dbus_to_json_value(v, element, f"{field}[{i}]", _depth + 1)
                    for i, v in enumerate(value)]
    except JsonOutputError:
        raise
    except (TypeError, ValueError) as exc:
        raise JsonOutputError(field, f"value does not match DBus type {t.signature!r}: "
                                     f"{exc}") from None
    raise JsonOutputError(field, f"DBus type {t.signature!r} has no JSON form")
