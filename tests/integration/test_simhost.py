"""The simulated Xen host over its real sockets: xenstored seeded as a dom0, the hypervisor
wired to xenstored's special watches, guests and backends walking the xenbus handshake,
control/shutdown answers and every behaviour, the CLI as a process that outlives its clients.

Domains are laid out the way xenops does it: the keys come from the xenops plans
(`plan_domain_create`, `plan_device_add`), run here by a small interpreter of their xenstore
steps (waits are the tests' business)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from xen.hypervisor import DomainInfo, DomainSpec, ShutdownReason, SimBackend
from xen.sim import SimHost
from xen.xenops import (
    ConsoleSpec,
    Introduce,
    Mkdir,
    PhysType,
    Rm,
    Transaction,
    VbdSpec,
    VifSpec,
    Write,
    plan_device_add,
    plan_domain_create,
)
from xen.xenops._plan import DomainSpec as XenopsDomainSpec
from xen.xenstore import WatchFired, XenstoreClient, key_to_disappear, value_to_become
from xen.xenstore._ops import NodeOps

pytestmark = pytest.mark.integration

VBD = 51712  # xvda
MIB = 1024


class World:
    """A started SimHost plus a toolstack-side hypervisor and xenstore client."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.hv = SimBackend(host.hypervisor_path)
        self.xs = XenstoreClient(host.xenstore_path, timeout=2.0).connect()
        self.released = threading.Event()
        self.xs.watch("@releaseDomain", "rel", self._on_release)
        wait_until(self.released.is_set, 2.0)  # the watch fires once when registered
        self.released.clear()

    def _on_release(self, event: WatchFired) -> None:
        self.released.set()

    def run(self, steps: tuple[object, ...]) -> None:
        for step in steps:
            if isinstance(step, Transaction):
                ops = step.ops

                def body(t: NodeOps, ops: tuple[object, ...] = ops) -> None:
                    for op in ops:
                        _apply(t, op)

                self.xs.transaction(body)
            elif isinstance(step, Introduce):
                self.xs.introduce(step.domid, step.mfn, step.port)
            elif isinstance(step, Write | Mkdir | Rm):
                _apply(self.xs, step)

    def domain(self, name: str = "vm", *, devices: bool = True, introduce: bool = True,
               unpause: bool = True) -> int:
        handle = uuid.uuid4()
        domid = self.hv.create(DomainSpec(handle=handle, memory_kib=64 * MIB,
                                          max_memory_kib=64 * MIB))
        self.run(plan_domain_create(XenopsDomainSpec(uuid=str(handle), name=name), domid).steps)
        if devices:
            for spec in (VbdSpec(domid, "xvda", "/dev/sda", PhysType.PHY),
                         VifSpec(domid, 0, "00:16:3e:00:00:01"),
                         ConsoleSpec(domid, devid=1, ioemu=False)):
                self.run(plan_device_add(spec).steps)
        if introduce:
            self.xs.introduce(domid, 1, 2)
        if unpause:
            self.hv.unpause(domid)
        return domid

    def wait(self, path: str, value: str, timeout: float = 1.5) -> None:
        assert self.xs.wait_until(value_to_become(path, value), timeout, poll=0.05), \
            f"{path} = {self.xs.try_read(path)!r}, expected {value!r}"

    def close(self) -> None:
        self.xs.close()
        self.hv.close()


def _apply(t: NodeOps, op: object) -> None:
    if isinstance(op, Write):
        t.write(op.path, op.value)
    elif isinstance(op, Mkdir):
        t.mkdir(op.path)
        if op.perms is not None:
            t.set_perms(op.path, op.perms.to_strings())
    elif isinstance(op, Rm):
        t.rm(op.path)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    host = SimHost(tmp_path / "s", memory_mib=1024).start()
    w = World(host)
    try:
        yield w
    finally:
        w.close()
        host.close()


def fe(domid: int, kind: str, devid: int) -> str:
    return f"/local/domain/{domid}/device/{kind}/{devid}"


def be(domid: int, kind: str, devid: int) -> str:
    return f"/local/domain/0/backend/{kind}/{domid}/{devid}"


def info(w: World, domid: int) -> DomainInfo:
    return w.hv.getinfo(domid)


# --- the host ----------------------------------------------------------------------------------


