"""The dom0 supervisor as its own process, against a simulated host: faults of the whole.

SIGKILL with 20 running VMs and start again (domains adopted, db intact); kill the bus daemon
(restarted, services back on the bus); a crash storm on one VM monitor (escalation handled,
the rest of the tree keeps serving); SIGTERM stops in order and flushes the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpc.dbus import BusConnection, RemoteObject
from supervision.control._client import ControlClient, ControlError
from tests.helpers import wait_until
from tests.integration.xen_fixtures import vm_config
from xen.sim import SimHost

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DB = "com.citrix.xenclient.db"


class Dom0:
    """A running oxt-supervisor process and how to reach it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.config = state / "oxt.toml"
        self.config.write_text(f"""
[supervisor]
state_dir = "{state}"
backend = "sim"
bus = "private"
syslog = false
intensity = 10
period = 30
[sim]
state_dir = "simhost"
[persistence]
flush_interval = 0.5
[vms]
intensity = 3
period = 5
[xenmgr]
autostart = false
""")
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        ready = self.state / "ready.json"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.state / "dom0.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervision.dom0", "--config", str(self.config),
                 "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=log, text=True, env=env, cwd=ROOT)
        wait_until(lambda: ready.exists() or self.proc.poll() is not None,  # type: ignore[union-attr]
                   timeout=30)
        assert ready.exists(), (self.state / "dom0.log").read_text()[-3000:]
        self.info = json.loads(ready.read_text())

    def control(self) -> ControlClient:
        return ControlClient(self.info["control"], timeout=30)

    def task(self, vm: str, task: str, **params: str) -> str:
        with self.control() as ctl:
            return str(ctl.call("vm.task", uuid=vm, task=task, params=params, timeout=60, wait=70))

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def db(self) -> RemoteObject:
        conn = BusConnection(self.info["bus"])
        return RemoteObject(conn, DB, "/", timeout=10)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SimHost]:
    with SimHost(tmp_path / "simhost", memory_mib=8192, with_dbus=False) as h:
        yield h


@pytest.fixture
def dom0(tmp_path: Path, host: SimHost) -> Iterator[Dom0]:
    d = Dom0(tmp_path)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.kill(signal.SIGTERM)


def live(host: SimHost, vm: str) -> list[int]:
    from xen.hypervisor import SimBackend
    with SimBackend(str(host.hypervisor_path)) as hv:
        return [i.domid for i in hv.find_by_handle(uuidlib.UUID(vm))
                if not i.dying and not i.shutdown]


def add_vms(dom0: Dom0, n: int) -> list[str]:
    vms = [str(uuidlib.UUID(int=0xA000 + i)) for i in range(n)]
    with dom0.control() as ctl:
        for i, vm in enumerate(vms):
            ctl.call("vm.add", uuid=vm, config=vm_config(f"vm{i}", memory=32,
                                                         on_crash="restart"))
            ctl.call("vm.task", uuid=vm, task="start", params={}, timeout=60, wait=70)
    return vms


def test_sigkill_with_20_vms_then_start_again(dom0: Dom0, host: SimHost) -> None:
    vms = add_vms(dom0, 20)
    domids = {vm: int(dom0.task(vm, "get-domid")) for vm in vms}
    db = dom0.db()
    for i in range(20):
        db.call(DB, "write", "ss", f"/fault/k{i}", f"v{i}")
    db.conn.close()
    assert dom0.kill() == -signal.SIGKILL
    dom0.start()
    with dom0.control() as ctl:
        tree = ctl.call("tree")
    vms_node = next(c for c in tree["children"] if c["id"] == "vms")["tree"]
    service_vms = {f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2, 3)}  # xenmgr's
    assert sorted(c["id"] for c in vms_node["children"]
                  if c["id"] not in service_vms) == sorted(vms)
    for vm in vms:
        assert dom0.task(vm, "get-status") == "running"
        assert int(dom0.task(vm, "get-domid")) == domids[vm]  # adopted, not restarted
        assert live(host, vm) == [domids[vm]]                  # none duplicated
    db = dom0.db()
    assert [db.call(DB, "read", "s", f"/fault/k{i}")[0] for i in range(20)] == \
        [f"v{i}" for i in range(20)]
    db.conn.close()


