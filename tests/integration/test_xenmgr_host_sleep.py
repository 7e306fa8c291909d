"""Host sleep, hibernation and idle shutdown through ``xec`` on the simulated host: each VM
handled by its s3/s4 mode, the host's state and signals, the host's own power action
recorded; failures put the host back to idle (or, for an idle shutdown, force it off at the
cap)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rpc.dbus import RemoteObject
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

HOST = "com.citrix.xenclient.xenmgr.host"
DB = "com.citrix.xenclient.db"
ERROR = "org.freedesktop.DBus.Error.Failed: "


@pytest.fixture
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-sleep"),
                     extra="shutdown_timeout = 2.0\nidle_shutdown_cap = 4.0") as d:
        yield d
        d.close_connections()


def guest(dom0: Xenmgr, *, s3: str = "pv", s4: str = "pv", start: bool = True,
          **db: str) -> tuple[str, RemoteObject]:
    """A PV guest (it answers shutdown requests itself) with the given modes."""
    spec = {"s3-mode": s3, "s4-mode": s4, "config": {"virt-type": "pv"}, **db}
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-linux", json.dumps(spec))[0])
    vm = dom0.obj(path)
    if start:
        vm.call(VM, "start")
    return path.rsplit("/", 1)[1].replace("_", "-"), vm


def xec_host(dom0: Xenmgr, method: str) -> tuple[int, str]:
    done = dom0.xec("-o", "/host", method, timeout=90)
    return done.returncode, done.stdout.strip()


def sim_node(dom0: Xenmgr, path: str) -> str | None:
    assert dom0.host is not None
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as xs:
        return xs.try_read(path)


def db_read(dom0: Xenmgr, path: str) -> str:
    return str(RemoteObject(dom0.connection(), DB, "/").call(DB, "read", "s", path)[0])


def host_states(rec: SignalRecorder) -> list[str]:
    return [args[0] for member, args in rec.signals if member == "state_changed"]


def test_host_sleep_by_s3_mode_then_a_pv_guest_stops_it(dom0: Xenmgr) -> None:
    restart_uuid, restart = guest(dom0, s3="restart")
    ignore_uuid, ignore = guest(dom0, s3="ignore")
    _stopped_uuid, stopped = guest(dom0, s3="restart", start=False)
    with SignalRecorder(dom0.address) as rec:
        assert xec_host(dom0, "sleep") == (0, "")
        def states() -> list[str]:
            return [a[2] for a in rec.of("vm_state_changed", restart_uuid)]
        # shut down for the sleep, started again after it
        wait_until(lambda: "stopped" in states() and states()[-1] == "running", timeout=20)
        assert rec.of("vm_state_changed", ignore_uuid) == []  # left as it was
        rec.wait_for("state_changed", n=2)
        assert host_states(rec) == ["sleeping", "idle"]
    assert sim_node(dom0, "/sim/host/power") == "suspend"
    assert sim_node(dom0, "/xenmgr/host-state") == "idle"
    assert restart.get(VM, "state") == "running" and ignore.get(VM, "state") == "running"
    assert stopped.get(VM, "state") == "stopped"

    _pv_uuid, pv = guest(dom0)  # s3-mode pv: our VM monitors cannot put a guest in S3
    with SignalRecorder(dom0.address) as rec:
        status, out = xec_host(dom0, "sleep")
        assert status == 1 and out.startswith(ERROR) and "ACPI S3" in out, out
        rec.wait_for("state_changed", n=2)  # signals may trail the call's reply
        assert host_states(rec) == ["sleeping", "idle"]
    assert dom0.obj("/host").get(HOST, "state") == "idle"
    assert restart.get(VM, "state") == "running" and pv.get(VM, "state") == "running"


def test_host_hibernate_by_s4_mode_then_powers_off(dom0: Xenmgr) -> None:
    _none, without_addons = guest(dom0)  # s4-mode pv without PV addons: 213, so 201
    status, out = xec_host(dom0, "hibernate")
    assert (status, out) == (1, ERROR + "201:Failed to hibernate VM")
    assert dom0.obj("/host").get(HOST, "state") == "idle"
    assert without_addons.get(VM, "state") == "running"
    without_addons.call(VM, "shutdown")

    pv_uuid, pv = guest(dom0, **{"pv-addons-installed": "true"})
    restart_uuid, restart = guest(dom0, s4="restart")
    with SignalRecorder(dom0.address) as rec:
        assert xec_host(dom0, "hibernate") == (0, "")
        rec.wait_for("state_changed")
        assert host_states(rec) == ["hibernating"]
    assert pv.get(VM, "state") == "suspended"  # saved: its next start restores it
    assert restart.get(VM, "state") == "stopped"
    for uuid in (pv_uuid, restart_uuid):
        assert db_read(dom0, f"/vm/{uuid}/hibernated") == "true"
    assert db_read(dom0, "/platform/hibernated") == "true"
    assert sim_node(dom0, "/sim/host/power") == "poweroff"
    assert sim_node(dom0, "/xenmgr/host-state") == "going-to-hibernate"
    status, out = xec_host(dom0, "sleep")
    assert status == 1 and "already going-to-hibernate" in out


def test_idle_shutdown_forces_the_host_off_at_the_cap(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    stubborn_uuid, stubborn = guest(dom0)
    dom0.host.set_behaviour("ignore-shutdown", True, uuid=stubborn_uuid)
    status, out = xec_host(dom0, "shutdown-idle")
    assert status == 1 and out.startswith(ERROR), out
    assert stubborn.get(VM, "state") == "running"
    assert dom0.obj("/host").get(HOST, "state") == "shutdowning"  # not back to idle
    wait_until(lambda: sim_node(dom0, "/sim/host/power") == "poweroff-forced", timeout=20)
