"""JSON messages <-> DBus messages (rpc/proxy/_json.py): shapes, typing, output, hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageFlag, MessageType

from rpc.proxy import (
    MAX_JSON_BYTES,
    IntrospectionError,
    JsonMessage,
    JsonMessageError,
    JsonOutputError,
    dbus_to_json,
    encode_json,
    json_to_dbus,
    parse_introspection,
    parse_json_message,
    to_dbus_message,
)
from tests.proxy.jsonstrategies import signal, typed_values, wire

CALL = {"id": 5, "type": "request", "method": "read", "destination": "com.citrix.xenclient.db",
        "path": "/", "interface": "com.citrix.xenclient.db", "args": ["/vm"]}

INTROSPECTION = """<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="com.citrix.xenclient.db">
    <method name="read"><arg name="path" type="s" direction="in"/>
      <arg name="value" type="s" direction="out"/></method>
    <method name="write"><arg type="s" direction="in"/><arg type="s" direction="in"/></method>
    <method name="set"><arg type="y" direction="in"/><arg type="a{sv}"/></method>
    <signal name="changed"><arg type="s"/></signal>
    <property name="some-prop" type="s" access="read"/>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Set"><arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="v" direction="in"/></method>
  </interface>
  <node name="child"/>
</node>"""


def _text(**changes: Any) -> str:
    obj = {**CALL, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not None})


# ------------------------------------------------------------------ JSON -> DBus


def test_a_request_becomes_a_method_call_with_the_id_as_serial() -> None:
    msg = json_to_dbus(_text())
    assert msg.header.message_type is MessageType.method_call
    assert msg.header.serial == 5
    assert msg.header.flags == 0  # a reply is expected, auto-start allowed
    fields = msg.header.fields
    assert fields[HeaderFields.member] == "read"
    assert fields[HeaderFields.destination] == "com.citrix.xenclient.db"
    assert fields[HeaderFields.path] == "/"
    assert fields[HeaderFields.signature] == "s"
    assert wire(msg).body == ("/vm",)


def test_a_missing_type_means_request_and_a_float_id_is_floored() -> None:
    msg = json_to_dbus(_text(type=None, id=9.75))
    assert msg.header.message_type is MessageType.method_call
    assert msg.header.serial == 9


def test_a_signal_takes_its_member_from_method() -> None:
    msg = json_to_dbus(json.dumps({"type": "signal", "id": 2, "path": "/a", "method": "changed",
                                   "interface": "a.b", "args": [True]}))
    assert msg.header.message_type is MessageType.signal
    assert msg.header.fields[HeaderFields.member] == "changed"
    assert HeaderFields.destination not in msg.header.fields
    assert wire(msg).body == (True,)


def test_a_response_and_an_error_take_a_numeric_response_to() -> None:
    reply = json_to_dbus('{"type":"response","id":3,"response-to":41,"args":["x"]}')
    assert reply.header.message_type is MessageType.method_return
    assert reply.header.fields[HeaderFields.reply_serial] == 41
    error = json_to_dbus('{"type":"error","id":4,"response-to":42.5,'
                         '"name":"org.freedesktop.DBus.Error.Failed","args":["boom"]}')
    assert error.header.message_type is MessageType.error
    assert error.header.fields[HeaderFields.reply_serial] == 42
    assert error.header.fields[HeaderFields.error_name] == "org.freedesktop.DBus.Error.Failed"
    assert wire(error).body == ("boom",)


def test_an_empty_argument_list_has_no_signature() -> None:
    msg = json_to_dbus(_text(args=[]))
    assert HeaderFields.signature not in msg.header.fields
    assert wire(msg).body == ()


# ------------------------------------------------------------------ typing rules


def test_dbus_signature_types_the_arguments() -> None:
    msg = json_to_dbus(_text(args=[7, {"a": 1}], **{"dbus-signature": "ta{sv}"}))
    assert msg.header.fields[HeaderFields.signature] == "ta{sv}"
    assert wire(msg).body == (7, {"a": ("i", 1)})


def test_dbus_signature_wins_over_introspection() -> None:
    parsed = parse_json_message(_text(method="set", args=[7, {}], **{"dbus-signature": "ua{ss}"}))
    assert parsed.introspection_target is None
    msg = to_dbus_message(parsed, parse_introspection(INTROSPECTION))
    assert msg.header.fields[HeaderFields.signature] == "ua{ss}"


def test_a_request_without_signature_is_typed_by_introspection() -> None:
    parsed = parse_json_message(_text(method="set", args=[7, {"k": "v", "n": 2}]))
    assert parsed.introspection_target == ("com.citrix.xenclient.db", "/")
    msg = to_dbus_message(parsed, parse_introspection(INTROSPECTION))
    assert msg.header.fields[HeaderFields.signature] == "ya{sv}"
    assert wire(msg).body == (7, {"k": ("s", "v"), "n": ("i", 2)})


def test_properties_set_gets_its_variant_from_introspection() -> None:
    parsed = parse_json_message(_text(method="Set", interface="org.freedesktop.DBus.Properties",
                                      args=["com.citrix.xenclient.db", "some-prop", 3]))
    msg = to_dbus_message(parsed, parse_introspection(INTROSPECTION))
    assert wire(msg).body == ("com.citrix.xenclient.db", "some-prop", ("i", 3))


def test_without_signature_or_introspection_the_arguments_are_guessed() -> None:
    parsed = parse_json_message(_text(method="unknown", args=[1, "a", True, [], {}]))
    for introspected in (None, parse_introspection(INTROSPECTION)):
        msg = to_dbus_message(parsed, introspected)
        assert msg.header.fields[HeaderFields.signature] == "usbaya{ss}"


def test_an_introspected_signature_with_another_arity_is_not_used() -> None:
    parsed = parse_json_message(_text(method="write", args=["only-one"]))
    msg = to_dbus_message(parsed, parse_introspection(INTROSPECTION))
    assert msg.header.fields[HeaderFields.signature] == "s"


def test_signals_replies_and_argless_requests_need_no_introspection() -> None:
    assert parse_json_message(_text(args=[])).introspection_target is None
    sig = parse_json_message('{"type":"signal","id":1,"path":"/","method":"m","interface":"a.b",'
                             '"args":[1]}')
    assert sig.introspection_target is None
    reply = parse_json_message('{"type":"response","id":1,"response-to":2,"args":[1]}')
    assert reply.introspection_target is None


def test_the_empty_array_bug_is_fixed() -> None:
    """The original sent ``["xyz"]`` for an empty JSON array; we send an empty array."""
    msg = json_to_dbus(_text(method="list", args=[[]], **{"dbus-signature": "as"}))
    assert wire(msg).body == ([],)
    parsed = parse_json_message(_text(method="set", args=[1, {}]))
    assert wire(to_dbus_message(parsed, parse_introspection(INTROSPECTION))).body == (1, {})


def test_parse_introspection_maps_methods_to_in_signatures() -> None:
    found = parse_introspection(INTROSPECTION)
    assert found == {("com.citrix.xenclient.db", "read"): "s",
                     ("com.citrix.xenclient.db", "write"): "ss",
                     ("com.citrix.xenclient.db", "set"): "ya{sv}",
                     ("org.freedesktop.DBus.Properties", "Set"): "ssv"}


@pytest.mark.parametrize("xml", [
    "<node><interface", "not xml", "",
    '<!DOCTYPE d [<!ENTITY a "aaaa">]><node>&a;</node>',
    '<node><interface name="a.b"><method name="m"><arg type="a{" direction="in"/></method>'
    "</interface></node>",
])
def test_bad_introspection_is_a_clear_error(xml: str) -> None:
    with pytest.raises(IntrospectionError):
        parse_introspection(xml)


# ------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(("text", "field", "words"), [
    (b"\xff\xfe", "", "not UTF-8"),
    ("{", "", "malformed JSON"),
    ("[1, 2]", "", "is an object"),
    ('{"id": NaN, "args": []}', "", "NaN is not a JSON number"),
    ("[" * 100000 + "]" * 100000, "", "nested"),
    ('{"id": ' + "9" * 5000 + "}", "", "malformed JSON"),
    (_text(type="call"), "type", "not one of"),
    (_text(type=None, id=None), "id", "missing"),
    (_text(id="5"), "id", "expected a number"),
    (_text(id=True), "id", "expected a number"),
    (_text(id=0), "id", "1..4294967295"),
    (_text(id=2**32), "id", "1..4294967295"),
    (_text(id=12345).replace("12345", "1e999"), "id", "not a finite number"),
    (_text(id=12345).replace("12345", "-1e999"), "id", "not a finite number"),
    (_text(args=None), "args", "missing"),
    (_text(args={"a": 1}), "args", "expected an array"),
    (_text(method=None), "method", "missing"),
    (_text(method="has-dash"), "method", "not a valid member name"),
    (_text(destination="nodots"), "destination", "not a valid bus name"),
    (_text(destination=":1"), "destination", "not a valid bus name"),
    (_text(path="relative"), "path", "not a valid object path"),
    (_text(interface="x"), "interface", "not a valid interface name"),
    (_text(interface=["a.b"]), "interface", "expected a string"),
    (_text(**{"dbus-signature": 5}), "dbus-signature", "expected a string"),
    (_text(**{"dbus-signature": "a{"}), "dbus-signature", "invalid DBus signature"),
    (_text(**{"dbus-signature": "ss"}), "dbus-signature", "2 types for 1 args"),
    ('{"type":"response","id":1,"args":[]}', "response-to", "missing"),
    ('{"type":"error","id":1,"response-to":1,"name":"bad","args":[]}', "name",
     "not a valid error name"),
])
def test_malformed_messages_name_the_field(text: str | bytes, field: str, words: str) -> None:
    with pytest.raises(JsonMessageError) as caught:
        parse_json_message(text)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_arguments_that_do_not_fit_name_their_place() -> None:
    with pytest.raises(JsonMessageError) as caught:
        json_to_dbus(_text(args=[1, {"k": [1, "x"]}], **{"dbus-signature": "ia{sai}"}))
    assert caught.value.field == "args[1]['k'][1]"


def test_a_text_over_the_size_limit_is_refused_before_parsing() -> None:
    big = '{"args": ["' + "a" * MAX_JSON_BYTES + '"]}'
    with pytest.raises(JsonMessageError, match="larger than"):
        parse_json_message(big)


def test_deep_nesting_inside_args_is_refused() -> None:
    with pytest.raises(JsonMessageError, match="nested deeper"):
        parse_json_message(_text(args=[json.loads("[" * 70 + "]" * 70)]))


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_parse_or_fail_clearly(data: bytes | str) -> None:
    try:
        parse_json_message(data)
    except JsonMessageError:
        pass


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
shapes = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["request", "signal", "response", "error"]) | json_leaves,
    "id": st.integers(-1, 2**33) | json_leaves,
    "method": st.sampled_from(["m", "Get"]) | json_leaves,
    "destination": st.sampled_from(["a.b", ":1.5"]) | json_leaves,
    "path": st.sampled_from(["/", "/a"]) | json_leaves,
    "interface": st.sampled_from(["a.b"]) | json_leaves,
    "response-to": st.integers(0, 5) | json_leaves,
    "name": st.sampled_from(["a.E"]) | json_leaves,
    "dbus-signature": st.sampled_from(["", "s", "i", "av", "(ii)", "a{sv}"]) | json_leaves,
    "args": st.lists(st.recursive(json_leaves, lambda i: st.lists(i, max_size=3)
                                  | st.dictionaries(st.text(max_size=3), i, max_size=3),
                                  max_leaves=6), max_size=3) | json_leaves,
})


@given(shapes)
def test_any_object_becomes_a_valid_message_or_a_clear_error(obj: dict[str, Any]) -> None:
    try:
        msg = json_to_dbus(json.dumps(obj))
    except JsonMessageError:
        return
    assert wire(msg).body == wire(wire(msg)).body  # the bytes are a well-formed DBus message


# ------------------------------------------------------------------ DBus -> JSON


def _msg(kind: MessageType, fields: dict[HeaderFields, Any], body: tuple[Any, ...] = (),
         serial: int = 17) -> Message:
    return wire(Message(Header(Endianness.little, kind, 0, 1, -1, serial, fields), body))


def test_output_keys_and_order_for_each_kind() -> None:
    call = _msg(MessageType.method_call, {
        HeaderFields.path: "/p", HeaderFields.interface: "a.b", HeaderFields.member: "m",
        HeaderFields.destination: "a.b", HeaderFields.signature: "s"}, ("x",))
    assert list(dbus_to_json(call).items()) == [
        ("id", 17), ("type", "request"), ("method", "m"), ("destination", "a.b"),
        ("path", "/p"), ("interface", "a.b"), ("args", ["x"])]
    sig = _msg(MessageType.signal, {HeaderFields.path: "/p", HeaderFields.interface: "a.b",
                                    HeaderFields.member: "s"})
    assert list(dbus_to_json(sig)) == ["id", "type", "interface", "member", "path", "args"]
    reply = _msg(MessageType.method_return, {HeaderFields.reply_serial: 41,
                                             HeaderFields.signature: "i"}, (3,))
    assert dbus_to_json(reply) == {"id": 17, "type": "response", "response-to": "41",
                                   "args": [3]}
    error = _msg(MessageType.error, {HeaderFields.reply_serial: 9,
                                     HeaderFields.error_name: "a.E"})
    assert list(dbus_to_json(error).items()) == [
        ("id", 17), ("type", "error"), ("response-to", "9"), ("name", "a.E"), ("args", [])]


def test_encode_json_is_compact_utf8_without_nul() -> None:
    msg = _msg(MessageType.method_return, {HeaderFields.reply_serial: 1,
                                           HeaderFields.signature: "s"}, ("é",))
    out = encode_json(msg)
    assert out == '{"id":17,"type":"response","response-to":"1","args":["é"]}'.encode()
    assert b"\0" not in out


@pytest.mark.parametrize(("fields", "field"), [
    ({HeaderFields.path: "/", HeaderFields.member: "m", HeaderFields.interface: "a.b"},
     "destination"),
    ({HeaderFields.path: "/", HeaderFields.member: "m", HeaderFields.destination: "a.b"},
     "interface"),
])
def test_a_call_without_destination_or_interface_cannot_be_written(
        fields: dict[HeaderFields, Any], field: str) -> None:
    with pytest.raises(JsonOutputError) as caught:
        dbus_to_json(_msg(MessageType.method_call, fields))
    assert caught.value.field == field


def test_a_nan_double_cannot_be_written() -> None:
    with pytest.raises(JsonOutputError) as caught:
        encode_json(signal("id", (1, float("nan"))))
    assert caught.value.field == "args[1]"


def _as_input(out: dict[str, Any], signature: str) -> str:
    """What a client would send back for the JSON ``out`` we produced (input key names)."""
    obj = dict(out)
    if obj["type"] == "signal":
        obj["method"] = obj.pop("member")
    if "response-to" in obj:
        obj["response-to"] = int(obj["response-to"])
    obj["dbus-signature"] = signature
    return json.dumps(obj)


@given(st.lists(typed_values, min_size=1, max_size=3))
def test_any_dbus_body_survives_json_and_back_on_the_wire(pairs: list[tuple[str, Any]]) -> None:
    signature = "".join(sig for sig, _ in pairs)
    original = wire(signal(signature, tuple(v for _, v in pairs)))
    back = wire(json_to_dbus(_as_input(json.loads(encode_json(original)), signature)))
    assert back.body == original.body
    assert back.header.serial == original.header.serial
    assert back.header.fields == original.header.fields


def test_a_reply_survives_json_and_back() -> None:
    original = _msg(MessageType.error, {HeaderFields.reply_serial: 9, HeaderFields.error_name:
                                        "org.freedesktop.DBus.Error.Failed",
                                        HeaderFields.signature: "s"}, ("no",))
    back = wire(json_to_dbus(_as_input(dbus_to_json(original), "s")))
    assert back.header.fields == original.header.fields
    assert back.body == ("no",)


def test_json_message_is_a_frozen_value() -> None:
    parsed = parse_json_message(_text())
    assert parsed == JsonMessage("request", 5, ("/vm",), None, "com.citrix.xenclient.db", "/",
                                 "com.citrix.xenclient.db", "read")
    with pytest.raises(AttributeError):
        parsed.id = 6  # type: ignore[misc]
    assert not MessageFlag.no_reply_expected & json_to_dbus(_text()).header.flags


def test_the_size_limit_counts_utf8_bytes_of_a_str() -> None:
    text = '{"args": ["' + "é" * (MAX_JSON_BYTES // 2) + '"]}'  # fewer characters than the limit
    assert len(text) < MAX_JSON_BYTES
    with pytest.raises(JsonMessageError, match="larger than"):
        parse_json_message(text)


def test_introspection_may_be_given_as_the_in_signature() -> None:
    parsed = parse_json_message(_text(method="set", args=[7, {"k": "v"}]))
    assert wire(to_dbus_message(parsed, "ya{sv}")).body == (7, {"k": ("s", "v")})
    with pytest.raises(JsonMessageError, match="introspected"):
        to_dbus_message(parsed, "a{")