def test_killing_the_bus_daemon(dom0: Dom0) -> None:
    with dom0.control() as ctl:
        bus_pid = ctl.call("state", path="/bus")["pid"]
        seq = ctl.call("log.tail", n=1)[-1]["seq"]
    os.kill(bus_pid, signal.SIGKILL)

    def back() -> bool:
        try:
            db = dom0.db()
        except Exception:
            return False
        try:
            db.call(DB, "write", "ss", "/bus/back", "yes")
            return db.call(DB, "read", "s", "/bus/back") == ("yes",)
        except Exception:
            return False
        finally:
            db.conn.close()

    wait_until(back, timeout=20, interval=0.1)
    with dom0.control() as ctl:
        assert ctl.call("state", path="/bus")["pid"] != bus_pid
        events = ctl.call("log.tail", n=200)
    crashed = [e["path"] for e in events if e["seq"] > seq and e["kind"] == "crashed"]
    assert "/bus" in crashed


def test_crash_storm_on_one_vm_monitor(dom0: Dom0, host: SimHost) -> None:
    vms = add_vms(dom0, 3)
    domids = {vm: int(dom0.task(vm, "get-domid")) for vm in vms}
    victim = vms[0]
    with dom0.control() as ctl:
        seq = ctl.call("log.tail", n=1)[-1]["seq"]
        deadline = time.monotonic() + 20
        escalated = False
        while not escalated and time.monotonic() < deadline:
            try:
                ctl.call("crash", path=f"/vms/{victim}")
            except ControlError:
                pass  # restarting right now
            time.sleep(0.05)
            events = ctl.call("log.tail", n=500)
            escalated = any(e["seq"] > seq and e["kind"] == "escalated" and e["path"] == "/vms"
                            for e in events)
        assert escalated
    # the root restarted /vms; every monitor came back and adopted its domain
    def running(vm: str) -> bool:
        try:
            return dom0.task(vm, "get-status") == "running"
        except ControlError:
            return False  # /vms is being restarted

    for vm in vms:
        wait_until(lambda vm=vm: running(vm), timeout=20, interval=0.1)
        assert int(dom0.task(vm, "get-domid")) == domids[vm]
    db = dom0.db()  # the rest of the tree kept serving
    db.call(DB, "write", "ss", "/storm", "survived")
    assert db.call(DB, "read", "s", "/storm") == ("survived",)
    db.conn.close()


def test_sigterm_stops_in_order_and_flushes(dom0: Dom0) -> None:
    db = dom0.db()
    db.call(DB, "write", "ss", "/stop/flushed", "yes")
    db.conn.close()
    assert dom0.kill(signal.SIGTERM) == 0
    text = (dom0.state / "config" / "db").read_text()
    assert '"flushed": "yes"' in text
    assert not (dom0.state / "run" / "control.sock").exists()


def test_sd_notify_and_sighup(tmp_path: Path, host: SimHost) -> None:
    """READY=1 reaches $NOTIFY_SOCKET; SIGHUP reloads the database from disk after a flush,
    announced with RELOADING=1 and READY=1."""
    import socket as socketlib
    notify_path = tmp_path / "notify.sock"
    listener = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(30)
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = str(notify_path)
    d = Dom0(tmp_path)
    try:
        d.start()
        assert listener.recv(1024) == b"STATUS=starting"
        assert listener.recv(1024) == b"READY=1"
        db = d.db()
        db.call(DB, "write", "ss", "/hup/kept", "yes")
        db.conn.close()
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        assert listener.recv(1024) == b"RELOADING=1"  # systemd's Type=notify-reload protocol
        assert listener.recv(1024) == b"READY=1"
        wait_until(lambda: "reloaded" in (tmp_path / "dom0.log").read_text(), timeout=10)
        db = d.db()
        assert db.call(DB, "read", "s", "/hup/kept") == ("yes",)  # acknowledged: kept
        db.conn.close()
        assert d.kill(signal.SIGTERM) == 0
        assert listener.recv(1024) == b"STOPPING=1"
    finally:
        if old is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = old
        listener.close()
        if d.proc is not None and d.proc.poll() is None:
            d.kill()
