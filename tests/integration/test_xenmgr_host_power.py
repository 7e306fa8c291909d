"""Host shutdown through xenmgr on the simulated host: VMs stopped by priority group, the
host's state and signals, the power request recorded; the first failure stops the sequence."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rpc.dbus import DBusError
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

HOST = "com.citrix.xenclient.xenmgr.host"


@pytest.fixture
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-power"),
                     extra="shutdown_timeout = 2.0") as d:
        yield d
        d.close_connections()


def started(dom0: Xenmgr, priority: int, *, stubborn: bool = False) -> tuple[str, object]:
    # a PV guest: it answers control/shutdown itself (an HVM one is shut down by Xen)
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-linux", '{"config": {"virt-type": "pv"}}')[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.set(VM, "shutdown-priority", "i", priority)
    if stubborn:  # the simulated guest will ignore shutdown requests
        assert dom0.host is not None
        dom0.host.set_behaviour("ignore-shutdown", True, uuid=uuid)
    vm.call(VM, "start")
    return uuid, vm


def test_host_shutdown_stops_vms_by_priority_then_records_the_power_off(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    vms = {name: started(dom0, prio) for name, prio in (("hi1", 10), ("hi2", 10), ("lo", 0))}
    host = dom0.obj("/host")
    assert host.get(HOST, "state") == "idle"
    with SignalRecorder(dom0.address) as rec:
        host.call(HOST, "shutdown", timeout=60)
        # the three "stopped" signals (a VM's other states are signalled too, in between)
        stopped = wait_until(lambda: (found := [args[0] for args in rec.of("vm_state_changed")
                                                if args[2] == "stopped"])
                             and len(found) >= 3 and found, timeout=10)
        assert set(stopped[:2]) == {vms["hi1"][0], vms["hi2"][0]}
        assert stopped[2:] == [vms["lo"][0]]
        host_signals = [args for member, args in rec.signals if member == "state_changed"]
        assert host_signals == [("shutdowning",)]
    for _uuid, vm in vms.values():
        assert vm.get(VM, "state") == "stopped"  # type: ignore[attr-defined]
    assert host.get(HOST, "state") == "shutdowning"
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as xs:
        assert xs.read("/sim/host/power") == "poweroff"
        assert xs.read("/xenmgr/host-state") == "shutting-down"
    with pytest.raises(DBusError) as again:
        host.call(HOST, "reboot")
    assert "already shutting-down" in again.value.message


def test_a_guest_that_does_not_stop_stops_the_sequence(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    first_uuid, first = started(dom0, 10, stubborn=True)
    _last_uuid, last = started(dom0, 0)
    host = dom0.obj("/host")
    start = time.monotonic()
    with pytest.raises(DBusError) as info:
        host.call(HOST, "shutdown", timeout=60)
    assert time.monotonic() - start < 30
    assert first_uuid in info.value.message or info.value.message.startswith("104")
    assert host.get(HOST, "state") == "idle"
    assert first.get(VM, "state") == "running"  # type: ignore[attr-defined]
    assert last.get(VM, "state") == "running"  # type: ignore[attr-defined]  # never asked
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as xs:
        assert xs.try_read("/sim/host/power") is None


def test_storage_space_low_is_signalled(tmp_path_factory: pytest.TempPathFactory) -> None:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-storage"),
                     extra="storage_low_percent = 101\nstorage_check = 2.0") as d:
        try:
            with SignalRecorder(d.address) as rec:
                got = rec.wait_for("storage_space_low", timeout=20)
            assert 0 <= got[0][0] <= 100
        finally:
            d.close_connections()
