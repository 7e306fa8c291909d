"""JSON messages <-> DBus messages: the rpc-proxy JSON protocol (docs/rpc-proxy.md, JSON section).

An incoming JSON text is one object; its ``type`` picks the kind (missing means ``request``):

- ``request``: ``id``, ``method``, ``destination``, ``path``, ``interface``, ``args``;
- ``signal``: ``id``, ``path``, ``method`` (the member name), ``interface``, ``args``;
- ``response``: ``id``, ``response-to`` (a number), ``args``;
- ``error``: ``id``, ``response-to`` (a number), ``name``, ``args``;

each with an optional ``dbus-signature`` (the body signature). ``id`` is a number, floored, and
becomes the DBus serial; ``response-to`` becomes the reply serial; both must be 1..2**32-1 (the
bus would disconnect us for a 0 serial). Unknown keys are ignored. Requests are sent with a
reply expected and auto-start allowed.

Two steps, so that the I/O side can fetch introspection in between: `parse_json_message`
checks the shape and gives a `JsonMessage`; `to_dbus_message` types its ``args`` and builds the
jeepney `Message`. Typing: the ``dbus-signature`` field if present; else, for a request, the
``in`` signature of its (interface, method) in the introspection of (destination, path), given
as the mapping `parse_introspection` returns (the I/O side fetches the XML over the proxy's own
bus connection and caches the mapping per (destination, path); a failed fetch is not cached);
else each argument's guess (`guess_signature`). Header names are checked as the bus checks them,
so a bad message is refused here with a clear error instead of costing the connection.

Outgoing (`dbus_to_json`, `encode_json`), keys in this order: request ``id type method
destination path interface args``; signal ``id type interface member path args``; response ``id
type response-to args``; error ``id type response-to name args``. ``id`` is the DBus serial and
``response-to`` is the reply serial as a decimal STRING (a quirk kept: deployed clients expect
it); no ``dbus-signature`` is emitted. A call without destination or interface cannot be written
and raises `JsonOutputError` (the caller drops it with a warning, as the original did).

Every failure raises `JsonMessageError` (input) or `JsonOutputError` (output), both `JsonError`
(a `ValueError`) with ``field`` naming the offending key. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType

from rpc.idl import Direction, IdlError, SignatureError, parse_node, parse_signature
from rpc.proxy._jsonvalues import (
    MAX_JSON_DEPTH,
    Json,
    JsonMessageError,
    JsonOutputError,
    dbus_to_json_value,
    guess_signature,
    is_object_path,
    json_to_dbus_value,
)

__all__ = [
    "MAX_JSON_BYTES",
    "Introspected",
    "IntrospectionError",
    "JsonMessage",
    "dbus_to_json",
    "encode_json",
    "json_to_dbus",
    "parse_introspection",
    "parse_json_message",
    "to_dbus_message",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: Largest JSON text accepted (bytes of UTF-8): the original's WebSocket frame limit, 1 MiB.
MAX_JSON_BYTES = 1 << 20
_MAX_SERIAL = 2**32 - 1
_MAX_NAME = 255
_ELEMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_INTERFACE = re.compile(rf"{_ELEMENT}(\.{_ELEMENT})+")
_MEMBER = re.compile(_ELEMENT)
_UNIQUE = re.compile(r":[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
_WELL_KNOWN = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+")
_KINDS = {"request": MessageType.method_call, "signal": MessageType.signal,
          "response": MessageType.method_return, "error": MessageType.error}
_NAMES = {v: k for k, v in _KINDS.items()}


#: What types a request's arguments from introspection: the `parse_introspection` mapping of
#: its (destination, path), or the method's ``in`` signature, or None.
Introspected: TypeAlias = "Mapping[tuple[str, str], str] | str | None"


class IntrospectionError(ValueError):
    """Introspection XML could not be read."""


@dataclass(frozen=True, slots=True)
class JsonMessage:
    """One incoming JSON message, shape-checked, arguments not yet typed.

    ``kind`` is ``request``, ``signal``, ``response`` or ``error``; ``member`` is the JSON
    ``method`` key; ``reply_to`` the ``response-to`` key; ``error_name`` the ``name`` key;
    ``signature`` the ``dbus-signature`` key (None when absent). Keys a kind does not use are None.
    """

    kind: str
    id: int
    args: tuple[Json, ...]
    signature: str | None = None
    destination: str | None = None
    path: str | None = None
    interface: str | None = None
    member: str | None = None
    reply_to: int | None = None
    error_name: str | None = None

    @property
    def introspection_target(self) -> tuple[str, str] | None:
        """``(destination, path)`` to introspect to type the arguments, or None when not needed.

        Only a request without ``dbus-signature`` and with arguments is typed by introspection.
        """
        if self.kind != "request" or self.signature is not None or not self.args:
            return None
        assert self.destination is not None and self.path is not None
        return (self.destination, self.path)


# ------------------------------------------------------------------ JSON -> DBus


def _depth_ok(value: object) -> None:
    """Raise unless ``value`` nests at most `MAX_JSON_DEPTH` levels (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise JsonMessageError("", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)


def _reject_constant(name: str) -> None:
    raise JsonMessageError("", f"{name} is not a JSON number")


def _load(data: str | bytes) -> object:
    size = len(data)
    if isinstance(data, str) and size * 4 > MAX_JSON_BYTES:  # count UTF-8 bytes only if needed
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_JSON_BYTES:
        raise JsonMessageError("", f"JSON text of {size} bytes is larger than {MAX_JSON_BYTES}")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise JsonMessageError("", f"JSON text is not UTF-8: {exc}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JsonMessageError("", f"malformed JSON: {exc}") from None
    except RecursionError:
        raise JsonMessageError("", "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal with more than 4300 digits
        if isinstance(exc, JsonMessageError):
            raise
        raise JsonMessageError("", f"malformed JSON: {exc}") from None


def _string(obj: Mapping[str, object], key: str, check: re.Pattern[str] | None = None,
            what: str = "") -> str:
    if key not in obj:
        raise JsonMessageError(key, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise JsonMessageError(key, f"expected a string, got {type(value).__name__}")
    if check is not None and (len(value) > _MAX_NAME or check.fullmatch(value) is None):
        raise JsonMessageError(key, f"{value[:80]!r} is not a valid {what}")
    return value


def _serial(obj: Mapping[str, object], key: str) -> int:
    if key not in obj:
        raise JsonMessageError(key, "missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsonMessageError(key, f"expected a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonMessageError(key, f"{value} is not a finite number")
        value = math.floor(value)
    if not 1 <= value <= _MAX_SERIAL:
        raise JsonMessageError(key, f"must be 1..{_MAX_SERIAL} (a DBus serial)")
    return value


def _bus_name(obj: Mapping[str, object], key: str) -> str:
    value = _string(obj, key)
    pattern = _UNIQUE if value.startswith(":") else _WELL_KNOWN
    if len(value) > _MAX_NAME or pattern.fullmatch(value) is None:
        raise JsonMessageError(key, f"{value[:80]!r} is not a valid bus name")
    return value


def _path(obj: Mapping[str, object], key: str) -> str:
    value = _string(obj, key)
    if not is_object_path(value):
        raise JsonMessageError(key, f"{value[:80]!r} is not a valid object path")
    return value


def parse_json_message(data: str | bytes) -> JsonMessage:
    """Check one JSON text (at most `MAX_JSON_BYTES`) and return it as a `JsonMessage`.

    Raises `JsonMessageError` naming the offending key for undecodable or malformed JSON, a
    text that is not an object, an unknown ``type``, a missing or mistyped key, an invalid
    name or path, a serial out of range, nesting deeper than `MAX_JSON_DEPTH`, or an invalid
    ``dbus-signature``.
    """
    obj = _load(data)
    if not isinstance(obj, dict):
        raise JsonMessageError("", f"a JSON message is an object, got {type(obj).__name__}")
    _depth_ok(obj)
    kind = obj.get("type", "request")
    if kind not in _KINDS:
        raise JsonMessageError("type", f"{str(kind)[:40]!r} is not one of "
                                       f"request, signal, response, error")
    ident = _serial(obj, "id")
    if "args" not in obj:
        raise JsonMessageError("args", "missing")
    args = obj["args"]
    if not isinstance(args, list):
        raise JsonMessageError("args", f"expected an array, got {type(args).__name__}")
    signature = None
    if "dbus-signature" in obj:
        signature = _string(obj, "dbus-signature")
        try:
            types = parse_signature(signature)
        except SignatureError as exc:
            raise JsonMessageError("dbus-signature", str(exc)) from None
        if len(types) != len(args):
            raise JsonMessageError("dbus-signature", f"{signature!r} has {len(types)} "
                                                     f"types for {len(args)} args")
    common: dict[str, Any] = {"kind": kind, "id": ident, "args": tuple(args),
                              "signature": signature}
    if kind == "request":
        return JsonMessage(**common, destination=_bus_name(obj, "destination"),
                           path=_path(obj, "path"),
                           interface=_string(obj, "interface", _INTERFACE, "interface name"),
                           member=_string(obj, "method", _MEMBER, "member name"))
    if kind == "signal":
        return JsonMessage(**common, path=_path(obj, "path"),
                           interface=_string(obj, "interface", _INTERFACE, "interface name"),
                           member=_string(obj, "method", _MEMBER, "member name"))
    reply_to = _serial(obj, "response-to")
    if kind == "response":
        return JsonMessage(**common, reply_to=reply_to)
    return JsonMessage(**common, reply_to=reply_to,
                       error_name=_string(obj, "name", _INTERFACE, "error name"))


def parse_introspection(xml: str | bytes) -> dict[tuple[str, str], str]:
    """Map (interface, method) to the method's ``in`` signature from introspection XML.

    Uses the project's bounded, entity-refusing XML reader (`rpc.idl.parse_node`, lenient).
    Raises `IntrospectionError` for a document that cannot be read.
    """
    try:
        node = parse_node(xml, source="introspection", strict=False)
    except (IdlError, SignatureError) as exc:
        raise IntrospectionError(str(exc)) from None
    return {(interface.name, method.name):
            "".join(arg.type for arg in method.args if arg.direction is Direction.IN)
            for interface in node.interfaces for method in interface.methods}


def _types(msg: JsonMessage, introspected: Introspected) -> list[str]:
    if msg.signature is not None:
        return [t.signature for t in parse_signature(msg.signature)]
    if msg.kind == "request" and introspected is not None:
        assert msg.interface is not None and msg.member is not None
        found = (introspected if isinstance(introspected, str)
                 else introspected.get((msg.interface, msg.member)))
        if found is not None:
            try:
                types = [t.signature for t in parse_signature(found)]
            except SignatureError as exc:
                raise JsonMessageError("dbus-signature", f"introspected: {exc}") from None
            if len(types) == len(msg.args):
                return types
    return [guess_signature(a, f"args[{i}]") for i, a in enumerate(msg.args)]


def to_dbus_message(msg: JsonMessage, introspected: Introspected = None) -> Message:
    """Type ``msg``'s arguments and build the DBus message (serial = the JSON ``id``).

    ``introspected`` is `parse_introspection` of the request's destination and path, or the
    method's ``in`` signature itself (a ``str``), or None.
    An introspected signature whose argument count differs from ``args`` is not used (the
    arguments are guessed, and the service answers a type error). Raises `JsonMessageError`
    naming ``args[i]...`` when an argument does not fit its type.
    """
    types = _types(msg, introspected)
    body = tuple(json_to_dbus_value(a, t, f"args[{i}]")
                 for i, (a, t) in enumerate(zip(msg.args, types, strict=True)))
    kind = _KINDS[msg.kind]
    fields: dict[HeaderFields, Any] = {}
    if msg.path is not None:
        fields[HeaderFields.path] = msg.path
    if msg.interface is not None:
        fields[HeaderFields.interface] = msg.interface
    if msg.member is not None:
        fields[HeaderFields.member] = msg.member
    if msg.destination is not None:
        fields[HeaderFields.destination] = msg.destination
    if msg.reply_to is not None:
        fields[HeaderFields.reply_serial] = msg.reply_to
    if msg.error_name is not None:
        fields[HeaderFields.error_name] = msg.error_name
    if body:
        fields[HeaderFields.signature] = "".join(types)
    header = Header(Endianness.little, kind, 0, 1, -1, msg.id, fields)
    return Message(header, body)


def json_to_dbus(data: str | bytes, introspected: Introspected = None) -> Message:
    """`parse_json_message` then `to_dbus_message`, for callers that need no introspection."""
    return to_dbus_message(parse_json_message(data), introspected)


# ------------------------------------------------------------------ DBus -> JSON


def dbus_to_json(msg: Message) -> dict[str, Json]:
    """The JSON object for ``msg`` (keys in the protocol's order; module docstring).

    Raises `JsonOutputError` for a call without destination or interface, a signal without
    interface, a value with no JSON form, or a message of unknown type.
    """
    fields = msg.header.fields
    kind = _NAMES.get(msg.header.message_type)
    if kind is None:
        raise JsonOutputError("type", f"message type {msg.header.message_type!r} has no JSON form")
    out: dict[str, Json] = {"id": msg.header.serial, "type": kind}
    if kind == "request":
        for key, name in (("destination", HeaderFields.destination),
                          ("interface", HeaderFields.interface)):
            if name not in fields:
                raise JsonOutputError(key, "a method call without it cannot be written as JSON")
        out["method"] = fields.get(HeaderFields.member)
        out["destination"] = fields[HeaderFields.destination]
        out["path"] = fields.get(HeaderFields.path)
        out["interface"] = fields[HeaderFields.interface]
    elif kind == "signal":
        if HeaderFields.interface not in fields:
            raise JsonOutputError("interface", "a signal without it cannot be written as JSON")
        out["interface"] = fields[HeaderFields.interface]
        out["member"] = fields.get(HeaderFields.member)
        out["path"] = fields.get(HeaderFields.path)
    else:
        out["response-to"] = str(fields.get(HeaderFields.reply_serial, 0))
        if kind == "error":
            out["name"] = fields.get(HeaderFields.error_name)
    signature = str(fields.get(HeaderFields.signature, ""))
    try:
        types = parse_signature(signature)
    except SignatureError as exc:
        raise JsonOutputError("args", str(exc)) from None
    if len(types) != len(msg.body):
        raise JsonOutputError("args", f"signature {signature!r} does not match the body")
    out["args"] = [dbus_to_json_value(v, t, f"args[{i}]")
                   for i, (v, t) in enumerate(zip(msg.body, types, strict=True))]
    return out


def encode_json(msg: Message) -> bytes:
    """`dbus_to_json` as compact UTF-8 JSON text (no NUL; framing is the caller's).

    Raises `JsonOutputError` as `dbus_to_json` does.
    """
    return json.dumps(dbus_to_json(msg), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")
