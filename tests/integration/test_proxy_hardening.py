"""rpc-proxy against hostile clients, observed on the bus side with a monitor: always-denied
calls whatever the rules say, serial remapping, bounds (size, header fields, nesting, pending
calls), a bad stream closing only its own client, and a bus daemon restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from rpc.dbus import BusConnection, CallerIdentity, DBusError, method_call, start_bus
from rpc.proxy import parse_options, proxy_instance_spec
from supervision import Strategy, Supervisor, SupFlags
from supervision.dom0._proxies import forwarding_to
from tests.integration.proxy_fixtures import (
    World,
    host,  # noqa: F401  (fixture)
    make_world,
    wait_until,
)
from tests.integration.proxy_wire_helpers import (
    BusMonitor,
    RawClient,
    T,
    call,
    deep_signature,
    oversized,
    too_many_fields,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration

SINK = "org.test.Sink"


@pytest.fixture
def dom0_world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    """Clients are domain 0: the rules allow everything (the strongest case for the checks
    that hold whatever the rules say)."""
    w = make_world(tmp_path, bus_address, host, ["-d", "0"])
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def monitor(bus_address: str) -> Iterator[BusMonitor]:
    m = BusMonitor(bus_address)
    try:
        yield m
    finally:
        m.close()


DENIED = [
    call(10, "AddMatch", signature="s", args=("type='method_call',eavesdrop=true",)),
    call(11, "AddMatch", signature="s", args=("eavesdrop='TRUE'",)),
    call(12, "BecomeMonitor", interface="org.freedesktop.DBus.Monitoring", signature="asu",
         args=([], 0)),
    call(13, "BecomeMonitor", interface=None, signature="asu", args=([], 0)),
    call(14, "UpdateActivationEnvironment", signature="a{ss}", args=({"PATH": "/evil"},)),
]


def test_always_denied_calls_never_reach_the_bus_even_from_dom0(dom0_world: World,
                                                                monitor: BusMonitor) -> None:
    client = RawClient(dom0_world.proxy_socket)
    try:
        client.sock.sendall(b"".join(DENIED) + call(20, "GetId"))
        assert client.wait_reply(20).type.name == "METHOD_RETURN"  # the marker got through
        wait_until(lambda: any(m[3] == "GetId" for m in monitor.from_sender(client.unique_name)))
        members = [m[3] for m in monitor.from_sender(client.unique_name)]
        assert not {"AddMatch", "BecomeMonitor", "UpdateActivationEnvironment"} & set(members)
        for serial in range(10, 15):  # and nothing is answered for them
            assert all(m.reply_serial != serial for m in client.inbox)
    finally:
        client.close()


def test_serials_are_remapped_and_mapped_back(dom0_world: World, monitor: BusMonitor) -> None:
    client = RawClient(dom0_world.proxy_socket)
    try:
        mine = 0x7FFF0001
        client.sock.sendall(call(mine, "GetId"))
        reply = client.wait_reply(mine)
        assert reply.reply_serial == mine
        wait_until(lambda: any(m[3] == "GetId" for m in monitor.from_sender(client.unique_name)))
        seen = [m[5] for m in monitor.from_sender(client.unique_name) if m[3] == "GetId"]
        assert seen and mine not in seen  # the bus saw the proxy's serial, not the client's
    finally:
        client.close()


@pytest.mark.parametrize("hostile", [
    pytest.param(oversized(30), id="over-4MiB"),
    pytest.param(too_many_fields(31), id="17-header-fields"),
    pytest.param(deep_signature(32), id="nesting-40"),
    pytest.param(b"X" + call(33, "GetId")[1:], id="bad-byte-order"),
    pytest.param(call(34, "GetId")[:-3] + b"\xff" * 40, id="garbage-in-header"),
])
def test_a_bad_stream_closes_that_client_only(dom0_world: World, monitor: BusMonitor,
                                              hostile: bytes) -> None:
    bystander = RawClient(dom0_world.proxy_socket)
    bad = RawClient(dom0_world.proxy_socket)
    try:
        bad.sock.sendall(hostile)
        assert bad.closed_by_peer()
        wait_until(lambda: not dom0_world.registry.lookup(bad.unique_name))
        assert not any(m[3] in ("X", "GetId") for m in monitor.from_sender(bad.unique_name))
        bystander.sock.sendall(call(40, "GetId"))
        assert bystander.wait_reply(40).type.name == "METHOD_RETURN"
        late = RawClient(dom0_world.proxy_socket)  # the proxy still accepts
        late.close()
    finally:
        bystander.close()
        bad.close()


def test_pending_calls_per_client_are_bounded(dom0_world: World) -> None:
    held: list[Any] = []
    got = threading.Event()

    def on_call(msg: Any) -> None:  # never answers
        held.append(msg)
        if len(held) >= 128:
            got.set()

    sink = BusConnection(dom0_world.address, on_call=on_call)
    guest = dom0_world.guest()
    try:
        assert sink.request_name(SINK) == 1
        futures = [guest.call_async(method_call(SINK, "/", "org.test.Sink", "Hold"))
                   for _ in range(128)]
        assert got.wait(T)
        with pytest.raises(DBusError) as info:
            guest.call(method_call(SINK, "/", "org.test.Sink", "Hold"), T)
        assert info.value.name == "org.freedesktop.DBus.Error.LimitsExceeded"
        assert len(held) == 128 and not any(f.done() for f in futures)
    finally:
        guest.close()
        sink.close()


def test_a_bus_restart_disconnects_clients_and_they_can_reconnect(tmp_path: Path) -> None:
    bus_dir = tmp_path / "bus"
    proc, address = start_bus(bus_dir, ("org.test",))
    sock = tmp_path / "p.sock"
    options = forwarding_to(parse_options(["-i", f"unix:{sock}", "-w", "-d", "0",
                                           "-r", str(tmp_path / "none.rules")]), address)
    root = Supervisor.start_root(SupFlags(Strategy.ONE_FOR_ONE, intensity=3), [
        proxy_instance_spec("proxy", options, address, registry=CallerIdentity(),
                            supervisor_path="/proxy")])
    try:
        wait_until(sock.exists)
        guest = BusConnection(f"unix:path={sock}")
        assert guest.bus_call("GetId", timeout=T)
        proc.terminate()
        proc.wait(T)
        wait_until(lambda: not guest.alive)  # disconnected cleanly
        guest.close()
        proc, _ = start_bus(bus_dir, ("org.test",))  # the same socket path
        wait_until(lambda: _works(sock))
        assert actors.resolve("/proxy/listener") is not None
    finally:
        sup = actors.actor_of(root)
        sup.request_stop()
        assert sup.wait_dead(30)
        proc.terminate()
        proc.wait(T)


def _works(sock: Path) -> bool:
    try:
        with BusConnection(f"unix:path={sock}") as again:
            return bool(again.bus_call("GetId", timeout=2.0))
    except Exception:
        return False
