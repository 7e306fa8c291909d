"""rpc-proxy with JSON clients end to end: NUL-framed (--json-in) and WebSocket (--websockets-in)
clients through a proxy instance to dbd on a real dbus-daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rpc.dbus import BusConnection, signal
from tests.integration.json_clients import JsonClient, NulClient, WsClient, connect_unix
from tests.integration.proxy_fixtures import (
    UUID5,
    World,
    host,  # noqa: F401  (fixture)
    make_world,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration

KINDS: dict[str, tuple[list[str], Callable[[str], JsonClient]]] = {
    "nul": (["--json-in"], lambda path: NulClient(connect_unix(path))),
    "websocket": (["--websockets-in", "--allow-origin", "null"],
                  lambda path: WsClient(connect_unix(path), origin="null")),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path, bus_address: str, host: SimHost,  # noqa: F811
          kind: str) -> Iterator[World]:
    w = make_world(tmp_path, bus_address, host, ["-d", "5", *KINDS[kind][0]])
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def connect(world: World, kind: str) -> Iterator[Callable[[], JsonClient]]:
    made: list[JsonClient] = []

    def new() -> JsonClient:
        client = KINDS[kind][1](world.proxy_socket)
        made.append(client)
        return client
    try:
        yield new
    finally:
        for c in made:
            c.close()


def test_hello_registers_the_guest_domain(world: World, connect: Callable[[], JsonClient]) -> None:
    client = connect()
    name = client.hello()
    assert name.startswith(":")
    ident = world.registry.lookup(name)
    assert ident is not None and (ident.domid, ident.uuid) == (5, UUID5)
    again = client.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "Hello")
    assert again is not None and again["type"] == "error"


def test_write_and_read_a_db_key(world: World, connect: Callable[[], JsonClient]) -> None:
    client = connect()
    client.hello()
    wrote = client.db("write", "/k", "v")  # typed "ss" by introspecting dbd
    assert wrote is not None and wrote["type"] == "response", wrote
    read = client.db("read", "/k")
    assert read is not None and read["type"] == "response" and read["args"] == ["v"]
    with BusConnection(world.address) as root:  # confined to the guest's domstore
        from persistence import DB_INTERFACE, DB_SERVICE
        from rpc.dbus import RemoteObject
        body = RemoteObject(root, DB_SERVICE, "/", timeout=10).call(
            DB_INTERFACE, "read", "s", f"/dom-store/{UUID5}/k")
        assert body == ("v",)


def test_a_denied_call_gets_nothing_and_the_client_goes_on(
        world: World, connect: Callable[[], JsonClient]) -> None:
    client = connect()
    client.hello()
    assert client.db("rm", "/k", timeout=0.5) is None  # denied: no answer at all
    read = client.db("read", "/nothing")
    assert read is not None and read["args"] == [""]


def test_a_subscribed_signal_arrives(world: World, connect: Callable[[], JsonClient]) -> None:
    client = connect()
    client.hello()
    added = client.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "AddMatch", "type='signal',interface='org.test.Json'")
    assert added is not None and added["type"] == "response", added
    with BusConnection(world.address) as root:
        root.send(signal("/org/test", "org.test.Other", "ignored", "s", ("no",)))
        root.send(signal("/org/test", "org.test.Json", "changed", "sub", ("x", 7, True)))
        got = client.wait_for(lambda o: o.get("interface") == "org.test.Json")
    assert got is not None and got["type"] == "signal"
    assert not [o for o in client.inbox if o.get("interface") == "org.test.Other"]
    assert (got["interface"], got["member"], got["path"], got["args"]) == (
        "org.test.Json", "changed", "/org/test", ["x", 7, True])


def test_bad_json_is_skipped_and_touches_no_other_client(
        world: World, connect: Callable[[], JsonClient]) -> None:
    bad, good = connect(), connect()
    bad.hello()
    good.hello()
    bad.send(b"{this is not json")
    bad.send(b'{"id": 0, "method": "read"}')
    read = bad.db("read", "/nothing")  # skipped, not fatal
    assert read is not None and read["args"] == [""]
    assert good.db("read", "/nothing") is not None


def test_a_broken_stream_closes_only_that_client(world: World, kind: str,
                                                 connect: Callable[[], JsonClient]) -> None:
    bad, good = connect(), connect()
    bad.hello()
    good.hello()
    if kind == "nul":
        bad.sock.sendall(b"[" * ((1 << 20) + 10))  # no NUL within 1 MiB
    else:
        bad.sock.sendall(b"\xff\xff\xff\xff")  # not a WebSocket frame
    assert bad.closed_by_peer()
    read = good.db("read", "/nothing")
    assert read is not None and read["args"] == [""]


def test_the_first_message_must_be_hello(world: World,
                                         connect: Callable[[], JsonClient]) -> None:
    client = connect()
    client.send({"id": 1, "destination": "com.citrix.xenclient.db", "path": "/",
                 "interface": "com.citrix.xenclient.db", "method": "read", "args": ["/"]})
    assert client.closed_by_peer()


def test_websocket_origins(tmp_path: Path, bus_address: str, host: SimHost) -> None:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "5", "--websockets-in"])
    clients: list[WsClient] = []
    try:
        def ws(origin: str | None, host: str = "localhost") -> WsClient:
            clients.append(WsClient(connect_unix(w.proxy_socket), origin=origin, host=host))
            return clients[-1]
        assert ws("null").refused == 403  # a file: page must be listed (--allow-origin null)
        assert ws("http://evil.example").refused == 403
        same = ws("http://localhost:8080", host="localhost:8080")
        assert same.accepted and same.hello().startswith(":")
        assert ws(None).accepted  # not a browser page
    finally:
        for c in clients:
            c.close()
        w.stop()


def test_arguments_are_typed_by_introspection(tmp_path: Path, bus_address: str,
                                              host: SimHost) -> None:  # noqa: F811
    import actors
    from tests.integration.dbus_test_service import IFACE, PATH, SERVICE, EchoService
    from tests.integration.proxy_fixtures import RULES
    ref = EchoService.start(bus_address)
    assert actors.actor_of(ref).wait_started(5)
    w = make_world(tmp_path, bus_address, host, ["-d", "5", "--json-in"],
                   rules=RULES + "allow destination org.test.Service\n")
    client = NulClient(connect_unix(w.proxy_socket))
    try:
        client.hello()
        values = [255, True, -5, 6, -7, 8, -9, 10, 1.5, "s", "/a/b", "a{sv}"]  # "ybnqiuxtdsog"
        echoed = client.call(SERVICE, PATH, IFACE, "echo_basic", *values)
        assert echoed is not None and echoed["type"] == "response", echoed
        assert echoed["args"] == values
        # cached now; an explicit signature still wins (and the service refuses it)
        extra: dict[str, Any] = {"dbus-signature": "uu"}
        wrong = client.call(SERVICE, PATH, IFACE, "divmod", 7, 2, **extra)
        assert wrong is not None and wrong["type"] == "error"
        right = client.call(SERVICE, PATH, IFACE, "divmod", 7, -2)
        assert right is not None and right["args"] == list(divmod(7, -2))
    finally:
        client.close()
        w.stop()
        ref.stop(block=True, timeout=5)


def test_json_out_chains_a_dbus_client_through_a_json_in_proxy(
        tmp_path: Path, bus_address: str, host: SimHost) -> None:  # noqa: F811
    """guest (DBus) -> rpc-proxy --json-out (a process) -> rpc-proxy --json-in -d 5 -> dbd."""
    import subprocess
    import sys
    import time

    from rpc.dbus import CallTimeout
    from tests.integration.proxy_fixtures import db_call
    w = make_world(tmp_path, bus_address, host, ["-d", "5", "--json-in"])
    front = tmp_path / "front.sock"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "rpc-proxy"), "-i",
                             f"unix:{front}", "-o", f"unix:{w.proxy_socket}", "--json-out",
                             "-w", "-d", "0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not front.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no --json-out proxy"
            time.sleep(0.05)
        with BusConnection(f"unix:path={front}", label="chained") as guest:
            ident = w.registry.lookup(guest.unique_name)  # the name the JSON-in proxy got
            assert ident is not None and (ident.domid, ident.uuid) == (5, UUID5)
            db = w.db(guest)
            db_call(db, "write", "/chained", "yes")
            assert db_call(db, "read", "/chained") == "yes"
            with pytest.raises(CallTimeout):  # denied by the JSON-in proxy's rules
                db.call("com.citrix.xenclient.db", "rm", "s", "/chained", timeout=0.5)
            assert db_call(db, "read", "/chained") == "yes"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        w.stop()
