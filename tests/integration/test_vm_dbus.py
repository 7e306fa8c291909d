"""VM monitors on DBus as the original xenvm: org.xen.vm.uuid_*, tasks taking a{ss}, notify."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney.low_level import HeaderFields

import actors
from rpc.dbus import SERVICE_UNKNOWN, BusConnection, DBusError, RemoteObject
from supervision import ChildSpec, start_actor
from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, vm_config, xen_tree
from xen.xenvm._dbus import XenvmBus, bus_name

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path, bus_address: str) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        from supervision import AddChild
        actors.ask("/", AddChild(ChildSpec("xenvm-bus", start_actor(XenvmBus, bus_address))),
                   timeout=10)
        yield t


def test_tasks_over_dbus_and_notify(tree: XenTree, bus_address: str) -> None:
    vm = tree.add_vm(vm_config("dbusvm"))
    name = bus_name(vm)
    assert name == "org.xen.vm.uuid_" + vm.replace("-", "_")
    got: list[tuple[Any, ...]] = []
    seen = threading.Event()

    def on_signal(msg: Any) -> None:
        if msg.header.fields.get(HeaderFields.member) == "notify":
            got.append(tuple(msg.body))
            if any(b[2] == "vm:state:running" for b in got):
                seen.set()

    listener = BusConnection(bus_address, on_signal=on_signal)
    conn = BusConnection(bus_address)
    try:
        listener.add_match("type='signal',interface='xenvm.signal.notify'")
        wait_until(lambda: conn.bus_call("NameHasOwner", "s", (name,))[0], timeout=5)
        obj = RemoteObject(conn, name, "/", timeout=30)
        assert obj.call(name, "get_status", "a{ss}", {}) == ("shutdown",)
        assert obj.call(name, "start", "a{ss}", {"paused": "false"}) == ()
        assert obj.call(name, "get_status", "a{ss}", {}) == ("running",)
        assert int(obj.call(None, "get_domid", "a{ss}", {})[0]) > 0
        assert obj.call(name, "get", "a{sv}", {"field": ("s", "name")}) == ("dbusvm",)
        assert seen.wait(5)
        assert (vm, 0xF000, "vm:state:running") in got
        with pytest.raises(DBusError) as info:
            obj.call(name, "start", "a{ss}", {})
        assert info.value.name == "org.freedesktop.DBus.Error.Failed"
        assert "not allowed in state running" in info.value.message
        with pytest.raises(DBusError) as info:
            obj.call(name, "no_such_task", "a{ss}", {})
        assert (info.value.name, info.value.message) == (SERVICE_UNKNOWN, "no rpc")
        node = obj.introspect()
        methods = {m.name: m for m in node.interface(name).methods}  # type: ignore[union-attr]
        assert methods["get_status"].in_signature == "a{ss}"
        assert methods["get_status"].out_signature == "s"
        obj.call(name, "destroy", "a{ss}", {})
        assert obj.call(name, "get_status", "a{ss}", {}) == ("shutdown",)
    finally:
        listener.close()
        conn.close()


def test_the_service_takes_the_names_of_monitors_already_running(
        tmp_path: Path, bus_address: str) -> None:
    with xen_tree(tmp_path) as tree:
        early = tree.add_vm(vm_config("early"))
        from supervision import AddChild
        actors.ask("/", AddChild(ChildSpec("xenvm-bus", start_actor(XenvmBus, bus_address))),
                   timeout=10)
        late = tree.add_vm(vm_config("late"))
        conn = BusConnection(bus_address)
        try:
            for vm in (early, late):
                wait_until(lambda vm=vm: conn.bus_call("NameHasOwner", "s", (bus_name(vm),))[0],
                           timeout=5)
            obj = RemoteObject(conn, bus_name(early), "/", timeout=30)
            assert obj.call(bus_name(early), "get", "a{ss}", {"field": "name"}) == ("early",)
            tree.task(early, "quit")
            wait_until(lambda: not conn.bus_call("NameHasOwner", "s", (bus_name(early),))[0],
                       timeout=5)
        finally:
            conn.close()
