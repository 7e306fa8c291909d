"""rpc-proxy end to end: guests through a proxy instance to dbd on a real dbus-daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from rpc.dbus import CallTimeout, DBusError, RemoteObject
from tests.integration.proxy_fixtures import (
    UUID5,
    UUID6,
    T,
    World,
    db_call,
    host,  # noqa: F401  (fixture)
    make_world,
    wait_until,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "5"])
    try:
        yield w
    finally:
        w.stop()


def test_allowed_call_reaches_dbd_as_the_guest_domain(world: World) -> None:
    dom0 = world.guest()  # no: through the proxy as domain 5
    try:
        db = world.db(dom0)
        db_call(db, "write", "/k", "v")
        assert world.registry.lookup(dom0.unique_name) is not None
        ident = world.registry.lookup(dom0.unique_name)
        assert ident is not None and (ident.domid, ident.uuid) == (5, UUID5)
        assert db_call(db, "read", "/k") == "v"
        assert db_call(db, "list", "/") == ["k"]  # confined to its domstore
    finally:
        dom0.close()
    from rpc.dbus import BusConnection
    with BusConnection(world.address) as root:  # dom0 directly on the bus
        assert db_call(world.db(root), "read", f"/dom-store/{UUID5}/k") == "v"


def test_denied_call_gets_nothing(world: World) -> None:
    guest = world.guest()
    try:
        db = world.db(guest)
        with pytest.raises(CallTimeout):
            db.call("com.citrix.xenclient.db", "rm", "s", "/k", timeout=0.5)
        # the connection goes on
        assert db_call(db, "read", "/nothing") == ""
    finally:
        guest.close()


def test_the_name_is_unregistered_when_the_guest_goes(world: World) -> None:
    guest = world.guest()
    name = guest.unique_name
    assert world.registry.lookup(name) is not None
    guest.close()
    wait_until(lambda: world.registry.lookup(name) is None)


def test_eavesdropping_add_match_is_denied(world: World) -> None:
    guest = world.guest()
    try:
        with pytest.raises(CallTimeout):
            guest.bus_call("AddMatch", "s", ("type='method_call',eavesdrop=true",), timeout=0.5)
        guest.add_match("type='signal',interface='org.example.Nothing'")  # an ordinary one
    finally:
        guest.close()


def test_bus_errors_come_back_to_the_caller(world: World) -> None:
    guest = world.guest()
    try:
        with pytest.raises(DBusError) as info:
            guest.bus_call("GetNameOwner", "s", ("org.example.nobody",), timeout=T)
        assert info.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
    finally:
        guest.close()


def test_replies_go_to_their_own_caller_between_two_clients(world: World) -> None:
    a, b = world.guest(), world.guest()
    try:
        for i in range(20):
            db_call(world.db(a), "write", f"/x{i}", str(i))
        # both clients' serials collide (each connection counts from the same start)
        fa = [a.call_async(_read(f"/x{i}")) for i in range(20)]
        fb = [b.call_async(_read(f"/x{19 - i}")) for i in range(20)]
        assert [f.result(T).body[0] for f in fa] == [str(i) for i in range(20)]
        assert [f.result(T).body[0] for f in fb] == [str(19 - i) for i in range(20)]
    finally:
        a.close()
        b.close()


def _read(path: str) -> object:
    from rpc.dbus import method_call
    return method_call("com.citrix.xenclient.db", "/", "com.citrix.xenclient.db", "read", "s",
                       (path,))


def test_proxy_refuses_clients_whose_uuid_is_unknown_to_dbd(tmp_path: Path, bus_address: str,
                                                            host: SimHost) -> None:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "9"])  # no VM for domain 9
    try:
        guest = w.guest()
        try:
            ident = w.registry.lookup(guest.unique_name)
            assert ident is not None and ident.domid == 9 and ident.uuid == ""
            with pytest.raises(DBusError, match="failed to resolve domid 9"):
                db_call(w.db(guest), "read", "/x")
        finally:
            guest.close()
    finally:
        w.stop()


def test_a_client_crash_leaves_the_others_going(world: World) -> None:
    a, b = world.guest(), world.guest()
    try:
        sup = actors.actor_of(actors.resolve("/proxy/clients"))
        assert sup is not None
        names = sorted(n for n in actors.names() if n.startswith("/proxy/clients/"))
        assert len(names) == 2
        actors.tell(names[0], actors.InjectCrash("test"))
        wait_until(lambda: len([n for n in actors.names()
                                if n.startswith("/proxy/clients/")]) == 1)
        survivors = [c for c in (a, b) if c.alive]
        wait_until(lambda: len([c for c in (a, b) if c.alive]) == 1)
        survivors = [c for c in (a, b) if c.alive]
        assert db_call(world.db(survivors[0]), "read", "/x") == ""
    finally:
        a.close()
        b.close()


def test_uuid_and_other_vm(tmp_path: Path, bus_address: str,
                           host: SimHost) -> None:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "6"])
    try:
        guest = w.guest()
        try:
            db_call(w.db(guest), "write", "/six", "6")
        finally:
            guest.close()
        from rpc.dbus import BusConnection
        with BusConnection(w.address) as root:
            assert db_call(RemoteObject(root, "com.citrix.xenclient.db", "/", timeout=T),
                           "read", f"/dom-store/{UUID6}/six") == "6"
    finally:
        w.stop()
