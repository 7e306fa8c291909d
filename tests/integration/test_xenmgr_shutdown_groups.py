"""Host shutdown with 20 VMs in 4 ``shutdown-priority`` groups on the simulated host: the
groups go in order (highest first), a group's VMs in parallel; one VM of the second group
refuses to stop, so the sequence stops there: the rest of its group is stopped, the later
groups are never asked, the host goes back to ``idle`` and the call's error reports it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from rpc.dbus import DBusError
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

HOST = "com.citrix.xenclient.xenmgr.host"
GROUPS = (30, 20, 10, 0)  # shutdown-priority, highest first
PER_GROUP = 5


@pytest.fixture
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-groups"),
                     extra="shutdown_timeout = 3.0") as d:
        yield d
        d.close_connections()


def _create(dom0: Xenmgr, priority: int) -> str:
    doc = {"slot": "-1", "shutdown-priority": str(priority),  # no switcher slot: 20 fit
           "config": {"virt-type": "pv", "memory": "128"}}
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-linux", json.dumps(doc))[0])
    return path.rsplit("/", 1)[1].replace("_", "-")


def test_twenty_vms_four_groups_one_refuses_the_sequence_stops(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    group_of = {_create(dom0, prio): prio for prio in GROUPS for _ in range(PER_GROUP)}
    stubborn = next(u for u, p in group_of.items() if p == GROUPS[1])
    dom0.host.set_behaviour("ignore-shutdown", True, uuid=stubborn)

    def start(uuid: str) -> None:
        dom0.obj(f"/vm/{uuid.replace('-', '_')}").call(VM, "start", timeout=120)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(start, group_of))
    host = dom0.obj("/host")
    with SignalRecorder(dom0.address) as rec:
        began = time.monotonic()
        with pytest.raises(DBusError) as info:
            host.call(HOST, "shutdown", timeout=120)
        took = time.monotonic() - began
        rec.wait_for("state_changed", n=2)
        # the VMs' "stopped" signals may come after the host's "idle": wait for all of them
        stopped = wait_until(lambda: (found := [args[0] for args in rec.of("vm_state_changed")
                                                if args[2] == "stopped"])
                             and len(found) >= 2 * PER_GROUP - 1 and found, timeout=10)
        assert [args for member, args in rec.signals if member == "state_changed"] == [
            ("shutdowning",), ("idle",)]
    # the failure is reported: the VM that did not stop (or the guest's 104)
    assert stubborn in info.value.message or info.value.message.startswith("104")
    assert took < 60
    # group 1 all stopped, then group 2's four others; nothing of groups 3 and 4
    first = {u for u, p in group_of.items() if p == GROUPS[0]}
    second = {u for u, p in group_of.items() if p == GROUPS[1]} - {stubborn}
    assert set(stopped[:PER_GROUP]) == first
    assert set(stopped[PER_GROUP:]) == second
    for uuid, prio in group_of.items():
        state = dom0.obj(f"/vm/{uuid.replace('-', '_')}").get(VM, "state")
        expected = "stopped" if uuid in first | second else "running"
        assert state == expected, (uuid, prio, state)
    assert host.get(HOST, "state") == "idle"
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as xs:
        assert xs.try_read("/sim/host/power") is None
        assert xs.read("/xenmgr/host-state") == "idle"