def test_xenstore_ls_sees_a_dom0_host(tmp_path: Path) -> None:
    with SimHost(tmp_path / "s", with_dbus=True) as host:
        env = dict(os.environ, XENSTORED_PATH=host.xenstore_path)
        out = subprocess.run(["xenstore-ls", "-f"], env=env, capture_output=True, text=True,
                             timeout=5, check=True).stdout
        assert '/local/domain/0/name = "Domain-0"' in out
        assert '/local/domain/0/domid = "0"' in out
        assert '/vm/00000000-0000-0000-0000-000000000000/name = "Domain-0"' in out
        assert "/sim/behaviour" in out
        doc = json.loads(host.info_path.read_text())
        assert doc["pid"] == os.getpid()
        assert doc["xenstored_socket"] == host.xenstore_path
        address = (tmp_path / "s" / "dbus" / "address").read_text().strip()
        assert doc["dbus_address"] == address and address.startswith("unix:path=")
        bus_pid = doc["dbus_pid"]
        with SimBackend(doc["hypervisor_socket"]) as hv:
            assert hv.getinfo(0).running
    assert not host.info_path.exists()
    assert not os.path.exists(host.xenstore_path)
    assert not Path(f"/proc/{bus_pid}").exists() or \
        Path(f"/proc/{bus_pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_a_second_host_on_the_same_directory_fails_cleanly(tmp_path: Path) -> None:
    with SimHost(tmp_path / "s") as host:
        second = SimHost(tmp_path / "s")
        with pytest.raises(OSError, match="already listens"):
            second.start()
        assert json.loads(host.info_path.read_text())["pid"] == os.getpid()
        with XenstoreClient(host.xenstore_path) as xs:  # the first one still serves
            assert xs.read("/local/domain/0/name") == "Domain-0"


def test_devices_connect_and_hotplug_reports(world: World) -> None:
    d = world.domain()
    for kind, devid in (("vbd", VBD), ("vif", 0), ("console", 1)):
        world.wait(f"{fe(d, kind, devid)}/state", "4")
        world.wait(f"{be(d, kind, devid)}/state", "4")
    assert world.xs.read(f"/xapi/{d}/hotplug/vbd/{VBD}/hotplug") == "online"
    assert world.xs.read(f"/xapi/{d}/hotplug/vif/0/hotplug") == "online"
    assert world.xs.read(f"/xapi/{d}/hotplug/vif/0/vif") == f"vif{d}.0"
    assert world.xs.read(f"{be(d, 'vif', 0)}/hotplug-status") == "connected"
    assert world.xs.read(f"{fe(d, 'vif', 0)}/tx-ring-ref")
    assert world.xs.read(f"{be(d, 'vbd', VBD)}/sectors")
    assert sorted(world.host.backends_connected()) == [
        ("console", d, 1), ("vbd", d, VBD), ("vif", d, 0)]
    world.wait(f"/sim/status/{d}/guest", "running")
    assert info(world, d).blocked


@pytest.mark.parametrize(("request_", "reason"), [
    ("poweroff", ShutdownReason.POWEROFF), ("reboot", ShutdownReason.REBOOT),
    ("suspend", ShutdownReason.SUSPEND)])
def test_shutdown_request_is_acknowledged_and_released(
        world: World, request_: str, reason: ShutdownReason) -> None:
    d = world.domain(devices=False)
    world.wait(f"/sim/status/{d}/guest", "running")
    world.xs.write(f"/local/domain/{d}/control/shutdown", request_)
    world.wait(f"/local/domain/{d}/control/shutdown", "")
    wait_until(lambda: info(world, d).shutdown, 1.5)
    assert info(world, d).shutdown_code == reason
    assert world.released.wait(1.5)
    world.wait(f"/sim/status/{d}/guest", "stopped")


def test_destroy_keeps_the_domain_dying_until_backends_close(world: World) -> None:
    d = world.domain()
    world.wait(f"{be(d, 'vbd', VBD)}/state", "4")
    world.wait(f"{be(d, 'vif', 0)}/state", "4")
    world.wait(f"{be(d, 'console', 1)}/state", "4")
    world.hv.destroy(d)
    assert info(world, d).dying and world.released.wait(1.5)
    world.released.clear()
    for kind, devid in (("vbd", VBD), ("vif", 0), ("console", 1)):  # hard unplug, as xenops
        world.xs.write(f"{be(d, kind, devid)}/online", "0")
        world.xs.rm(fe(d, kind, devid))
    assert world.xs.wait_until(key_to_disappear(f"/xapi/{d}/hotplug/vbd/{VBD}/hotplug"), 1.5,
                               poll=0.05)
    assert world.xs.wait_until(key_to_disappear(f"/xapi/{d}/hotplug/vif/0/vif"), 1.5, poll=0.05)
    wait_until(lambda: d not in [i.domid for i in world.hv.getinfolist()], 1.5)
    assert world.released.wait(1.5)
    assert not world.xs.is_domain_introduced(d)
    assert not os.path.exists(world.host.xenstored.domain_socket_path(d))


def test_clean_unplug_closes_both_ends(world: World) -> None:
    d = world.domain()
    world.wait(f"{be(d, 'vbd', VBD)}/state", "4")

    def close(t: NodeOps) -> None:
        t.write(f"{be(d, 'vbd', VBD)}/online", "0")
        t.write(f"{be(d, 'vbd', VBD)}/state", "5")

    world.xs.transaction(close)
    world.wait(f"{fe(d, 'vbd', VBD)}/state", "6")
    world.wait(f"{be(d, 'vbd', VBD)}/state", "6")
    assert world.xs.wait_until(key_to_disappear(f"/xapi/{d}/hotplug/vbd/{VBD}/hotplug"), 1.5,
                               poll=0.05)
    assert ("vbd", d, VBD) not in world.host.backends_connected()


# --- behaviours --------------------------------------------------------------------------------


def test_crash_after_a_delay_set_by_name_before_the_domain_exists(world: World) -> None:
    world.host.set_behaviour("crash", 0.1, name="crashy")
    d = world.domain("crashy", devices=False)
    wait_until(lambda: info(world, d).shutdown, 1.5)
    assert info(world, d).shutdown_code == ShutdownReason.CRASH
    assert world.released.wait(1.5)


def test_reboot_by_itself(tmp_path: Path) -> None:
    behaviour = {"name": {"rebooter": {"reboot": 0.1}}}
    with SimHost(tmp_path / "s", memory_mib=1024, behaviour=behaviour) as host:
        w = World(host)
        try:
            d = w.domain("rebooter", devices=False)
            wait_until(lambda: w.hv.getinfo(d).shutdown, 1.5)
            assert w.hv.getinfo(d).shutdown_code == ShutdownReason.REBOOT
        finally:
            w.close()


def test_hang_stops_answering_until_cleared(world: World) -> None:
    d = world.domain(devices=False)
    world.wait(f"/sim/status/{d}/guest", "running")
    world.host.set_behaviour("hang", True, domid=d)
    world.wait(f"/sim/status/{d}/guest", "hung")
    world.xs.write(f"/local/domain/{d}/control/shutdown", "poweroff")
    assert not world.xs.wait_until(value_to_become(f"/local/domain/{d}/control/shutdown", ""),
                                   0.3, poll=0.05)
    assert not info(world, d).shutdown and info(world, d).blocked  # still running
    world.host.clear_behaviour("hang", domid=d)
    world.wait(f"/local/domain/{d}/control/shutdown", "")
    wait_until(lambda: info(world, d).shutdown, 1.5)


def test_ignore_shutdown_never_acknowledges(world: World) -> None:
    world.host.set_behaviour("ignore-shutdown", True)
    d = world.domain(devices=False)
    world.wait(f"/sim/status/{d}/guest", "running")
    world.xs.write(f"/local/domain/{d}/control/shutdown", "reboot")
    assert not world.xs.wait_until(value_to_become(f"/local/domain/{d}/control/shutdown", ""),
                                   0.3, poll=0.05)
    assert not info(world, d).shutdown
    assert world.host.guest_status(d) == "running"


def test_frontend_hangs_mid_handshake(world: World) -> None:
    world.host.set_behaviour("frontend-stop", "initialised", name="stuck")
    world.host.set_behaviour("frontend-stop-vif", "initialising", name="stuck")
    d = world.domain("stuck")
    world.wait(f"{be(d, 'vbd', VBD)}/state", "4")  # blkback connects to an Initialised front
    world.wait(f"{be(d, 'vif', 0)}/state", "2")
    world.wait(f"/xapi/{d}/hotplug/vif/0/hotplug", "online")
    assert not world.xs.wait_until(value_to_become(f"{fe(d, 'vbd', VBD)}/state", "4"), 0.3,
                                   poll=0.05)
    assert world.xs.read(f"{fe(d, 'vbd', VBD)}/state") == "3"
    assert world.xs.read(f"{fe(d, 'vif', 0)}/state") == "1"
    assert world.xs.read(f"{be(d, 'vif', 0)}/state") == "2"
    assert ("vif", d, 0) not in world.host.backends_connected()


def test_backend_failure_writes_the_error_node(world: World) -> None:
    world.host.set_behaviour("backend-fail", "vbd")
    d = world.domain()
    error = f"/local/domain/{d}/error/device/vbd/{VBD}/error"
    assert world.xs.wait_until(value_to_become(error, "simulated vbd backend failure"), 1.5,
                               poll=0.05)
    world.wait(f"{fe(d, 'vbd', VBD)}/state", "6")
    world.wait(f"{be(d, 'vbd', VBD)}/state", "6")
    world.wait(f"{be(d, 'vif', 0)}/state", "4")


def test_slow_and_failing_hotplug(world: World) -> None:
    world.host.set_behaviour("hotplug-delay", 0.3)
    world.host.set_behaviour("hotplug-fail", "vif")
    began = time.monotonic()
    d = world.domain()
    world.wait(f"/xapi/{d}/hotplug/vbd/{VBD}/hotplug", "online")
    assert time.monotonic() - began >= 0.25
    world.wait(f"{be(d, 'vbd', VBD)}/state", "4")
    assert world.xs.try_read(f"/xapi/{d}/hotplug/vif/0/hotplug") is None
    assert world.xs.read(f"{be(d, 'vif', 0)}/state") == "2"


def test_pause_freezes_the_guest(world: World) -> None:
    d = world.domain(devices=False)
    world.wait(f"/sim/status/{d}/guest", "running")
    world.hv.pause(d)
    world.wait(f"/sim/status/{d}/guest", "paused")
    world.xs.write(f"/local/domain/{d}/control/shutdown", "poweroff")
    assert not world.xs.wait_until(value_to_become(f"/local/domain/{d}/control/shutdown", ""),
                                   0.2, poll=0.05)
    world.hv.unpause(d)
    world.wait(f"/local/domain/{d}/control/shutdown", "")


def test_guest_waits_for_its_introduction(world: World) -> None:
    d = world.domain(introduce=False)
    world.wait(f"/sim/status/{d}/guest", "waiting")
    assert world.xs.read(f"{fe(d, 'vbd', VBD)}/state") == "1"
    world.xs.introduce(d, 1, 2)
    world.wait(f"{fe(d, 'vbd', VBD)}/state", "4")
    world.wait(f"/sim/status/{d}/guest", "running")


# --- its own process ---------------------------------------------------------------------------

_CLIENT = """
import sys, uuid
from xen.hypervisor import DomainSpec
from xen.hypervisor import SimBackend
from xen.xenstore import XenstoreClient
hv = SimBackend(sys.argv[1] + "/hypervisor/socket")
xs = XenstoreClient(sys.argv[1] + "/xenstored/socket").connect()
d = hv.create(DomainSpec(handle=uuid.uuid4(), memory_kib=65536, max_memory_kib=65536))
xs.write(f"/local/domain/{d}/name", "orphan")
xs.introduce(d, 1, 2)
hv.unpause(d)
print(d, flush=True)
sys.stdin.read()
"""


def test_the_host_process_outlives_its_clients_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "s"
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=root)
    host = subprocess.Popen([sys.executable, "-m", "xen.sim.simhost", "--state", str(state),
                             "--foreground", "--memory-mib", "1024"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        info_path = state / "simhost.json"
        wait_until(lambda: info_path.exists(), 10.0, interval=0.02)
        assert json.loads(info_path.read_text())["pid"] == host.pid
        client = subprocess.Popen([sys.executable, "-c", _CLIENT, str(state)], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert client.stdout is not None
        domid = int(client.stdout.readline())
        client.kill()  # the toolstack side dies
        client.wait(5)
        client.stdout.close()
        assert client.stdin is not None
        client.stdin.close()
        with SimBackend(str(state / "hypervisor" / "socket")) as hv, \
                XenstoreClient(str(state / "xenstored" / "socket")) as xs:
            assert xs.wait_until(value_to_become(f"/sim/status/{domid}/guest", "running"), 2.0,
                                 poll=0.05)
            found = hv.getinfo(domid)
            assert not found.shutdown and not found.dying
            assert xs.is_domain_introduced(domid)
        host.send_signal(signal.SIGTERM)
        assert host.wait(5) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(5)
        if host.stderr is not None:
            host.stderr.close()
    assert not info_path.exists()
    assert not (state / "xenstored" / "socket").exists()
    assert not (state / "hypervisor" / "socket").exists()


def test_background_start_and_stop(tmp_path: Path) -> None:
    state = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               OXT_SIMHOST_BEHAVIOUR='{"name": {"vm1": {"hang": 1}}}')
    cli = [sys.executable, "-m", "xen.sim.simhost", "--state", str(state)]
    started = subprocess.run([*cli, "--memory-mib", "1024"], env=env, capture_output=True,
                             text=True, timeout=20)
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        with XenstoreClient(str(state / "xenstored" / "socket")) as xs:
            assert xs.read("/sim/behaviour/name/vm1/hang") == "1"
        stopped = subprocess.run([*cli, "--stop"], env=env, capture_output=True, text=True,
                                 timeout=20)
        assert stopped.returncode == 0, stopped.stderr
        assert not (state / "simhost.json").exists()
    finally:
        if (state / "simhost.json").exists():
            os.kill(pid, signal.SIGKILL)


def test_a_bad_behaviour_document_is_refused(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               OXT_SIMHOST_BEHAVIOUR='{"default": {"crash": "soon"}}')
    done = subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state",
                           str(tmp_path / "s"), "--foreground"], env=env, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 2
    assert "crash must be a number of seconds" in done.stderr
