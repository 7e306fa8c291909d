"""Call bookkeeping (rpc.proxy._calls): serial remapping, replies once to the caller, forged
replies dropped, bounds, the proxy's own calls, and a random-interleaving property."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    CallLimits,
    CallTable,
    Forward,
    MessageType,
    OwnReply,
    Refuse,
    WireMessage,
    build_message,
    decode_body,
    parse_message,
)
from rpc.proxy._calls import RESERVED_SERIALS

SVC = "com.citrix.xenclient.db"


def call(serial: int, dest: str = SVC, no_reply: bool = False) -> WireMessage:
    return parse_message(build_message(MessageType.METHOD_CALL, serial=serial, path="/",
                                       member="read", destination=dest,
                                       flags=1 if no_reply else 0))


def reply(reply_serial: int, sender: str = ":1.7", error: bool = False, serial: int = 900,
          dest: str | None = ":1.3") -> WireMessage:
    if error:
        return parse_message(build_message(MessageType.ERROR, serial=serial,
                                           reply_serial=reply_serial, sender=sender,
                                           destination=dest, error_name="a.Failed"))
    return parse_message(build_message(MessageType.METHOD_RETURN, serial=serial,
                                       reply_serial=reply_serial, sender=sender,
                                       destination=dest))


def forwarded(decision: object) -> WireMessage:
    assert isinstance(decision, Forward), decision
    return decision.message


def test_client_serials_are_remapped_and_replies_mapped_back_once() -> None:
    table = CallTable()
    a = forwarded(table.from_client(call(5)))
    b = forwarded(table.from_client(call(5)))  # the client reuses its serial: still distinct
    assert a.serial != b.serial and table.pending == 2
    back = forwarded(table.from_bus(reply(b.serial)))
    assert back.reply_serial == 5 and table.pending == 1
    dup = table.from_bus(reply(b.serial))
    assert isinstance(dup, Refuse) and "no such pending call" in dup.reason
    assert forwarded(table.from_bus(reply(a.serial, error=True))).reply_serial == 5
    assert table.pending == 0


def test_forged_reply_from_the_bus_is_dropped_and_the_call_stays_pending() -> None:
    table = CallTable()
    sent = forwarded(table.from_client(call(1, dest=":1.7")))
    forged = table.from_bus(reply(sent.serial, sender=":1.66"))
    assert isinstance(forged, Refuse) and ":1.66" in forged.reason
    assert table.pending == 1
    assert forwarded(table.from_bus(reply(sent.serial, sender=":1.7"))).reply_serial == 1
    to_bus = forwarded(table.from_client(call(2, dest="org.freedesktop.DBus")))
    assert isinstance(table.from_bus(reply(to_bus.serial, sender=":1.9")), Refuse)
    ok = table.from_bus(reply(to_bus.serial, sender="org.freedesktop.DBus"))
    assert forwarded(ok).reply_serial == 2


def test_a_reply_for_an_unknown_serial_is_dropped() -> None:
    table = CallTable()
    assert isinstance(table.from_bus(reply(42)), Refuse)


def test_no_reply_calls_and_signals_are_remapped_but_not_pending() -> None:
    table = CallTable()
    sent = forwarded(table.from_client(call(9, no_reply=True)))
    assert sent.serial == 1 and table.pending == 0
    sig = parse_message(build_message(MessageType.SIGNAL, serial=77, path="/", interface="a.b",
                                      member="S"))
    assert forwarded(table.from_client(sig)).serial == 2


def test_client_replies_only_to_calls_it_received_and_only_once() -> None:
    table = CallTable()
    incoming = parse_message(build_message(MessageType.METHOD_CALL, serial=31, path="/",
                                           member="Ping", sender=":1.20", destination=":1.3"))
    assert forwarded(table.from_bus(incoming)) is incoming
    assert table.inbound == 1
    forged = reply(30, sender=":1.3", dest=":1.20")
    assert isinstance(table.from_client(forged), Refuse)
    wrong_caller = reply(31, sender=":1.3", dest=":1.21")
    assert isinstance(table.from_client(wrong_caller), Refuse)
    answer = forwarded(table.from_client(reply(31, sender=":1.3", dest=":1.20", serial=5)))
    assert answer.reply_serial == 31 and answer.serial == 1
    assert isinstance(table.from_client(reply(31, sender=":1.3", dest=":1.20")), Refuse)


def test_pending_bound_answers_limits_exceeded() -> None:
    table = CallTable(CallLimits(max_pending=2))
    forwarded(table.from_client(call(1)))
    forwarded(table.from_client(call(2)))
    refused = table.from_client(call(3))
    assert isinstance(refused, Refuse) and refused.error is not None
    err = parse_message(refused.error)
    assert (err.type, err.error_name, err.reply_serial) == (
        MessageType.ERROR, "org.freedesktop.DBus.Error.LimitsExceeded", 3)
    assert err.serial >= RESERVED_SERIALS and "more than 2" in decode_body(err)[0]
    assert table.pending == 2


def test_inbound_bound_drops_calls_the_client_does_not_answer() -> None:
    table = CallTable(CallLimits(max_inbound=1))
    for serial, expect in ((1, Forward), (2, Refuse)):
        msg = parse_message(build_message(MessageType.METHOD_CALL, serial=serial, path="/",
                                          member="P", sender=":1.5"))
        assert isinstance(table.from_bus(msg), expect)


def test_own_calls_come_back_as_own_replies_never_to_the_client() -> None:
    table = CallTable(CallLimits(max_pending=1))
    mine = table.own_call(call(1, dest="org.freedesktop.DBus"), token="lookup")
    client = forwarded(table.from_client(call(1)))  # own calls do not count against the client
    assert mine.serial != client.serial
    got = table.from_bus(reply(mine.serial, sender="org.freedesktop.DBus"))
    assert isinstance(got, OwnReply) and got.token == "lookup"
    assert table.pending == 1


def test_serials_skip_pending_ones_when_they_wrap() -> None:
    table = CallTable()
    first = forwarded(table.from_client(call(1))).serial
    table._next = RESERVED_SERIALS - 1
    assert forwarded(table.from_client(call(2))).serial == RESERVED_SERIALS - 1
    assert forwarded(table.from_client(call(3))).serial == first + 1  # wrapped, skipped 1


def test_close_forgets_everything() -> None:
    table = CallTable()
    sent = forwarded(table.from_client(call(1)))
    assert table.close() == 1
    assert isinstance(table.from_bus(reply(sent.serial)), Refuse)
    with pytest.raises(ValueError):
        CallLimits(max_pending=0)


@given(st.integers(0, 2**32 - 1))
def test_random_interleavings_deliver_each_reply_once_to_its_call(seed: int) -> None:
    """Clients send calls with colliding serials, the bus answers in any order, duplicates and
    forgeries are mixed in: every call gets exactly one reply carrying its own serial."""
    rng = random.Random(seed)
    table = CallTable(CallLimits(max_pending=8))
    outstanding: dict[int, int] = {}  # proxy serial -> client serial
    answered: list[int] = []
    sent_client_serials: list[int] = []
    for _ in range(60):
        roll = rng.random()
        if roll < 0.4:
            cs = rng.randint(1, 4)
            sent = table.from_client(call(cs))
            if isinstance(sent, Forward):
                assert sent.message.serial not in outstanding
                outstanding[sent.message.serial] = cs
                sent_client_serials.append(cs)
            else:
                assert len(outstanding) == 8
        elif roll < 0.7 and outstanding:
            ps = rng.choice(list(outstanding))
            back = forwarded(table.from_bus(reply(ps, error=rng.random() < 0.3)))
            assert back.reply_serial == outstanding.pop(ps)
            answered.append(back.reply_serial)
        else:
            forged = rng.randint(1, 40)
            d = table.from_bus(reply(forged))
            if forged in outstanding:
                assert forwarded(d).reply_serial == outstanding.pop(forged)
                answered.append(forged)
            else:
                assert isinstance(d, Refuse)
        assert table.pending == len(outstanding)
    assert len(answered) + len(outstanding) == len(sent_client_serials)
