"""rpc.dbus.refuse_unavailable: the answer a call gets when the actor that would run it is
restarting or gone, also while the service's own connection closes."""

from __future__ import annotations

from jeepney.low_level import HeaderFields

from rpc.dbus import FAILED, Call, ConnectionLost, ObjectTable, refuse_unavailable
from rpc.dbus._messages import method_call


def _call(table: ObjectTable) -> Call:
    msg = method_call(":1.5", "/x", "org.example.I", "M")
    msg.header.serial = 7
    return Call(msg, "/x", "org.example.I", "M", ":1.9", table)


def test_the_caller_gets_failed_naming_why() -> None:
    sent = []
    table = ObjectTable()
    table.bind(sent.append)
    refuse_unavailable(_call(table), "/persistence/store is restarting")
    (reply,) = sent
    assert reply.header.fields[HeaderFields.error_name] == FAILED
    assert reply.header.fields[HeaderFields.reply_serial] == 7
    assert reply.body == ("service unavailable: /persistence/store is restarting",)


def test_a_closing_connection_is_not_an_error_of_the_refusal() -> None:
    def closed(_msg: object) -> None:
        raise ConnectionLost("the connection is closed")

    table = ObjectTable()
    table.bind(closed)
    call = _call(table)
    refuse_unavailable(call, "/db ended (Killed)")  # does not raise
    assert call.answered
