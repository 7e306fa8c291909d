"""The proxy's header parser, rewriter, builder and body codec (rpc.proxy._message,
rpc.proxy._signature): golden bytes, the spec's header rules, limits, round trips with jeepney."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jeepney import DBusAddress, new_method_call, new_method_return, new_signal
from jeepney.low_level import Endianness, Header, HeaderFields, Message
from jeepney.low_level import MessageType as JMessageType

from rpc.proxy import (
    CLIENT_LIMITS,
    MessageType,
    WireError,
    WireLimits,
    WireReason,
    build_message,
    decode_body,
    encode_values,
    error_reply,
    first_string_arg,
    message_size,
    parse_message,
    properties_interface,
    rewrite,
    with_body,
)
from tests.fuzz.fuzz_wire import random_message, random_type, random_value

BUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                  interface="org.freedesktop.DBus")

# A method call written by hand from the spec: l, call, no flags, v1, body 8 bytes, serial 5;
# fields (39 bytes): path "/a" (o), member "M" (s), signature "u" (g); one byte of
# padding; body uint32 7.
GOLDEN = (b"l\x01\x00\x01" + struct.pack("<III", 4, 5, 39)
          + b"\x01\x01o\x00" + struct.pack("<I", 2) + b"/a\x00" + b"\x00" * 5
          + b"\x03\x01s\x00" + struct.pack("<I", 1) + b"M\x00" + b"\x00" * 6
          + b"\x08\x01g\x00\x01u\x00" + b"\x00"
          + struct.pack("<I", 7))


def jmsg(mtype: JMessageType, fields: dict[HeaderFields, Any], sig: str = "",
         body: tuple[Any, ...] = (), big: bool = False, serial: int = 3, flags: int = 0) -> bytes:
    if sig:
        fields = {**fields, HeaderFields.signature: sig}
    endian = Endianness.big if big else Endianness.little
    return Message(Header(endian, mtype, flags, 1, -1, -1, fields), body).serialise(serial=serial)


def test_golden_bytes_parse_to_their_facts() -> None:
    msg = parse_message(GOLDEN)
    assert (msg.type, msg.serial, msg.path, msg.member, msg.signature) == (
        MessageType.METHOD_CALL, 5, "/a", "M", "u")
    assert (msg.interface, msg.destination, msg.reply_serial) == (None, None, None)
    assert decode_body(msg) == [7]
    assert msg.body_offset == 56 and msg.body_length == 4
    assert Message.from_buffer(GOLDEN).body == (7,)
    assert build_message(MessageType.METHOD_CALL, serial=5, path="/a", member="M",
                         signature="u", body=struct.pack("<I", 7)) == GOLDEN


@pytest.mark.parametrize("big", [False, True])
def test_every_message_type_parses_in_both_byte_orders(big: bool) -> None:
    call = new_method_call(BUS, "RequestName", "su", ("com.x.y", 4))
    call.header.endianness = Endianness.big if big else Endianness.little
    raw = call.serialise(serial=11)
    msg = parse_message(raw)
    assert msg.big is big
    assert (msg.type, msg.serial, msg.destination, msg.interface, msg.member) == (
        MessageType.METHOD_CALL, 11, "org.freedesktop.DBus", "org.freedesktop.DBus",
        "RequestName")
    assert msg.expects_reply
    assert decode_body(msg) == ["com.x.y", 4]
    ret = new_method_return(Message.from_buffer(raw), "s", (":1.4",))
    ret.header.fields[HeaderFields.sender] = "org.freedesktop.DBus"
    r = parse_message(ret.serialise(serial=2))
    assert (r.type, r.reply_serial, r.sender, r.destination) == (
        MessageType.METHOD_RETURN, 11, "org.freedesktop.DBus", None)
    sig = parse_message(new_signal(BUS, "NameLost", "s", ("a.b",)).serialise(serial=9))
    assert (sig.type, sig.member, sig.path) == (MessageType.SIGNAL, "NameLost",
                                                "/org/freedesktop/DBus")
    err = parse_message(error_reply(msg, "org.freedesktop.DBus.Error.Failed", "no", serial=4))
    assert (err.type, err.error_name, err.reply_serial, err.big) == (
        MessageType.ERROR, "org.freedesktop.DBus.Error.Failed", 11, big)
    assert decode_body(err) == ["no"]
    assert Message.from_buffer(err.data).body == ("no",)


CALL = {HeaderFields.path: "/p", HeaderFields.member: "M"}


@pytest.mark.parametrize(("mtype", "fields", "missing"), [
    (JMessageType.method_call, {HeaderFields.member: "M"}, "PATH"),
    (JMessageType.method_call, {HeaderFields.path: "/p"}, "MEMBER"),
    (JMessageType.signal, CALL, "INTERFACE"),
    (JMessageType.method_return, {}, "REPLY_SERIAL"),
    (JMessageType.error, {HeaderFields.reply_serial: 1}, "ERROR_NAME"),
    (JMessageType.error, {HeaderFields.error_name: "a.B"}, "REPLY_SERIAL"),
])
def test_required_fields_per_type(mtype: JMessageType, fields: dict[HeaderFields, Any],
                                  missing: str) -> None:
    with pytest.raises(WireError) as info:
        parse_message(jmsg(mtype, fields))
    assert info.value.reason is WireReason.MISSING_FIELD and missing in str(info.value)


@pytest.mark.parametrize(("field", "value"), [
    (HeaderFields.path, "/a/"), (HeaderFields.path, "a"), (HeaderFields.path, "/a//b"),
    (HeaderFields.interface, "nodots"), (HeaderFields.interface, "a.1b"),
    (HeaderFields.interface, "a." + "b" * 255), (HeaderFields.member, "a.b"),
    (HeaderFields.member, "1a"), (HeaderFields.member, ""), (HeaderFields.destination, "x"),
    (HeaderFields.destination, ":1"), (HeaderFields.destination, "a..b"),
    (HeaderFields.sender, "1a.b"), (HeaderFields.interface, "é.b"),
])
def test_invalid_names_are_refused(field: HeaderFields, value: str) -> None:
    values: dict[str, Any] = {"path": "/p", "member": "M", field.name: value}
    with pytest.raises(WireError) as info:
        parse_message(build_message(MessageType.METHOD_CALL, serial=1, **values))
    assert info.value.reason is WireReason.BAD_NAME


@pytest.mark.parametrize("name", [":1.42", ":a-b.c_d", "org.x-y.Z_9", "a.b", "_a.-b"])
def test_valid_bus_names_pass(name: str) -> None:
    assert parse_message(jmsg(JMessageType.method_call,
                              {**CALL, HeaderFields.destination: name})).destination == name


def test_reserved_local_path_and_interface_are_refused() -> None:
    for fields in ({**CALL, HeaderFields.path: "/org/freedesktop/DBus/Local"},
                   {**CALL, HeaderFields.interface: "org.freedesktop.DBus.Local"}):
        with pytest.raises(WireError, match="reserved"):
            parse_message(jmsg(JMessageType.method_call, fields))


def patched(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value):]


@pytest.mark.parametrize(("at", "value", "reason"), [
    (0, b"x", WireReason.BAD_FIXED_HEADER),       # byte order
    (1, b"\x00", WireReason.BAD_FIXED_HEADER),    # type 0
    (1, b"\x05", WireReason.BAD_FIXED_HEADER),    # unknown type
    (3, b"\x02", WireReason.BAD_FIXED_HEADER),    # version
    (8, b"\0\0\0\0", WireReason.BAD_FIXED_HEADER),  # serial 0
    (16, b"\x00", WireReason.BAD_HEADER_FIELD),   # field code 0
    (18, b"s", WireReason.BAD_HEADER_FIELD),      # path with signature s
    (28, b"\x01", WireReason.BAD_HEADER_FIELD),   # non-zero padding between fields
    (55, b"\x01", WireReason.BAD_HEADER_FIELD),   # non-zero padding after the fields
    (4, struct.pack("<I", 5), WireReason.TRUNCATED),  # body length says 5, has 4
])
def test_fixed_header_and_field_violations(at: int, value: bytes, reason: WireReason) -> None:
    with pytest.raises(WireError) as info:
        parse_message(patched(GOLDEN, at, value))
    assert info.value.reason is reason


def test_duplicate_field_and_body_without_signature() -> None:
    member = b"\x03\x01s\x00" + struct.pack("<I", 1) + b"M\x00"
    dup = (b"l\x01\x00\x01" + struct.pack("<III", 0, 5, 26)
           + member + b"\x00" * 6 + member + b"\x00" * 6)
    with pytest.raises(WireError, match="twice"):
        parse_message(dup)
    nosig = build_message(MessageType.METHOD_CALL, serial=1, path="/a", member="M",
                          body=b"\0" * 4)
    with pytest.raises(WireError, match="without a signature"):
        parse_message(nosig)


def test_unknown_fields_are_validated_and_skipped() -> None:
    extra = b"\x0a\x02as\x00\0\0\0" + struct.pack("<II", 6, 1) + b"x\x00"  # code 10: ["x"]
    fields = (b"\x01\x01o\x00" + struct.pack("<I", 2) + b"/a\x00" + b"\x00" * 5
              + b"\x03\x01s\x00" + struct.pack("<I", 1) + b"M\x00" + b"\x00" * 6 + extra)
    raw = b"l\x01\x00\x01" + struct.pack("<III", 0, 5, len(fields)) + fields
    raw += b"\0" * (-len(raw) % 8)
    assert parse_message(raw).member == "M"
    broken = raw.replace(b"x\x00", b"x\x01")
    with pytest.raises(WireError, match="unknown field"):
        parse_message(broken)


def test_limits_are_checked_before_buffering() -> None:
    small = WireLimits(max_message_size=64, max_header_size=32)
    with pytest.raises(WireError) as info:
        message_size(GOLDEN[:16], WireLimits(max_message_size=40))
    assert info.value.reason is WireReason.TOO_LARGE
    with pytest.raises(WireError, match="header of 56 bytes"):
        message_size(GOLDEN[:16], small)
    huge = patched(GOLDEN, 4, struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(WireError, match="over the"):
        message_size(huge[:16], CLIENT_LIMITS)
    raw = jmsg(JMessageType.method_call, {**CALL, HeaderFields.destination: "a.b",
                                          HeaderFields.interface: "a.b",
                                          HeaderFields.sender: ":1.1"}, "u", (1,))
    with pytest.raises(WireError, match="more than 3 header fields"):
        parse_message(raw, WireLimits(max_header_fields=3))


def test_unix_fds_are_refused_by_default() -> None:
    raw = jmsg(JMessageType.method_call, {**CALL, HeaderFields.unix_fds: 1})
    with pytest.raises(WireError) as info:
        parse_message(raw)
    assert info.value.reason is WireReason.UNIX_FDS
    assert parse_message(raw, WireLimits(max_unix_fds=4)).unix_fds == 1


def test_signature_nesting_follows_the_spec() -> None:
    ok = "a" * 32 + "y"
    assert parse_message(jmsg(JMessageType.method_call, CALL, ok, ([],))).signature == ok
    for sig in ("a" * 33 + "y", "(" * 33 + "y" + ")" * 33,
                "a(" * 32 + "ay" + ")" * 32):  # 32 arrays + 32 structs + 1 array = 65 levels
        raw = build_message(MessageType.METHOD_CALL, serial=1, path="/", member="M",
                            signature=sig, body=b"\0" * 8)
        with pytest.raises(WireError) as info:
            parse_message(raw)
        assert info.value.reason is WireReason.BAD_SIGNATURE


def test_rewrite_serials_in_place_and_names_by_relaying() -> None:
    raw = new_method_call(BUS, "RequestName", "su", ("com.x.y", 4)).serialise(serial=7)
    msg = parse_message(raw)
    moved = rewrite(msg, serial=1234)
    assert moved.serial == 1234 and len(moved.data) == len(raw)
    assert Message.from_buffer(moved.data).header.serial == 1234
    assert moved._replace(data=raw, serial=7) == msg
    renamed = rewrite(msg, destination=":1.99", sender="org.x.y", serial=3)
    assert parse_message(renamed.data) == renamed
    header = Message.from_buffer(renamed.data).header
    assert (header.serial, header.fields[HeaderFields.destination],
            header.fields[HeaderFields.sender]) == (3, ":1.99", "org.x.y")
    assert decode_body(renamed) == ["com.x.y", 4] and renamed.big is msg.big
    ret = parse_message(jmsg(JMessageType.method_return, {HeaderFields.reply_serial: 5}, "s",
                             ("x",), big=True))
    again = rewrite(ret, reply_serial=77)
    assert again.reply_serial == 77 and Message.from_buffer(again.data).header.fields[
        HeaderFields.reply_serial] == 77
    with pytest.raises(ValueError, match="no reply serial"):
        rewrite(msg, reply_serial=1)
    with pytest.raises(ValueError):
        rewrite(msg, serial=0)
    with pytest.raises(ValueError, match="invalid bus name"):
        rewrite(msg, destination="nodot")
    assert rewrite(msg) is msg


def test_with_body_keeps_the_header() -> None:
    msg = parse_message(new_method_call(BUS, "RequestName", "su", ("a.b", 4))
                        .serialise(serial=7))
    new = with_body(msg, "su", ["c.d", 4])
    assert decode_body(new) == ["c.d", 4]
    assert new._replace(data=msg.data, body_length=msg.body_length) == msg


def test_decode_body_rejects_what_the_spec_forbids() -> None:
    def body_of(sig: str, body: bytes) -> Any:
        return decode_body(parse_message(build_message(
            MessageType.METHOD_CALL, serial=1, path="/", member="M", signature=sig,
            body=body)))
    cases = {
        "b": struct.pack("<I", 2),                          # boolean 2
        "s": struct.pack("<I", 2) + b"a\x00\x00",           # NUL inside
        "o": struct.pack("<I", 2) + b"ab\x00",              # bad path
        "g": b"\x02{y\x00",                                 # bad signature
        "v": b"\x02ss\x00",                                 # variant not one type
        "ai": struct.pack("<I", 6) + b"\0" * 6,             # array not a multiple
        "ay": struct.pack("<I", 100) + b"x",                # past the end
        "u": b"\x01\x02",                                   # truncated
        "yu": b"\x01\x01\x00\x00" + struct.pack("<I", 1),   # non-zero padding
        "uu": struct.pack("<I", 1),                         # missing value
        "y": b"\x01\x00",                                   # trailing bytes
    }
    for sig, body in cases.items():
        with pytest.raises(WireError):
            body_of(sig, body)
    bad_utf8 = struct.pack("<I", 1) + b"\xff\x00"
    with pytest.raises(WireError, match="UTF-8"):
        body_of("s", bad_utf8)
    with pytest.raises(WireError, match="nested deeper"):  # 70 variants inside each other
        body_of("v", b"\x01v\x00" * 70 + b"\x01y\x00\x05")
    assert body_of("v", b"\x01v\x00" * 3 + b"\x01y\x00\x05") == [("v", ("v", ("v", ("y", 5))))]


def _norm(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


@given(st.integers(0, 2**32 - 1))
def test_thousands_of_jeepney_messages_parse_decode_and_reencode(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        raw = random_message(rng)
        msg = parse_message(raw, WireLimits(max_message_size=1 << 20))
        jm = Message.from_buffer(raw)
        values = decode_body(msg, WireLimits(max_message_size=1 << 20))
        assert _norm(values) == _norm(list(jm.body))
        assert encode_values(msg.signature, values, msg.big) == msg.body
        assert (msg.serial, msg.path, msg.member, msg.destination) == (
            jm.header.serial, jm.header.fields.get(HeaderFields.path),
            jm.header.fields.get(HeaderFields.member),
            jm.header.fields.get(HeaderFields.destination))
        rebuilt = build_message(msg.type, serial=msg.serial, body=msg.body,
                                signature=msg.signature, path=msg.path,
                                interface=msg.interface, member=msg.member,
                                error_name=msg.error_name, reply_serial=msg.reply_serial,
                                destination=msg.destination, sender=msg.sender,
                                flags=msg.flags, big=msg.big)
        assert parse_message(rebuilt, WireLimits(max_message_size=1 << 20)) == msg._replace(
            data=rebuilt)


@given(st.integers(0, 2**32 - 1))
def test_our_encoding_is_what_jeepney_reads(seed: int) -> None:
    rng = random.Random(seed)
    sig = "".join(random_type(rng) for _ in range(3))
    sig_parts = _split(sig)
    values = [random_value(rng, t)[0] for t in sig_parts]
    body = encode_values(sig, values)
    raw = build_message(MessageType.METHOD_CALL, serial=1, path="/", member="M",
                        signature=sig, body=body)
    assert _norm(list(Message.from_buffer(raw).body)) == _norm(values)


def _split(sig: str) -> list[str]:
    from tests.fuzz.fuzz_wire import _one
    parts = []
    while sig:
        parts.append(_one(sig))
        sig = sig[len(parts[-1]):]
    return parts


def test_encode_values_refuses_values_that_do_not_fit() -> None:
    for sig, values in (("y", [256]), ("s", [1]), ("o", ["x"]), ("s", ["a\0"]),
                        ("u", [-1]), ("(ii)", [(1,)]), ("v", [("yy", 1)]), ("ss", ["a"])):
        with pytest.raises((ValueError, TypeError)):
            encode_values(sig, values)


def test_properties_interface_decodes_only_the_first_argument() -> None:
    props = DBusAddress("/vm/x", bus_name="com.citrix.xenclient.xenmgr",
                        interface="org.freedesktop.DBus.Properties")
    get = parse_message(new_method_call(props, "Get", "ss", ("com.x.vm", "name"))
                        .serialise(serial=1))
    assert properties_interface(get) == "com.x.vm"
    set_ = parse_message(new_method_call(props, "Set", "ssv", ("com.x.vm", "n", ("s", "v")))
                         .serialise(serial=1))
    assert properties_interface(set_) == "com.x.vm"
    assert properties_interface(parse_message(new_method_call(
        props, "GetAll", "s", ("com.y",)).serialise(serial=1))) == "com.y"
    other = parse_message(new_method_call(BUS, "Get", "ss", ("a", "b")).serialise(serial=1))
    assert properties_interface(other) is None
    broken = build_message(MessageType.METHOD_CALL, serial=1, path="/", member="Get",
                           interface="org.freedesktop.DBus.Properties", signature="ss",
                           body=struct.pack("<I", 99) + b"x\0\0\0")
    assert properties_interface(parse_message(broken)) is None
    with pytest.raises(WireError):
        first_string_arg(parse_message(broken))
    assert first_string_arg(parse_message(GOLDEN)) is None


def test_padding_after_the_last_field_is_a_wire_error_not_a_crash() -> None:
    # found by tests/fuzz/fuzz_wire.py --count 1000000: the fields' length counts the padding
    # after the last field, so the padding runs to the end of the fields
    data = bytes.fromhex(
        "6c04030100000000c709d58e7000000001016f00090000002f612f625f632f44390000000000000002017"
        "300140000006f72672e667265656465736b746f702e4442757300000000030173000c0000004765744e61"
        "6d654f776e657200000000060173000b0000006f72672e785f792e5a2d7100000000000801670001740000"
        "e66fa388f4041570")
    from rpc.proxy._frames import MessageSplitter
    for parse in (lambda d: parse_message(d), lambda d: MessageSplitter().feed(d)):
        with pytest.raises(WireError):
            parse(data)
