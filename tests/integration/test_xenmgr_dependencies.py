"""VM dependencies and network backend relocation through xenmgr on the simulated host: the
``dependencies`` property (through ``xec``), ``track-dependencies`` starting a network VM
first, a guest's nic served by the network VM's netback, moved to the network VM's new domain
when it restarts, and a dependency cycle refused when it is set."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rpc.dbus import DBusError, RemoteObject
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder

pytestmark = pytest.mark.integration

NIC = "com.citrix.xenclient.vmnic"
NDVM = "00000000-0000-0000-0000-000000000002"  # the service network VM (default backend)


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-deps")) as d:
        yield d


_made: list[RemoteObject] = []
_recorders: list[SignalRecorder] = []


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    for vm in reversed(_made):  # slots are few (1..9): each test deletes its VMs
        if vm.get(VM, "state") != "stopped":
            vm.call(VM, "destroy", timeout=60)
        vm.call(VM, "delete", timeout=60)
    _made.clear()
    for recorder in _recorders:
        recorder.close()
    _recorders.clear()
    dom0.close_connections()


def create(dom0: Xenmgr, doc: dict[str, object]) -> tuple[str, RemoteObject]:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-linux", json.dumps(doc))[0])
    _made.append(dom0.obj(path))
    return path.rsplit("/", 1)[1].replace("_", "-"), dom0.obj(path)


def network_vm(dom0: Xenmgr) -> tuple[str, RemoteObject]:
    # a PV network VM whose own nic is off (so it depends on nothing)
    return create(dom0, {"provides-network-backend": "true",
                         "config": {"virt-type": "pv", "nic": {"0": {"enable": "false"}}}})


def served_by(dom0: Xenmgr, backend_domid: int) -> set[tuple[str, int, int]]:
    assert dom0.host is not None
    return set(dom0.host.backends_connected(backend_domid))


def test_dependencies_property_through_xec(dom0: Xenmgr) -> None:
    net_uuid, net = network_vm(dom0)
    guest_uuid, guest = create(dom0, {"config": {"virt-type": "pv",
                                                 "nic": {"0": {"backend-uuid": net_uuid}}}})
    guest_path = guest.path
    out = dom0.xec("-o", guest_path, "-i", VM, "get", "dependencies")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [net.path]
    # a nic with no backend: the VM that provides the default network backend
    _plain_uuid, plain = create(dom0, {"config": {"virt-type": "pv"}})
    assert plain.get(VM, "dependencies") == [f"/vm/{NDVM.replace('-', '_')}"]
    # by name, transitively: guest2 -> guest (by name) -> network VM
    guest.set(VM, "name", "s", "middle")
    _g2, guest2 = create(dom0, {"config": {"virt-type": "pv",
                                           "nic": {"0": {"backend-name": "middle"}}}})
    assert guest2.get(VM, "dependencies") == [net.path, guest_path]
    assert guest_uuid in guest_path.replace("_", "-")


def test_a_fresh_database_gets_the_current_version(dom0: Xenmgr) -> None:
    db = RemoteObject(dom0.connection(), "com.citrix.xenclient.db", "/", timeout=10)
    assert db.call("com.citrix.xenclient.db", "read", "s", "/db-version")[0] == "42"


def test_a_cycle_is_refused_when_it_is_set(dom0: Xenmgr) -> None:
    net_uuid, net = network_vm(dom0)
    guest_uuid, guest = create(dom0, {"config": {"virt-type": "pv",
                                                 "nic": {"0": {"backend-uuid": net_uuid}}}})
    nic_path = str(net.call(VM, "add_nic")[0])
    nic = dom0.obj(nic_path)
    with pytest.raises(DBusError) as info:
        nic.set(NIC, "backend-uuid", "s", guest_uuid)
    assert "depend on each other" in info.value.message
    assert guest_uuid in info.value.message and net_uuid in info.value.message
    assert nic.get(NIC, "backend-uuid") == ""  # nothing written
    ndvm = f"/vm/{NDVM.replace('-', '_')}"  # the new nic's backend: the default one
    assert net.get(VM, "dependencies") == [ndvm]
    assert guest.get(VM, "dependencies") == [ndvm, net.path]  # transitively


def test_track_dependencies_starts_the_backend_and_nics_follow_its_restart(
        dom0: Xenmgr) -> None:
    net_uuid, net = network_vm(dom0)
    _guest_uuid, guest = create(dom0, {"track-dependencies": "true",
                                       "config": {"virt-type": "pv",
                                                  "nic": {"0": {"backend-uuid": net_uuid}}}})
    guest.call(VM, "start", timeout=60)
    assert net.get(VM, "state") == "running"  # started first, as a dependency
    net_domid, guest_domid = int(net.get(VM, "domid")), int(guest.get(VM, "domid"))
    # the guest's nic is served by the network VM's netback, not dom0's
    wait_until(lambda: ("vif", guest_domid, 0) in served_by(dom0, net_domid), timeout=20)
    assert ("vif", guest_domid, 0) not in served_by(dom0, 0)
    net.call(VM, "shutdown", timeout=60)
    net.call(VM, "start", timeout=60)
    new_domid = int(net.get(VM, "domid"))
    assert new_domid != net_domid
    # relocated: the nic now lives in the restarted network VM's domain; the guest ran on
    wait_until(lambda: ("vif", guest_domid, 0) in served_by(dom0, new_domid), timeout=30)
    assert int(guest.get(VM, "domid")) == guest_domid
    assert guest.get(VM, "state") == "running"


def test_a_backend_that_does_not_run_leaves_the_nic_to_dom0(dom0: Xenmgr) -> None:
    net_uuid, net = network_vm(dom0)
    recorder = SignalRecorder(dom0.address)
    _recorders.append(recorder)
    _guest_uuid, guest = create(dom0, {"config": {"virt-type": "pv",
                                                  "nic": {"0": {"backend-uuid": net_uuid}}}})
    guest.call(VM, "start", timeout=60)  # no track-dependencies: the network VM stays off
    assert net.get(VM, "state") == "stopped"
    guest_domid = int(guest.get(VM, "domid"))
    wait_until(lambda: ("vif", guest_domid, 0) in served_by(dom0, 0), timeout=20)
    net.call(VM, "start", timeout=60)  # the network VM comes: the nic moves into it
    net_domid = int(net.get(VM, "domid"))
    wait_until(lambda: ("vif", guest_domid, 0) in served_by(dom0, net_domid), timeout=30)
    assert ("vif", guest_domid, 0) not in served_by(dom0, 0)
    # the network backend's arrival and departure are signalled; the guest's own start is not
    assert recorder.wait_for("network_state_changed", timeout=20) == [(True,)]
    net.call(VM, "shutdown", timeout=60)
    assert recorder.wait_for("network_state_changed", n=2, timeout=20) == [(True,), (False,)]


def test_a_guest_resumed_from_hibernation_gets_its_nic_in_the_running_network_vm(
        dom0: Xenmgr) -> None:
    """Hibernated while its network VM was off (the nic served by dom0), resumed once the
    network VM runs: the restored guest comes back with the nic it was saved with (dom0's),
    which is then moved into the network VM, as a fresh start would have plugged it."""
    net_uuid, net = network_vm(dom0)
    _guest_uuid, guest = create(dom0, {"config": {"virt-type": "pv",
                                                  "nic": {"0": {"backend-uuid": net_uuid}}}})
    guest.call(VM, "start", timeout=60)
    wait_until(lambda: ("vif", int(guest.get(VM, "domid")), 0) in served_by(dom0, 0),
               timeout=20)
    guest.call(VM, "hibernate", timeout=60)
    net.call(VM, "start", timeout=60)
    guest.call(VM, "start", timeout=60)  # the resume
    guest_domid, net_domid = int(guest.get(VM, "domid")), int(net.get(VM, "domid"))
    wait_until(lambda: ("vif", guest_domid, 0) in served_by(dom0, net_domid), timeout=30)
    assert ("vif", guest_domid, 0) not in served_by(dom0, 0)
