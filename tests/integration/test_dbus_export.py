"""The export framework against a real dbus-daemon, with our client and with gdbus, busctl
and dbus-send (clients no one here wrote)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rpc.dbus import (
    INVALID_ARGS,
    NOT_SUPPORTED,
    PROPERTY_READ_ONLY,
    UNKNOWN_INTERFACE,
    UNKNOWN_METHOD,
    UNKNOWN_OBJECT,
    UNKNOWN_PROPERTY,
    BusConnection,
    DBusError,
    RemoteObject,
)
from rpc.dbus._messages import method_call
from tests.integration.dbus_test_service import IFACE, PATH, SERVICE, SLOW_PATH, EchoService

pytestmark = pytest.mark.integration


@pytest.fixture
def service(bus_address: str) -> Iterator[EchoService]:
    ref = EchoService.start(bus_address)
    import actors
    actor = actors.actor_of(ref)
    assert actor.wait_started(5), actor.exit_reason
    yield actor
    ref.stop(block=True, timeout=5)


@pytest.fixture
def client(bus_address: str) -> Iterator[BusConnection]:
    conn = BusConnection(bus_address)
    yield conn
    conn.close()


@pytest.fixture
def obj(client: BusConnection, service: EchoService) -> RemoteObject:
    return RemoteObject(client, SERVICE, PATH, timeout=5)


def test_basic_types_round_trip(obj: RemoteObject) -> None:
    values = (255, True, -32768, 65535, -(2**31), 2**32 - 1, -(2**63), 2**64 - 1, 1.5,
              "héllo", "/a/b", "a{sv}")
    assert obj.call(IFACE, "echo_basic", "ybnqiuxtdsog", *values) == values


def test_container_types_round_trip(obj: RemoteObject) -> None:
    values: tuple[Any, ...] = (["x", "y"], {"k": "v"}, {"n": ("i", 3), "s": ("s", "t")},
                               (1, "two", False), [[1, 2], [], [3]], b"\x00\xff")
    assert obj.call(IFACE, "echo_containers", "asa{ss}a{sv}(isb)aaiay", *values) == values


def test_multiple_outs_no_outs_and_deferred(obj: RemoteObject) -> None:
    assert obj.call(IFACE, "divmod", "ii", 17, 5) == (3, 2)
    assert obj.call(IFACE, "nothing") == ()
    assert obj.call(IFACE, "later", "s", "x") == ("later:x",)


def test_call_without_interface_picks_the_first_declaring_one(obj: RemoteObject) -> None:
    assert obj.call(None, "echo_s", "s", "a") == ("a",)
    assert obj.call("org.test.Second", "echo_s", "s", "a") == ("second:a",)
    assert obj.call(None, "only_here") == (2,)


@pytest.mark.parametrize(
    ("interface", "member", "sig", "args", "error", "text"),
    [
        (IFACE, "echo_s", "i", (1,), INVALID_ARGS, "takes signature 's', got 'i'"),
        (IFACE, "echo_s", "", (), INVALID_ARGS, "got ''"),
        (IFACE, "nope", "", (), UNKNOWN_METHOD, "nope"),
        ("org.test.Nope", "echo_s", "s", ("a",), UNKNOWN_INTERFACE, "org.test.Nope"),
        (IFACE, "unimplemented", "", (), NOT_SUPPORTED, "not implemented: org.test.Iface."
                                                        "unimplemented"),
        (IFACE, "fail_plain", "s", ("boom",), "org.freedesktop.DBus.Error.Failed", "boom"),
        (IFACE, "fail_named", "s", ("why",), "org.test.Error.Custom", "why"),
        (IFACE, "bad_return", "", (), "org.freedesktop.DBus.Error.Failed", "bad return value"),
    ],
)
def test_errors(obj: RemoteObject, interface: str, member: str, sig: str, args: tuple[Any, ...],
                error: str, text: str) -> None:
    with pytest.raises(DBusError) as info:
        obj.call(interface, member, sig, *args)
    assert info.value.name == error
    assert text in info.value.message


def test_unknown_object(client: BusConnection, service: EchoService) -> None:
    with pytest.raises(DBusError) as info:
        RemoteObject(client, SERVICE, "/nowhere").call(IFACE, "echo_s", "s", "a")
    assert info.value.name == UNKNOWN_OBJECT


def test_introspection_order_signals_and_children(obj: RemoteObject, client: BusConnection
                                                   ) -> None:
    node = obj.introspect()
    names = [i.name for i in node.interfaces]
    assert names == [IFACE, "org.test.Second", "org.freedesktop.DBus.Introspectable",
                     "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Peer"]
    iface = node.interface(IFACE)
    assert iface is not None and iface.signal("fired") is not None
    assert iface.property("read-only-prop").access.value == "read"  # type: ignore[union-attr]
    parent = RemoteObject(client, SERVICE, "/org/test").introspect()
    assert set(parent.children) == {"Object", "Slow"}


def test_properties(obj: RemoteObject) -> None:
    assert obj.get(IFACE, "read-only-prop") == "fixed"
    obj.set(IFACE, "read-write-prop", "i", 42)
    assert obj.get(IFACE, "read-write-prop") == 42
    assert obj.get_all(IFACE) == {"read-only-prop": "fixed", "read-write-prop": 42,
                                  "plain_name": ["a"]}
    assert obj.get_all("org.freedesktop.DBus.Introspectable") == {}
    for prop, sig, value, error in [
        ("read-only-prop", "s", "x", PROPERTY_READ_ONLY),
        ("read-write-prop", "s", "x", INVALID_ARGS),
        ("missing", "s", "x", UNKNOWN_PROPERTY),
    ]:
        with pytest.raises(DBusError) as info:
            obj.set(IFACE, prop, sig, value)
        assert info.value.name == error
    with pytest.raises(DBusError) as info:
        obj.get(IFACE, "not-implemented")
    assert info.value.name == NOT_SUPPORTED


def test_signals_and_properties_changed(bus_address: str, obj: RemoteObject) -> None:
    got: list[tuple[str, tuple[Any, ...]]] = []
    seen = threading.Event()

    def on_signal(msg: Any) -> None:
        from jeepney.low_level import HeaderFields
        got.append((msg.header.fields[HeaderFields.member], tuple(msg.body)))
        if len(got) >= 2:
            seen.set()

    listener = BusConnection(bus_address, on_signal=on_signal)
    try:
        listener.add_match(f"type='signal',path='{PATH}'")
        obj.call(IFACE, "fire", "s", "hello")
        obj.set(IFACE, "read-write-prop", "i", 9)
        assert seen.wait(5)
    finally:
        listener.close()
    assert ("fired", ("hello", 1)) in got
    assert ("PropertiesChanged", (IFACE, {"read-write-prop": ("i", 9)}, [])) in got


def test_a_slow_call_does_not_block_other_callers(bus_address: str, obj: RemoteObject,
                                                  client: BusConnection) -> None:
    slow = RemoteObject(client, SERVICE, SLOW_PATH, timeout=5)
    future = client.call_async(method_call(SERVICE, SLOW_PATH, "org.test.Slow", "sleep", "d",
                                           (1.5,)))
    t0 = time.monotonic()
    assert slow.call("org.test.Slow", "quick") == ("quick",)
    assert obj.call(IFACE, "echo_s", "s", "fast") == ("fast",)
    assert time.monotonic() - t0 < 1.0
    assert future.result(5).body == ("slept",)


def test_many_calls_in_flight(obj: RemoteObject, client: BusConnection) -> None:
    futures = [client.call_async(method_call(SERVICE, PATH, IFACE, "echo_s", "s", (str(n),)))
               for n in range(200)]
    assert [f.result(10).body[0] for f in futures] == [str(n) for n in range(200)]


# --------------------------------------------------------------- clients no one here wrote

def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gdbus_introspect_and_call(bus_address: str, service: EchoService) -> None:
    out = run("gdbus", "introspect", "--address", bus_address, "--dest", SERVICE,
              "--object-path", PATH)
    assert "interface org.test.Iface" in out and "echo_basic(" in out
    assert "signal" in out.lower() and "fired(" in out
    assert "readwrite i read_write_prop" in out.replace("-", "_")
    out = run("gdbus", "call", "--address", bus_address, "--dest", SERVICE, "--object-path",
              PATH, "--method", f"{IFACE}.divmod", "17", "5")
    assert out.strip() == "(3, 2)"
    out = run("gdbus", "introspect", "--address", bus_address, "--dest", SERVICE,
              "--object-path", "/", "--recurse")
    assert "node /org/test/Object" in out


def test_busctl_call_and_get_property(bus_address: str, service: EchoService) -> None:
    out = run("busctl", f"--address={bus_address}", "call", SERVICE, PATH, IFACE, "echo_s", "s",
              "hi there")
    assert out.strip() == 's "hi there"'
    out = run("busctl", f"--address={bus_address}", "get-property", SERVICE, PATH, IFACE,
              "plain_name")
    assert out.strip() == 'as 1 "a"'
    out = run("busctl", f"--address={bus_address}", "call", SERVICE, PATH,
              "org.freedesktop.DBus.Properties", "Get", "ss", IFACE, "read-only-prop")
    assert out.strip() == 'v s "fixed"'


def test_dbus_send(bus_address: str, service: EchoService) -> None:
    out = run("dbus-send", f"--bus={bus_address}", "--print-reply", f"--dest={SERVICE}", PATH,
              f"{IFACE}.echo_s", "string:via dbus-send")
    assert 'string "via dbus-send"' in out
    out = run("dbus-send", f"--bus={bus_address}", "--print-reply", f"--dest={SERVICE}", PATH,
              "org.freedesktop.DBus.Properties.Get", f"string:{IFACE}",
              "string:read-write-prop")
    assert "int32 7" in out
    done = subprocess.run(["dbus-send", f"--bus={bus_address}", "--print-reply",
                           f"--dest={SERVICE}", PATH, f"{IFACE}.echo_s", "int32:3"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0 and "InvalidArgs" in done.stderr
