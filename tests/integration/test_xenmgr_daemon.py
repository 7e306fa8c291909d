"""The standalone ``xenmgr`` console script beside a standalone ``dbd``, on a private bus,
against the simulated host: it serves, drives its VMs, writes its pid, stops on SIGTERM; a
database written by an older OpenXT (version 41) is refused, naming the version (exit 1),
and nothing is written to it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from rpc.dbus import BusConnection, DBusError, RemoteObject, start_bus
from tests.helpers import wait_until
from xen.sim import SimHost

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
XENMGR = "com.citrix.xenclient.xenmgr"
VM = "com.citrix.xenclient.xenmgr.vm"
DB = "com.citrix.xenclient.db"


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


@contextmanager
def _dbd_on_a_bus(tmp_path: Path) -> Iterator[tuple[str, SimHost, IO[bytes], list[Any]]]:
    """A private bus, the simulated host and a standalone dbd; every process the test adds
    to the list is stopped at the end (then dbd, then the bus)."""
    bus, address = start_bus(tmp_path / "bus", own_prefixes=("com.citrix.xenclient",
                                                               "org.xen.vm", "org.openxt"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with SimHost(tmp_path / "sim", memory_mib=4096, with_dbus=False) as host, \
                open(tmp_path / "daemons.log", "wb") as log:
            dbd = subprocess.Popen([str(BIN / "dbd"), "--root", str(tmp_path / "db"),
                                    "--bus", address, "--foreground"], stdout=log, stderr=log)
            extra: list[Any] = []
            try:
                yield address, host, log, extra
            finally:
                procs += [*extra, dbd]
    finally:
        for proc in procs:
            _stop(proc)
        bus.terminate()
        bus.wait(10)
        if bus.stderr is not None:
            bus.stderr.close()


def _xenmgr(address: str, host: SimHost, tmp_path: Path, log: IO[bytes],
            *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "xenmgr"), "--no-daemonize", "--no-autostart", *extra, "--bus", address,
         "--state", str(tmp_path / "state"), "--backend", "sim",
         "--xenstore-socket", str(host.xenstore_path),
         "--hypervisor-socket", str(host.hypervisor_path),
         "--storage", str(tmp_path / "disks"), "--templates", str(tmp_path / "t")],
        stdout=log, stderr=log)


def test_standalone_xenmgr_serves_and_stops(tmp_path: Path) -> None:
    with _dbd_on_a_bus(tmp_path) as (address, host, log, procs):
        pidfile = tmp_path / "xenmgr.pid"
        xenmgr = _xenmgr(address, host, tmp_path, log, "--writepid", str(pidfile))
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


def test_an_older_database_is_refused_naming_its_version(tmp_path: Path) -> None:
    with _dbd_on_a_bus(tmp_path) as (address, host, log, procs), \
            BusConnection(address) as conn:
        db = RemoteObject(conn, DB, "/", timeout=10)

        def db_answers() -> bool:
            try:
                db.call(DB, "write", "ss", "/db-version", "41")
                return True
            except DBusError:
                return False
        wait_until(db_answers, timeout=30)
        xenmgr = _xenmgr(address, host, tmp_path, log)
        procs.append(xenmgr)
        wait_until(lambda: xenmgr.poll() is not None, timeout=120)
        assert xenmgr.returncode == 1
        text = (tmp_path / "daemons.log").read_text()
        assert "database version 41 is older than 42" in text, text[-3000:]
        # nothing written: the version and no service VM
        assert db.call(DB, "read", "s", "/db-version")[0] == "41"
        assert not db.call(DB, "list", "s", "/vm")[0]
