"""The always-denied checks (rpc.proxy._security): eavesdropping, monitors, activation
environment and the other bus-driver calls a guest never makes; forged reply serials."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    MessageType,
    WireLimits,
    WireMessage,
    always_denied,
    build_message,
    encode_values,
    parse_message,
)

BUS = "org.freedesktop.DBus"


def denied(msg: WireMessage) -> str:
    reason = always_denied(msg)
    assert reason is not None
    return reason


def bus_call(member: str, interface: str | None = BUS, sig: str = "",
             args: tuple[object, ...] = (), dest: str = BUS) -> WireMessage:
    return parse_message(build_message(
        MessageType.METHOD_CALL, serial=1, path="/org/freedesktop/DBus", member=member,
        interface=interface, destination=dest, signature=sig,
        body=encode_values(sig, list(args))))


@pytest.mark.parametrize("rule", [
    "eavesdrop=true", "type='signal',eavesdrop='true'", "eavesdrop='false'",
    "type='signal', EAVESDROP='true'", "arg0='x',eaVesdrop=true", " eavesdrop = 'true' ",
])
@pytest.mark.parametrize("interface", [BUS, None])
def test_addmatch_mentioning_eavesdrop_is_denied(rule: str, interface: str | None) -> None:
    assert always_denied(bus_call("AddMatch", interface, "s", (rule,))) == (
        "AddMatch with eavesdrop")


def test_ordinary_addmatch_hello_and_service_calls_pass() -> None:
    assert always_denied(bus_call("AddMatch", BUS, "s", ("type='signal'",))) is None
    assert always_denied(bus_call("Hello")) is None
    assert always_denied(bus_call("BecomeMonitor", dest="com.x.y")) is None


def test_addmatch_that_cannot_be_checked_is_denied() -> None:
    assert "signature" in denied(bus_call("AddMatch", BUS, "u", (1,)))
    raw = build_message(MessageType.METHOD_CALL, serial=1, path="/", member="AddMatch",
                        destination=BUS, signature="s", body=b"\x03\0\0\0ab\0\0")
    assert "malformed" in denied(parse_message(raw))


@pytest.mark.parametrize(("member", "interface"), [
    ("BecomeMonitor", "org.freedesktop.DBus.Monitoring"), ("BecomeMonitor", None),
    ("BecomeMonitor", BUS), ("UpdateActivationEnvironment", BUS),
    ("UpdateActivationEnvironment", None), ("ReloadConfig", BUS),
    ("GetStats", "org.freedesktop.DBus.Debug.Stats"),
    ("GetConnectionStats", "org.freedesktop.DBus.Debug.Stats"),
    ("EnableVerbose", "org.freedesktop.DBus.Verbose"),
    ("AddServer", "org.freedesktop.DBus.Containers1"),
])
def test_bus_driver_calls_never_allowed(member: str, interface: str | None) -> None:
    assert always_denied(bus_call(member, interface)) is not None


def test_calls_and_signals_quoting_a_reply_serial_are_denied() -> None:
    extra: dict[str, str]
    for mtype, extra in ((MessageType.METHOD_CALL, {}),
                         (MessageType.SIGNAL, {"interface": "a.b"})):
        msg = parse_message(build_message(mtype, serial=1, path="/", member="M",
                                          reply_serial=5, interface=extra.get("interface")))
        assert "reply serial" in denied(msg)


def test_file_descriptors_are_denied() -> None:
    msg = parse_message(build_message(MessageType.METHOD_CALL, serial=1, path="/",
                                      member="M", unix_fds=1), WireLimits(max_unix_fds=1))
    assert "file descriptors" in denied(msg)


@given(st.text(max_size=60))
def test_any_rule_text_containing_eavesdrop_in_any_case_is_denied(text: str) -> None:
    text = text.replace("\0", "")
    for rule in (text, text + "eAvEsDrOp='true'" + text):
        verdict = always_denied(bus_call("AddMatch", BUS, "s", (rule,)))
        assert (verdict is not None) == ("eavesdrop" in rule.lower())
