"""The supervised bus daemon, reconnection after a bus restart, and caller identity."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from rpc.dbus import (
    ACCESS_DENIED,
    BusConnection,
    BusDaemon,
    CallerIdentity,
    DBusError,
    Identity,
    IdentityService,
    RemoteObject,
    address_file,
    start_bus,
)
from rpc.dbus._identity import IDENTITY_INTERFACE, IDENTITY_NAME, IDENTITY_PATH
from supervision import (
    Backoff,
    ChildSpec,
    EventLog,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)
from tests.helpers import run_as_nobody, wait_until
from tests.integration.dbus_test_service import IFACE, PATH, SERVICE, EchoService

pytestmark = pytest.mark.integration
T = 10.0


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Supervisor, EventLog, Path]]:
    events = EventLog()
    address = f"unix:path={tmp_path}/dbus/system_bus_socket"
    ref = Supervisor.start_root(
        SupFlags(Strategy.REST_FOR_ONE, intensity=10, period=10,
                 backoff=Backoff(0.05, 0.5)),
        [ChildSpec("bus", start_actor(BusDaemon, tmp_path,
                                      ("org.openxt", "org.test", "com.citrix.xenclient"))),
         ChildSpec("echo", start_actor(EchoService, address))],
        events=events)
    yield actors.actor_of(ref), events, tmp_path  # type: ignore[misc]
    ref.stop(block=True, timeout=15)


def test_bus_daemon_publishes_its_address(tree: tuple[Supervisor, EventLog, Path]) -> None:
    _sup, _events, state = tree
    address = address_file(state).read_text().strip()
    assert address.startswith("unix:path=") and str(state) in address
    with BusConnection(address) as conn:
        assert RemoteObject(conn, SERVICE, PATH).call(IFACE, "echo_s", "s", "x") == ("x",)


def test_bus_restart_brings_services_back(tree: tuple[Supervisor, EventLog, Path]) -> None:
    _sup, events, state = tree
    bus = actors.actor_of(actors.resolve("/bus"))
    old_pid = bus.pid
    seq = events.last_seq
    os.kill(old_pid, signal.SIGKILL)
    assert events.wait_for(lambda e: e.kind == "crashed" and e.path == "/bus", T, since=seq)
    assert events.wait_for(lambda e: e.kind == "restarted" and e.path == "/echo", T, since=seq)
    new_bus = actors.actor_of(actors.resolve("/bus"))
    assert new_bus.pid != old_pid
    address = address_file(state).read_text().strip()
    with BusConnection(address) as conn:
        assert RemoteObject(conn, SERVICE, PATH).call(IFACE, "echo_s", "s", "back") == ("back",)
        owner = conn.bus_call("GetNameOwner", "s", (SERVICE,))[0]
        assert owner.startswith(":")


def test_identity_registry_rules(bus_address: str) -> None:
    registry = CallerIdentity()
    with BusConnection(bus_address) as me:
        # unregistered, uid 0 (these tests run as root): dom0
        assert registry.identify(me, me.unique_name).domid == 0
        registry.register(":1.999", 7, "uuid-7")
        assert registry.identify(me, ":1.999").domid == 7
        registry.unregister(":1.999")
        with pytest.raises(ValueError):
            registry.register("not-unique", 1)


def call_as_nobody(address: str) -> str:
    """Call get_domid on our own connection from a child process running as uid 65534."""
    def task() -> str:
        conn = BusConnection(address)
        try:
            return str(RemoteObject(conn, IDENTITY_NAME, IDENTITY_PATH).call(
                IDENTITY_INTERFACE, "get_domid", "s", conn.unique_name))
        except DBusError as exc:
            return f"ERROR {exc.name} {exc.message}"
        finally:
            conn.close()
    return run_as_nobody(task)


def test_identity_service_over_the_bus(bus_address: str) -> None:
    registry = CallerIdentity()
    ref = IdentityService.start(bus_address, registry)
    try:
        assert actors.actor_of(ref).wait_started(5)
        with BusConnection(bus_address) as conn:
            ident = RemoteObject(conn, IDENTITY_NAME, IDENTITY_PATH)
            assert ident.call(IDENTITY_INTERFACE, "get_domid", "s", conn.unique_name) == (0,)
            other = BusConnection(bus_address)
            ident.call(IDENTITY_INTERFACE, "register", "sis", other.unique_name, 5, "u5")
            assert ident.call(IDENTITY_INTERFACE, "get_identity", "s", other.unique_name) == \
                (5, "u5")
            ident.call(IDENTITY_INTERFACE, "register_domain", "sisb", other.unique_name, 6,
                       "u6", True)
            assert registry.lookup(other.unique_name) == Identity(6, "u6", stubdom=True)
            gone = other.unique_name
            other.close()  # NameOwnerChanged drops it
            wait_until(lambda: registry.lookup(gone) is None)
            with pytest.raises(DBusError):
                ident.call(IDENTITY_INTERFACE, "register", "sis", "bogus", 1, "")
    finally:
        ref.stop(block=True, timeout=5)


def test_unregistered_non_root_callers_are_refused() -> None:
    """A connection of another uid that no proxy registered is not dom0."""
    directory = Path(tempfile.mkdtemp(prefix="oxt-bus-", dir="/tmp"))
    os.chmod(directory, 0o755)
    proc, address = start_bus(directory, ("org.openxt",))
    os.chmod(directory / "system_bus_socket", 0o777)
    ref = IdentityService.start(address, CallerIdentity())
    try:
        assert actors.actor_of(ref).wait_started(5)
        out = call_as_nobody(address)
        assert out.startswith(f"ERROR {ACCESS_DENIED}"), out
        assert "(uid 65534) is neither a connection forwarded by a proxy nor uid 0" in out
    finally:
        ref.stop(block=True, timeout=5)
        proc.terminate()
        proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)
