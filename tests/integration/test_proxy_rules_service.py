"""The ``-s`` service's ``add_rule``/``delete_rule`` through the bus: errors, ``list_rules``,
the next message of a live guest, and a reload keeping the runtime layer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from rpc.dbus import BusConnection, CallTimeout, DBusError, RemoteObject
from tests.integration.proxy_fixtures import (
    RULES,
    T,
    World,
    host,  # noqa: F401  (fixture)
    make_world,
    wait_until,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration

IFACE = "com.citrix.xenclient.rpc_proxy"
RM = "allow destination com.citrix.xenclient.db interface com.citrix.xenclient.db member rm"


@pytest.fixture
def world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "5", "-s"])
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def svc(world: World) -> Iterator[RemoteObject]:
    with BusConnection(world.address) as root:
        yield RemoteObject(root, "com.citrix.xenclient.rpc_proxy", "/", timeout=T)


def _rules(svc: RemoteObject) -> list[str]:
    return list(svc.call(IFACE, "list_rules")[0])


def _rm_allowed(world: World, guest: BusConnection) -> bool:
    try:
        world.db(guest).call("com.citrix.xenclient.db", "rm", "s", "/k", timeout=0.5)
    except CallTimeout:
        return False
    return True


def test_a_bad_rule_answers_invalid_args_with_line_and_column(svc: RemoteObject) -> None:
    before = _rules(svc)
    with pytest.raises(DBusError) as info:
        svc.call(IFACE, "add_rule", "s", "allow member rm frobnicate x")
    assert info.value.name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "add_rule:1:" in info.value.message and "frobnicate" in info.value.message
    with pytest.raises(DBusError) as info:
        svc.call(IFACE, "add_rule", "s", "allow all\ndeny all")
    assert "add_rule:2:1" in info.value.message  # one rule per call
    assert _rules(svc) == before  # nothing changed


def test_an_added_rule_applies_to_the_next_message_and_is_listed(world: World,
                                                                 svc: RemoteObject) -> None:
    guest = world.guest()
    try:
        assert not _rm_allowed(world, guest)
        svc.call(IFACE, "add_rule", "s", RM)
        rules = _rules(svc)
        assert len(rules) == 7 and rules[-1].startswith("allow inc-any destination "
                                                        "com.citrix.xenclient.db")
        assert _rm_allowed(world, guest)  # same connection, next message
        svc.call(IFACE, "delete_rule", "s", "  " + RM + "  # any spelling of it\n")
        assert len(_rules(svc)) == 6
        assert not _rm_allowed(world, guest)
    finally:
        guest.close()


def test_delete_by_index_hides_a_file_rule_and_unknown_ones_are_errors(
        world: World, svc: RemoteObject) -> None:
    rules = _rules(svc)
    index = next(i for i, r in enumerate(rules) if r.endswith("member read"))
    guest = world.guest()
    try:
        assert world.db(guest).call("com.citrix.xenclient.db", "read", "s", "/x") == ("",)
        svc.call(IFACE, "delete_rule", "s", str(index))
        assert len(_rules(svc)) == len(rules) - 1
        with pytest.raises(CallTimeout):
            world.db(guest).call("com.citrix.xenclient.db", "read", "s", "/x", timeout=0.5)
    finally:
        guest.close()
    for which in ("99", RM):
        with pytest.raises(DBusError) as info:
            svc.call(IFACE, "delete_rule", "s", which)
        assert info.value.name == "org.freedesktop.DBus.Error.InvalidArgs"
        assert "no rule at index 99" in info.value.message or "no such rule" in info.value.message


def test_a_reload_rereads_the_file_and_keeps_the_runtime_layer(world: World, svc: RemoteObject,
                                                               tmp_path: Path) -> None:
    from rpc.proxy import Reload
    svc.call(IFACE, "add_rule", "s", RM)
    svc.call(IFACE, "delete_rule", "s", "allow out-any")
    (tmp_path / "rpc-proxy.rules").write_text(RULES + "allow interface org.example.New\n")
    actors.tell("/proxy/policy", Reload())
    wait_until(lambda: "allow inc-any interface org.example.New" in _rules(svc))  # the file's
    rules = _rules(svc)
    assert "allow out-any all" not in rules  # still deleted
    assert rules[-1].endswith("member rm")  # still added, after the file's rules
    guest = world.guest()
    try:
        assert _rm_allowed(world, guest)
    finally:
        guest.close()
