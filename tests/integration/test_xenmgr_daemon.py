"""The standalone ``xenmgr`` console script beside a standalone ``dbd``, on a private bus,
against the simulated host: it serves, drives its VMs, writes its pid, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rpc.dbus import BusConnection, DBusError, RemoteObject, start_bus
from tests.helpers import wait_until
from xen.sim import SimHost

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
XENMGR = "com.citrix.xenclient.xenmgr"
VM = "com.citrix.xenclient.xenmgr.vm"


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def test_standalone_xenmgr_serves_and_stops(tmp_path: Path) -> None:
    bus, address = start_bus(tmp_path / "bus", own_prefixes=("com.citrix.xenclient",
                                                               "org.xen.vm", "org.openxt"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with SimHost(tmp_path / "sim", memory_mib=4096, with_dbus=False) as host:
            log = open(tmp_path / "daemons.log", "wb")
            procs.append(subprocess.Popen([str(BIN / "dbd"), "--root", str(tmp_path / "db"),
                                           "--bus", address, "--foreground"],
                                          stdout=log, stderr=log))
            pidfile = tmp_path / "xenmgr.pid"
            xenmgr = subprocess.Popen(
                [str(BIN / "xenmgr"), "--no-daemonize", "--no-autostart", "--writepid",
                 str(pidfile), "--bus", address, "--state", str(tmp_path / "state"),
                 "--backend", "sim", "--xenstore-socket", str(host.xenstore_path),
                 "--hypervisor-socket", str(host.hypervisor_path),
                 "--storage", str(tmp_path / "disks"), "--templates", str(tmp_path / "t")],
                stdout=log, stderr=log)
            procs.append(xenmgr)
            with BusConnection(address) as conn:
                root = RemoteObject(conn, XENMGR, "/", timeout=30)

                def answers() -> bool:
                    try:
                        root.call(XENMGR, "list_templates", timeout=2)
                        return True
                    except DBusError:
                        return xenmgr.poll() is not None
                wait_until(answers, timeout=40)
                assert xenmgr.poll() is None, (tmp_path / "daemons.log").read_text()
                # the runner writes the pidfile once the service is up (it may answer first)
                wait_until(pidfile.exists, timeout=20)
                assert pidfile.read_text().strip() == str(xenmgr.pid)
                path = str(root.call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
                vm = RemoteObject(conn, XENMGR, path, timeout=30)
                vm.call(VM, "start")
                assert vm.get(VM, "state") == "running"
                vm.call(VM, "destroy")
                vm.call(VM, "delete")
                assert path not in root.call(XENMGR, "list_vms")[0]
            assert _stop(xenmgr) == 0
    finally:
        for proc in procs:
            _stop(proc)
        bus.terminate()
        bus.wait(10)
        if bus.stderr is not None:
            bus.stderr.close()
