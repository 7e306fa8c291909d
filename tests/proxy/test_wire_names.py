"""Name rewriting (rpc.proxy._names): -n with $UUID, anonymous destinations, --owner-name."""

from __future__ import annotations

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.low_level import Endianness, Message

from rpc.proxy import (
    AnonymousDestinations,
    MessageType,
    OwnerNames,
    build_message,
    decode_body,
    parse_message,
    request_name_for,
    rewrite_request_name,
)

BUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                  interface="org.freedesktop.DBus")
UUID = "00000000-0000-0000-0000-000000000042"
TEMPLATE = "com.citrix.xenclient.guest.uuid_$UUID"


def bus_call(member: str, sig: str, args: tuple[object, ...], big: bool = False,
             serial: int = 4) -> Message:
    msg = new_method_call(BUS, member, sig, args)
    if big:
        msg.header.endianness = Endianness.big
    return parse_message(msg.serialise(serial=serial))


@pytest.mark.parametrize("big", [False, True])
def test_request_name_is_rewritten_with_the_uuid_flags_kept(big: bool) -> None:
    msg = bus_call("RequestName", "su", ("org.evil.Name", 6), big=big)
    new = rewrite_request_name(msg, TEMPLATE, UUID)
    assert decode_body(new) == [
        "com.citrix.xenclient.guest.uuid_00000000_0000_0000_0000_000000000042", 6]
    assert (new.serial, new.big, new.destination) == (4, big, "org.freedesktop.DBus")
    assert Message.from_buffer(new.data).body[1] == 6


def test_request_name_untouched_without_uuid_or_template_or_for_other_calls() -> None:
    msg = bus_call("RequestName", "su", ("a.b", 0))
    assert rewrite_request_name(msg, TEMPLATE, None) is msg
    assert rewrite_request_name(msg, None, UUID) is msg
    hello = bus_call("Hello", "", ())
    assert rewrite_request_name(hello, TEMPLATE, UUID) is hello
    other = parse_message(build_message(MessageType.METHOD_CALL, serial=1, path="/",
                                        member="RequestName", destination="com.x.y",
                                        signature="su", body=msg.body))
    assert rewrite_request_name(other, TEMPLATE, UUID) is other


def test_bad_template_is_a_clear_error() -> None:
    assert request_name_for("a.b_$UUID", "x-y") == "a.b_x_y"
    with pytest.raises(ValueError, match="not a valid bus name"):
        request_name_for("$UUID", UUID)
    with pytest.raises(ValueError):
        request_name_for("a.b/$UUID", UUID)


def test_anonymous_destinations_translate_known_names_only() -> None:
    table = AnonymousDestinations()
    table.learn(":1.5", "com.citrix.xenclient.xenmgr")
    call = parse_message(build_message(MessageType.METHOD_CALL, serial=3, path="/",
                                       member="list_vms", destination=":1.5"))
    new = table.translate(call)
    assert new is not None and new.destination == "com.citrix.xenclient.xenmgr"
    assert new.serial == 3 and new.member == "list_vms"
    unknown = call._replace()  # same message, forget the name
    table.forget(":1.5")
    assert table.translate(unknown) is None
    well_known = parse_message(build_message(MessageType.METHOD_CALL, serial=3, path="/",
                                             member="m", destination="a.b"))
    assert table.translate(well_known) is well_known
    table.learn_all({":1.5": "x.y", ":1.6": "z.w"})
    table.learn(":1.5", "x.newer")
    assert table.lookup(":1.5") == "x.newer" and len(table) == 2


def test_owner_name_replies_carry_the_name_asked_for() -> None:
    owners = OwnerNames(max_entries=2)
    ask = bus_call("GetNameOwner", "s", ("com.citrix.xenclient.db",), serial=10)
    owners.note_call(ask)
    answer = parse_message(build_message(MessageType.METHOD_RETURN, serial=99, reply_serial=10,
                                         sender="org.freedesktop.DBus", signature="s",
                                         body=b"\x04\0\0\0:1.9\0"))
    spoofed = owners.spoof_reply(answer)
    assert decode_body(spoofed) == ["com.citrix.xenclient.db"]
    assert spoofed.reply_serial == 10 and len(owners) == 0
    assert owners.spoof_reply(answer) is answer  # once only


def test_owner_name_errors_forget_and_the_table_is_bounded() -> None:
    owners = OwnerNames(max_entries=2)
    for serial in (1, 2, 3):
        owners.note_call(bus_call("GetNameOwner", "s", ("a.b",), serial=serial))
    assert len(owners) == 2
    err = parse_message(build_message(MessageType.ERROR, serial=5, reply_serial=3,
                                      error_name="org.freedesktop.DBus.Error.NameHasNoOwner"))
    assert owners.spoof_reply(err) is err and len(owners) == 1
    owners.note_call(bus_call("Hello", "", ()))
    assert len(owners) == 1
    owners.forget_all()
    assert len(owners) == 0
    with pytest.raises(ValueError):
        OwnerNames(max_entries=0)
