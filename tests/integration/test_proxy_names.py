"""``--owner-name`` and ``--translate-anonymous-dests`` end to end (reference §2.7): a guest
through a proxy instance to dbd on a real dbus-daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import DB_SERVICE
from rpc.dbus import BusConnection, CallTimeout, method_call
from tests.integration.proxy_fixtures import (
    T,
    World,
    host,  # noqa: F401  (fixture)
    make_world,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration


@pytest.fixture
def names_world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    w = make_world(tmp_path, bus_address, host,
                   ["-d", "5", "--owner-name", "--translate-anonymous-dests"])
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def plain_world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "5"])
    try:
        yield w
    finally:
        w.stop()


def _dbd_unique(address: str) -> str:
    with BusConnection(address) as root:
        return str(root.bus_call("GetNameOwner", "s", (DB_SERVICE,))[0])


def _read_via(guest: BusConnection, destination: str, timeout: float = T) -> object:
    msg = method_call(destination, "/", DB_SERVICE, "read", "s", ("/nothing",))
    return guest.call(msg, timeout).body


def test_owner_name_answers_get_name_owner_with_the_name_asked(names_world: World) -> None:
    guest = names_world.guest()
    try:
        for _ in range(3):  # every call, not just the first
            assert guest.bus_call("GetNameOwner", "s", (DB_SERVICE,), timeout=T) == (DB_SERVICE,)
        # errors still come back as errors (and forget the note)
        from rpc.dbus import DBusError
        with pytest.raises(DBusError) as info:
            guest.bus_call("GetNameOwner", "s", ("org.example.nobody",), timeout=T)
        assert info.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        # other bus calls are untouched
        assert guest.bus_call("NameHasOwner", "s", (DB_SERVICE,), timeout=T) == (True,)
    finally:
        guest.close()


def test_without_owner_name_the_unique_name_shows(plain_world: World) -> None:
    guest = plain_world.guest()
    try:
        owner = guest.bus_call("GetNameOwner", "s", (DB_SERVICE,), timeout=T)[0]
        assert owner.startswith(":") and owner == _dbd_unique(plain_world.address)
    finally:
        guest.close()


def test_a_call_to_a_unique_name_is_translated_before_the_rules(names_world: World) -> None:
    unique = _dbd_unique(names_world.address)
    guest = names_world.guest()
    try:
        # the rules allow destination com.citrix.xenclient.db only: the translated call passes
        assert _read_via(guest, unique) == ("",)
        # a unique name nobody owns under a well-known name goes unchanged (and is denied)
        with pytest.raises(CallTimeout):
            _read_via(guest, ":1.999999", timeout=0.5)
    finally:
        guest.close()


def test_without_translation_a_unique_destination_is_denied(plain_world: World) -> None:
    unique = _dbd_unique(plain_world.address)
    guest = plain_world.guest()
    try:
        with pytest.raises(CallTimeout):
            _read_via(guest, unique, timeout=0.5)
        assert _read_via(guest, DB_SERVICE) == ("",)
    finally:
        guest.close()
