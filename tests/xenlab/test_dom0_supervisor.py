"""``oxt-supervisor --backend xc`` runs the lab's PV guest on real Xen, driven by ``xenvm-cmd``.

The supervisor runs as its own process in the lab's dom0 (``python3 -m supervision.dom0``)
with the ``xc`` backend, dom0's oxenstored, and dom0's system bus (``bus = "system"``: a
stock ``dbus-daemon --system`` that in-dom0.sh starts with the toolstack's policy drop-in,
examples/dbus/oxt-toolstack.conf). One VM, the lab's PV guest, is declared in the configuration
(``[[vm]]``) with a file-backed disk (a loop device behind blkback) and a vif on the bridge
``xenbr0`` (netback; Xen's vif-bridge script, run by examples/hotplug/oxt-hotplug for the
kernel's uevents, as in-dom0.sh sets up). Every task goes through ``xenvm-cmd`` (``python3 -m
xen.xenvm.cmd``) over DBus:

- start (XcBackend.create + XcBuilder + the xenops plans, in the VM monitor): the guest's
  hello on its console, then its disk and net lines (tests/xenlab/guest-init.sh: the disk's
  size and first sector, which holds the test's marker; the vif's MAC, its address and a ping
  of dom0 over the bridge); both ends of both devices Connected (4) in xenstore, the hotplug
  reports under /xapi, the vif on the bridge, the loop device's numbers in the backend;
- pause / unpause (``xl list`` agrees);
- a crash of the VM monitor (control socket ``crash``): the restarted monitor adopts the
  running domain, same domid;
- oxt-supervisor SIGKILLed with the guest running, then started again: the same domain
  adopted, none duplicated (``xl list``), its devices still Connected;
- reboot (the guest's kernel restarts on control/shutdown = reboot; ``on_reboot = restart``):
  a new domain, its devices again, nothing of the old one left;
- a clean shutdown (the guest powers off on control/shutdown; ``on_poweroff = destroy``):
  what the guest wrote to its disk is in the image file;
- start again and a guest crash (control/sysrq = c; ``on_crash = restart``): applied once, one
  new domain; then destroy.

After each domain's end neither Xen nor xenstore holds anything of it (its tree, its device
backends, /xapi, /vm once the VM has no domain), its vif is gone and its loop device freed.

Prints ``SUP:`` lines. Skipped off Xen and without dbus-daemon in the dom0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervision.control import ControlError
from tests.xenlab.dom0 import GONE_TIMEOUT, domain_exists, on_xen, run, wait_for
from tests.xenlab.lab_supervisor import (
    GUEST_DIR,
    ROOT,
    LabSupervisor,
    loops_of,
    marked_disk,
    needs_dbus,
    xl_domids,
    xs_read,
)
from tests.xenlab.lab_supervisor import console_text as guest_console

pytestmark = [on_xen, needs_dbus]

VM = "00000000-0000-4000-8000-00000000b001"
NAME = "oxt-sup-guest"
HELLO_TIMEOUT = 240.0  # a bound: 8-25 s on a quiet host, 80+ s at load 8-9
TASK_TIMEOUT = 120.0
#: The guest's devices: a file-backed disk (loop device, blkback) and a vif on the bridge
#: in-dom0.sh sets up (netback; Xen's vif-bridge puts it there); the guest's init prints
#: them (tests/xenlab/guest-init.sh) and pings dom0's address on the bridge.
DISK, NIC, BRIDGE, DOM0_IP, GUEST_IP = "xvda", "eth0", "xenbr0", "10.80.0.1", "10.80.0.2"
DISK_DEVID = 51712  # xvda
DEVICES_TIMEOUT = 90.0
#: The hotplug script is a few shell processes per event: seconds on a loaded emulated host,
#: where xenops' default (10 s) was too short in a run on a loaded host.
HOTPLUG_TIMEOUT = 60


class Supervisor(LabSupervisor):
    """The supervisor under test, its one VM (the lab's PV guest with a disk and a vif)."""

    def __init__(self, state: Path) -> None:
        self.disk = state / "disk.img"
        self.marker = marked_disk(self.disk)  # 8 MiB, the marker in its first sector
        cmdline = (f"console=hvc0 rdinit=/init quiet oxt.disk={DISK} oxt.nic={NIC} "
                   f"oxt.ip={GUEST_IP}/24 oxt.ping={DOM0_IP}")
        (state / "vm.cfg").write_text(
            f"name = {NAME}\nmemory = 128\nvcpus = 1\nkernel = {GUEST_DIR / 'vmlinux'}\n"
            f"initrd = {GUEST_DIR / 'initrd.gz'}\ncmdline = {cmdline}\n"
            f"disk = {self.disk}:file:{DISK}:w:disk\nnic = id=0,network={BRIDGE}\n"
            "on_poweroff = destroy\non_reboot = restart\non_crash = restart\n")
        super().__init__(state, f"""
[persistence]
enabled = false
[xenmgr]
enabled = false
[vms]
hotplug_timeout = {HOTPLUG_TIMEOUT}
[[vm]]
uuid = "{VM}"
config = "{state / 'vm.cfg'}"
""", bus="system")

    def xenvm_cmd(self, task: str, *params: str) -> str:
        """``xenvm-cmd --bus <the tree's bus> <uuid> <task> [k=v ...]``; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "xen.xenvm.cmd", "--reply-timeout", str(TASK_TIMEOUT),
             "--bus", str(self.info["bus"]), VM, task, *params],
            capture_output=True, text=True, timeout=TASK_TIMEOUT + 10, cwd=ROOT,
            env=self.env(), check=False)
        assert done.returncode == 0, (f"xenvm-cmd {task} failed: {done.stderr.strip()}\n"
                                      f"{self.log_tail()}")
        return done.stdout.strip()


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """One supervisor for the module's tests (its start is tens of seconds under emulation);
    the first test finds the VM shut down, each test leaves it so."""
    tmp_path = tmp_path_factory.mktemp("sup")
    s = Supervisor(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        s.keep_log()
        for domid in xl_domids(NAME):  # a failed test must not leave its guest behind
            subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=60,
                           check=False)
            wait_for(lambda d=domid: not domain_exists(d), GONE_TIMEOUT, f"domain {domid} gone")
            subprocess.run(["xenstore-rm", f"/local/domain/{domid}"], capture_output=True,
                           timeout=30, check=False)
        subprocess.run(["xenstore-rm", f"/vm/{VM}"], capture_output=True, timeout=30,
                       check=False)


def xl_state(domid: int) -> str:
    return run("xl", "list", str(domid)).splitlines()[1].split()[4]


def console_text() -> str:
    return guest_console(NAME)


def hello_count() -> int:
    return len(re.findall(r"OXT-XENLAB-GUEST: PV domU up", console_text()))


def hello_since(offset: int) -> bool:
    """A hello in the console log after ``offset`` characters (the whole log if xenconsoled
    started it again, shorter, for a new domain of the same name)."""
    text = console_text()
    return "OXT-XENLAB-GUEST: PV domU up" in (text[offset:] if len(text) >= offset else text)


def device_paths(domid: int) -> dict[str, str]:
    """The frontend and backend directories of the guest's disk and vif."""
    return {"vbd backend": f"/local/domain/0/backend/vbd/{domid}/{DISK_DEVID}",
            "vif backend": f"/local/domain/0/backend/vif/{domid}/0",
            "vbd frontend": f"/local/domain/{domid}/device/vbd/{DISK_DEVID}",
            "vif frontend": f"/local/domain/{domid}/device/vif/0"}


def check_devices(sup: Supervisor, domid: int, mark: int) -> None:
    """The guest saw its disk and its vif (its console, after ``mark``), and Xen's side agrees:
    both ends Connected in xenstore, the hotplug reports, the vif on the bridge, the loop."""
    def lines() -> list[str]:
        text = console_text()
        return re.findall(r"OXT-XENLAB-GUEST: (?:disk|net) .*",
                          text[mark:] if len(text) >= mark else text)

    wait_for(lambda: len(lines()) >= 2, DEVICES_TIMEOUT,
             "the guest's disk and net lines on its console", interval=0.5)
    disk, net = lines()[:2]
    print(f"SUP: guest console: {disk}")
    print(f"SUP: guest console: {net}")
    assert f"disk {DISK} 16384 sectors, read-only 0, first sector: {sup.marker}" in disk, disk
    mac = xs_read(f"{device_paths(domid)['vif backend']}/mac")
    assert mac and f"net {NIC} mac {mac}, address {GUEST_IP}/24" in net, (mac, net)
    received = re.search(r"ping \S+: (\d+) packets received", net)
    assert received and int(received.group(1)) >= 1, f"no ping reply from dom0: {net}"
    states = {what: xs_read(f"{path}/state") for what, path in device_paths(domid).items()}
    assert set(states.values()) == {"4"}, f"not all Connected: {states}"
    vbd = device_paths(domid)["vbd backend"]
    (loop,) = loops_of(sup.disk)
    st = os.stat(loop)
    assert xs_read(f"{vbd}/physical-device") == f"{os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}"
    assert xs_read(f"/xapi/{domid}/hotplug/vbd/{DISK_DEVID}/hotplug") == "online"
    assert xs_read(f"/xapi/{domid}/hotplug/vif/0/vif") == f"vif{domid}.0"
    assert Path(f"/sys/class/net/{BRIDGE}/brif/vif{domid}.0").exists(), \
        f"vif{domid}.0 not on {BRIDGE}"
    print(f"SUP: xenstore-ls: vbd {DISK_DEVID} and vif 0 of domain {domid} Connected (4) at "
          f"both ends; {loop} ({xs_read(f'{vbd}/physical-device')}) behind the disk; "
          f"vif{domid}.0 on {BRIDGE}")


def blocked_tasks_if_stuck(domid: int, after: float) -> threading.Timer:
    """A diagnostic: if netback still has domain ``domid``'s vif ``after`` seconds from now,
    the kernel's list of blocked tasks (sysrq w) goes to dom0's console (the serial log)."""
    def dump() -> None:
        if Path(f"/sys/bus/xen-backend/devices/vif-{domid}-0").exists():
            print(f"SUP: vif-{domid}-0 still registered after {after:.0f} s: sysrq w")
            Path("/proc/sysrq-trigger").write_text("w")

    timer = threading.Timer(after, dump)
    timer.daemon = True
    timer.start()
    return timer


def running_domid(sup: Supervisor) -> int | None:
    """The VM's domid when it is running, else None (also while its monitor restarts). Asked
    on the control socket: a poll need not start a Python process per question as xenvm-cmd
    does (seconds each under emulation); the tasks themselves go through xenvm-cmd."""
    try:
        with sup.control() as ctl:
            if ctl.call("vm.task", uuid=VM, task="get-status", params={}, timeout=10,
                        wait=20) != "running":
                return None
            return int(ctl.call("vm.task", uuid=VM, task="get-domid", params={}, timeout=10,
                                wait=20))
    except (ControlError, OSError, ValueError, TypeError):
        return None


@pytest.mark.timeout(480)  # with the module's supervisor start: 20 s, 115 s on a loaded host
def test_xenvm_cmd_errors_name_what_failed(sup: Supervisor) -> None:
    with pytest.raises(AssertionError, match="not allowed in state shutdown"):
        sup.xenvm_cmd("pause")
    with pytest.raises(ControlError):
        with sup.control() as ctl:
            ctl.call("vm.task", uuid=VM, task="no-such-task", params={}, timeout=10, wait=20)
    assert sup.xenvm_cmd("get-status") == "shutdown"


@pytest.mark.timeout(1800)  # 250 s on a quiet host
def test_the_supervisor_runs_the_guest_through_its_life(sup: Supervisor) -> None:
    hellos = hello_count()
    assert sup.xenvm_cmd("get-status") == "shutdown"
    t0 = time.monotonic()
    mark = len(console_text())
    sup.xenvm_cmd("start")
    domid = int(sup.xenvm_cmd("get-domid"))
    print(f"\nSUP: xenvm-cmd start -> domain {domid} in {time.monotonic() - t0:.1f} s, "
          f"status {sup.xenvm_cmd('get-status')}, xl list state {xl_state(domid)}")
    assert sup.xenvm_cmd("get-status") == "running"
    assert xl_domids(NAME) == [domid]
    wait_for(lambda: hello_count() > hellos, HELLO_TIMEOUT, "the guest's hello on its console",
             interval=0.5)
    print(f"SUP: guest console after {time.monotonic() - t0:.1f} s: "
          f"{re.findall(r'OXT-XENLAB-GUEST: PV domU up.*', console_text())[-1]}")
    check_devices(sup, domid, mark)

    sup.xenvm_cmd("pause")
    assert sup.xenvm_cmd("get-status") == "paused" and "p" in xl_state(domid)
    sup.xenvm_cmd("unpause")
    assert sup.xenvm_cmd("get-status") == "running" and "p" not in xl_state(domid)
    print("SUP: pause -> paused (xl: p), unpause -> running")

    with sup.control() as ctl:
        seq = ctl.call("log.tail", n=1)[-1]["seq"]
        ctl.call("crash", path=f"/vms/{VM}")

    def crashed() -> bool:  # the crash is asynchronous: its event comes after the call
        with sup.control() as ctl:
            return any(e["kind"] == "crashed" and e["path"] == f"/vms/{VM}"
                       for e in ctl.call("log.tail", n=200) if e["seq"] > seq)

    wait_for(crashed, 30, "the VM monitor's crash in the supervisor's log", interval=0.2)
    wait_for(lambda: running_domid(sup) is not None, 30, "the restarted monitor answers",
             interval=0.2)
    assert int(sup.xenvm_cmd("get-domid")) == domid and xl_domids(NAME) == [domid]
    print(f"SUP: VM monitor crashed and restarted: adopted domain {domid} (still the only one)")

    t0 = time.monotonic()
    sup.kill()
    assert xl_domids(NAME) == [domid], "the guest did not outlive its toolstack"
    sup.start()
    wait_for(lambda: running_domid(sup) is not None, 60, "the new supervisor's VM running",
             interval=0.5)
    assert int(sup.xenvm_cmd("get-domid")) == domid and xl_domids(NAME) == [domid]
    states = {what: xs_read(f"{path}/state") for what, path in device_paths(domid).items()}
    assert set(states.values()) == {"4"}, f"devices after the restart: {states}"
    print(f"SUP: oxt-supervisor SIGKILLed and started again ({time.monotonic() - t0:.1f} s): "
          f"adopted domain {domid}, none duplicated (xl list), its devices still Connected")

    t0 = time.monotonic()
    mark = len(console_text())
    sup.xenvm_cmd("reboot")
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"rebooted domain {domid} gone")
    wait_for(lambda: running_domid(sup) not in (None, domid), 120,
             "the VM running again after its reboot", interval=1.0)
    assert sup.xenvm_cmd("get-status") == "running"
    old, domid = domid, int(sup.xenvm_cmd("get-domid"))
    assert domid != old and xl_domids(NAME) == [domid]
    wait_for(lambda: hello_since(mark), HELLO_TIMEOUT, "the guest's hello after reboot",
             interval=0.5)
    text = console_text()
    assert "Restarting system" in text[mark:] or len(text) < mark  # the guest's kernel did it
    print(f"SUP: xenvm-cmd reboot -> the guest's kernel restarted, on_reboot = restart: "
          f"domain {old} destroyed, domain {domid} built and booted after "
          f"{time.monotonic() - t0:.1f} s")
    check_devices(sup, domid, mark)
    assert_clean(old, sup, vm=False, loops=1)

    t0 = time.monotonic()
    watchdog = blocked_tasks_if_stuck(domid, 20.0)
    try:
        sup.xenvm_cmd("shutdown")
        wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
    finally:
        watchdog.cancel()
    assert sup.xenvm_cmd("get-status") == "shutdown"
    assert "poweroff requested" in console_text()
    print(f"SUP: xenvm-cmd shutdown -> guest powered off, domain gone, status shutdown after "
          f"{time.monotonic() - t0:.1f} s")
    assert_clean(domid, sup)
    with open(sup.disk, "rb") as f:  # what the guest wrote through blkback reached the file
        f.seek(512)
        wrote = f.read(64).split(b"\n")[0].decode(errors="replace")
    assert wrote.startswith("OXT-GUEST-WROTE"), wrote
    print(f"SUP: the guest's write to its disk is in the image file: {wrote!r}")

    mark = len(console_text())
    sup.xenvm_cmd("start")
    domid = int(sup.xenvm_cmd("get-domid"))
    wait_for(lambda: hello_since(mark), HELLO_TIMEOUT, "the guest's hello", interval=0.5)
    mark = len(console_text())
    run("xenstore-write", f"/local/domain/{domid}/control/sysrq", "c")
    wait_for(lambda: not domain_exists(domid), 60, f"crashed domain {domid} gone")
    old = domid
    wait_for(lambda: running_domid(sup) not in (None, old), 120,
             "the VM running again after its crash (on_crash = restart)", interval=1.0)
    domid = int(sup.xenvm_cmd("get-domid"))
    wait_for(lambda: hello_since(mark), HELLO_TIMEOUT, "the guest's hello after its crash",
             interval=0.5)
    # applied once: one new domain, still the same one after the guest has booted
    assert xl_domids(NAME) == [domid] and int(sup.xenvm_cmd("get-domid")) == domid
    assert len(re.findall(r"OXT-XENLAB-GUEST: PV domU up", console_text()[mark:])) <= 1
    assert_clean(old, sup, vm=False, loops=1)
    print(f"SUP: control/sysrq=c -> guest crashed, on_crash = restart applied once: domain "
          f"{old} gone, domain {domid} the only one, booted")
    sup.xenvm_cmd("destroy")
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
    assert sup.xenvm_cmd("get-status") == "shutdown" and xl_domids(NAME) == []
    assert_clean(domid, sup)
    print(f"SUP: xenvm-cmd destroy -> domain {domid} gone; xenstore holds nothing of it "
          "(domain, /vm, backends, /xapi), no loop device left")


def assert_clean(domid: int, sup: Supervisor, *, vm: bool = True, loops: int = 0) -> None:
    """Nothing of domain ``domid`` in xenstore (its tree, its device backends, its hotplug
    reports, and /vm when the VM has no domain), its vif gone; ``loops`` loop devices left on
    the disk image (the VM's next domain has one)."""
    paths = [f"/local/domain/{domid}", f"/local/domain/0/backend/vbd/{domid}",
             f"/local/domain/0/backend/vif/{domid}", f"/xapi/{domid}"]
    for path in paths + ([f"/vm/{VM}"] if vm else []):
        assert xs_read(path) is None, f"{path} left in xenstore"
    listed = subprocess.run(["xenstore-ls", "-f", "/local/domain/0/backend"],
                            capture_output=True, text=True, timeout=30, check=False).stdout
    assert not re.search(rf"^/local/domain/0/backend/\w+/{domid}/", listed, re.M), listed
    assert not Path(f"/sys/class/net/vif{domid}.0").exists()
    wait_for(lambda: len(loops_of(sup.disk)) == loops, 10,
             f"{loops} loop device(s) on the disk image")
