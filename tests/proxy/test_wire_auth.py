"""The SASL handshake (rpc.proxy._auth): the table, real client dialogues, bounds, bus side."""

from __future__ import annotations

import pytest
from jeepney.auth import BEGIN, Authenticator

from rpc.proxy import AuthError, AuthState, BusAuth, IllegalTransition, ServerAuth, bus_auth_line
from rpc.proxy._auth import (
    REPLIES,
    TRANSITIONS,
    AuthAccepted,
    AuthNeedsData,
    AuthUnsupported,
    Begin,
    Cancel,
    ClientError,
    DataInvalid,
    DataValid,
    NegotiateUnixFd,
    Nul,
    Unknown,
    classify,
)

GUID = "0123456789abcdef0123456789abcdef"
EVENTS = [Nul(), AuthAccepted("EXTERNAL", "0"), AuthNeedsData("EXTERNAL"),
          AuthUnsupported("DBUS_COOKIE_SHA1"), DataValid("30"), DataInvalid(), Begin(),
          Cancel(), ClientError(), NegotiateUnixFd(), Unknown("HELLO")]


@pytest.mark.parametrize("state", list(AuthState))
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_state_and_event_is_in_the_table_or_raises(state: AuthState, event: object) -> None:
    auth = ServerAuth(GUID)
    auth.state = state
    target = TRANSITIONS[state].get(type(event))  # type: ignore[arg-type]
    if target is None:
        with pytest.raises(IllegalTransition):
            auth.step(event)  # type: ignore[arg-type]
        assert auth.state is AuthState.FAILED
    else:
        reply = auth.step(event)  # type: ignore[arg-type]
        assert auth.state is target
        assert (reply != b"") == ((state, type(event)) in REPLIES)


def test_replies_only_for_legal_steps() -> None:
    for state, event in REPLIES:
        assert event in TRANSITIONS[state]


@pytest.mark.parametrize(("line", "event"), [
    ("AUTH EXTERNAL 30", AuthAccepted("EXTERNAL", "0")),
    ("AUTH EXTERNAL", AuthNeedsData("EXTERNAL")),
    ("AUTH ANONYMOUS", AuthAccepted("ANONYMOUS", None)),
    ("AUTH ANONYMOUS 6869", AuthAccepted("ANONYMOUS", "hi")),
    ("AUTH DBUS_COOKIE_SHA1 30", AuthUnsupported("DBUS_COOKIE_SHA1")),
    ("AUTH", AuthUnsupported("")),
    ("AUTH EXTERNAL zz", AuthUnsupported("EXTERNAL")),
    ("DATA", DataValid("")), ("DATA 3130", DataValid("3130")), ("DATA xyz", DataInvalid()),
    ("BEGIN", Begin()), ("CANCEL", Cancel()), ("ERROR oops", ClientError()),
    ("NEGOTIATE_UNIX_FD", NegotiateUnixFd()), ("BEGIN now", Unknown("BEGIN now")),
    ("OK 1234", Unknown("OK 1234")),
])
def test_classify(line: str, event: object) -> None:
    assert classify(line) == event


def test_jeepney_client_dialogue_ends_with_leftover_message_bytes() -> None:
    client = Authenticator()
    server = ServerAuth(GUID)
    result = server.feed(client.data_to_send())  # NUL, AUTH EXTERNAL <hex uid>
    assert server.claimed_identity is not None
    assert result.send == f"OK {GUID}\r\n".encode()
    client.feed(result.send)
    assert client.authenticated
    assert server.state is AuthState.WAIT_BEGIN
    result = server.feed(BEGIN + b"lmessage-bytes")
    assert result.done and result.leftover == b"lmessage-bytes"
    assert server.mechanism == "EXTERNAL"
    assert server.state is AuthState.AUTHENTICATED


def test_pipelined_sd_bus_style_with_fd_negotiation_refused() -> None:
    server = ServerAuth(GUID, announce_uuid="00000000-0000-0000-0000-000000000001")
    result = server.feed(b"\0AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nl\x01")
    assert result.send == (b"DATA\r\nDATA 00000000-0000-0000-0000-000000000001\r\n"
                           + f"OK {GUID}\r\n".encode() + b'ERROR "not supported here"\r\n')
    assert result.done and result.leftover == b"l\x01"
    assert server.claimed_identity == ""


def test_rejected_mechanism_then_anonymous() -> None:
    server = ServerAuth(GUID)
    r = server.feed(b"\0AUTH DBUS_COOKIE_SHA1 31\r\n")
    assert r.send == b"REJECTED EXTERNAL ANONYMOUS\r\n" and not r.done
    r = server.feed(b"AUTH ANONYMOUS\r\nBEGIN\r\n")
    assert r.done and r.send.startswith(b"OK ")


def test_cancel_after_ok_goes_back_to_auth() -> None:
    server = ServerAuth(GUID)
    server.feed(b"\0AUTH EXTERNAL 30\r\n")
    assert server.feed(b"CANCEL\r\n").send.startswith(b"REJECTED")
    assert server.state is AuthState.WAIT_AUTH


@pytest.mark.parametrize(("data", "match"), [
    (b"A", "first byte"),
    (b"\0BEGIN\r\n", "not allowed"),
    (b"\0AUTH EXTERNAL\r\nBEGIN\r\n", "not allowed"),
    (b"\0" + b"A" * 600, "longer than"),
    (b"\0" + b"A" * 600 + b"\r\n", "longer than"),
    (b"\0AUTH \xff\r\n", "non-ASCII"),
    (b"\0AUTH \x01\r\n", "control"),
    (b"\0" + b"HELLO\r\n" * 17, "more than 16"),
])
def test_protocol_errors_poison(data: bytes, match: str) -> None:
    server = ServerAuth(GUID)
    with pytest.raises(AuthError, match=match):
        server.feed(data)
    assert server.state is AuthState.FAILED
    with pytest.raises(AuthError, match="unusable"):
        server.feed(b"\r\n")


def test_auto_auth_passes_every_byte_through() -> None:
    server = ServerAuth(GUID, auto=True)
    assert server.state is AuthState.AUTHENTICATED
    assert server.feed(b"\0AUTH").leftover == b"\0AUTH"


def test_guid_is_checked() -> None:
    with pytest.raises(ValueError):
        ServerAuth("xyz")


def test_bus_side_is_pipelined_and_requires_ok() -> None:
    assert bus_auth_line(uid=0) == b"AUTH EXTERNAL 30\r\n"
    assert bus_auth_line(domid=12) == b"AUTH DOMID 3132\r\n"
    with pytest.raises(ValueError):
        bus_auth_line()
    bus = BusAuth(bus_auth_line(uid=1000))
    assert bus.start() == b"\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n"
    assert not bus.feed(b"OK 0123").done
    r = bus.feed(b"4567\r\nl\x02")
    assert r.done and r.leftover == b"l\x02" and bus.guid == "01234567"
    with pytest.raises(AuthError, match="refused"):
        BusAuth(bus_auth_line(uid=0)).feed(b"REJECTED EXTERNAL\r\n")
    with pytest.raises(AuthError, match="longer"):
        BusAuth(bus_auth_line(uid=0)).feed(b"O" * 600)
    with pytest.raises(ValueError):
        BusAuth(b"BEGIN\r\n")
