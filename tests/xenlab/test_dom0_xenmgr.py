"""xenmgr and dbd on real Xen: two VMs, one PV and one PVH, created and driven through ``xec``.

``oxt-supervisor --backend xc`` runs in the lab's dom0 with the whole tree: dbd (the database
under the test's state directory), xenmgr, the VM monitors, on **dom0's system bus** (a stock
``dbus-daemon --system`` started by the lab's init with our policy drop-in,
examples/dbus/oxt-toolstack.conf). Everything goes through ``xec`` / ``xec-vm``, as an
OpenXT client would:

- ``create_vm_with_template_and_json``: a PV VM and a PVH VM (``config/virt-type = pvh``:
  created as an HVM container, built as PVH by libxenguest, no device model), each with a vif
  on the bridge ``xenbr0`` (xenmgr's nic, our translation, netback, Xen's vif-bridge), the
  PVH VM also with a raw disk image (a loop device behind blkback);
- ``start`` of both: running at once (``xl list``), each guest's hello and its net line on its
  console (it pings dom0 over the bridge), the PVH guest's disk line (it read the image's
  marker and wrote to it), the vifs and the vbd Connected at both ends;
- ``pause`` / ``unpause`` of the PVH VM (``xl list`` agrees);
- the PVH VM's monitor crashed (control socket): the same domain adopted;
- ``oxt-supervisor`` SIGKILLed with both running, started again: both adopted, same domids,
  none duplicated (``xl list``), xenmgr answering with their states from the database;
- ``shutdown`` of the PV VM (the guest powers off); the PVH VM (built with its ACPI tables:
  docs/xenlab.md, findings 8 and 11) through ``reboot`` (its kernel restarts, a new domain
  boots and pings again), ``shutdown`` (it powers itself off), ``start`` again and a panic
  (``control/sysrq`` = c: xenmgr's ``on_crash = destroy`` applied once, no restart), ``start``
  and ``destroy``; after each end of a domain neither Xen nor xenstore holds anything of it.

Prints ``XM:`` lines. Skipped off Xen and without dbus-daemon in the dom0; fails when dom0's
system bus is not running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from supervision.control import ControlError
from tests.xenlab.dom0 import GONE_TIMEOUT, domain_exists, on_xen, run, wait_for
from tests.xenlab.lab_supervisor import (
    GUEST_DIR,
    ROOT,
    LabSupervisor,
    console_text,
    loops_of,
    marked_disk,
    needs_dbus,
    xl_domids,
    xs_read,
)

pytestmark = [on_xen, needs_dbus]

BRIDGE, DOM0_IP, DISK = "xenbr0", "10.80.0.1", "xvda"
HELLO = "OXT-XENLAB-GUEST: PV domU up"
HELLO_TIMEOUT = 240.0  # a bound: 8-25 s on a quiet host, 80+ s at load 8-9
NET_TIMEOUT = 240.0  # the guest loads netfront, waits for eth0, pings dom0 (<= 20 s)
CALL_TIMEOUT = 300.0
HOTPLUG_TIMEOUT = 60


@dataclass
class LabVm:
    """One of the module's VMs: its name, virt-type, guest address; its uuid once created."""

    name: str
    virt: str
    ip: str
    disk: Path | None = None  # a raw image (xenmgr's type "raw": a loop device, blkback)
    uuid: str = ""
    marker: str = ""

    def template_json(self) -> str:
        # xen_legacy_crash: a panic reports SHUTDOWN_crash at once (a PVH kernel's panic
        # would otherwise end in an emergency restart: SHUTDOWN_reboot)
        cmdline = (f"console=hvc0 rdinit=/init quiet xen_legacy_crash oxt.nic=eth0 "
                   f"oxt.ip={self.ip}/24 oxt.ping={DOM0_IP}")
        config: dict[str, object] = {
            "virt-type": self.virt, "memory": "128", "vcpus": "1",
            "kernel": str(GUEST_DIR / "vmlinux"), "initrd": str(GUEST_DIR / "initrd.gz"),
            "nic": {"0": {"network": BRIDGE}}}
        if self.disk is not None:
            self.marker = marked_disk(self.disk)
            cmdline += f" oxt.disk={DISK}"
            config["disk"] = {"0": {"path": str(self.disk), "type": "raw", "mode": "w",
                                    "device": DISK, "devtype": "disk"}}
        return json.dumps({"name": self.name, "config": {**config, "cmdline": cmdline}})

    def console(self) -> str:
        return console_text(self.name)


class Xenmgr(LabSupervisor):
    """The supervisor with dbd and xenmgr; ``xec`` and ``xec-vm`` against it."""

    def __init__(self, state: Path) -> None:
        super().__init__(state, f"""
[persistence]
root = "config"
flush_interval = 0.5
[xenmgr]
storage = "storage"
autostart = false
[vms]
hotplug_timeout = {HOTPLUG_TIMEOUT}
""", bus="system")

    def xec(self, *args: str, tool: str = "xec") -> str:
        """``xec`` (or ``xec-vm``) with ``args``; its output. A failure fails the test. Run
        from the checkout (the dom0 has no console scripts installed)."""
        module = {"xec": "_cli", "xec-vm": "_vmcli"}[tool]
        main = f"import sys; from rpc.xec.{module} import main; sys.exit(main())"
        done = subprocess.run([sys.executable, "-c", main, *args], capture_output=True, text=True,
                              timeout=CALL_TIMEOUT + 30, cwd=ROOT, env=self.env(), check=False)
        assert done.returncode == 0, (f"{tool} {' '.join(args)} failed ({done.returncode}): "
                                      f"{done.stderr.strip()}\n{self.log_tail()}")
        return done.stdout.strip()

    def vm(self, vm: LabVm, *args: str) -> str:
        return self.xec("-u", vm.uuid, *args, tool="xec-vm")

    def answers(self) -> bool:
        try:
            self.xec("list-vms")
            return True
        except AssertionError:
            return False


@pytest.fixture(scope="module")
def xm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    tmp_path = tmp_path_factory.mktemp("xm")
    s = Xenmgr(tmp_path)
    s.start()
    try:
        wait_for(s.answers, 120, "xenmgr answers over the bus", interval=1.0)
        yield s
    finally:
        s.stop()
        s.keep_log()
        for name in ("oxt-xm-pv", "oxt-xm-pvh"):  # a failed test must not leave a guest
            for domid in xl_domids(name):
                subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=60,
                               check=False)
                wait_for(lambda d=domid: not domain_exists(d), GONE_TIMEOUT,
                         f"domain {domid} gone")
                subprocess.run(["xenstore-rm", f"/local/domain/{domid}"], capture_output=True,
                               timeout=30, check=False)


def state_of(xm: Xenmgr, vm: LabVm) -> str:
    return xm.vm(vm, "get", "state")


def domid_of(xm: Xenmgr, vm: LabVm) -> int:
    return int(xm.vm(vm, "get", "domid"))


def check_net(xm: Xenmgr, vm: LabVm, domid: int, mark: int = 0) -> int:
    """The guest's hello and its net line on its console after offset ``mark`` (it pinged
    dom0 over the bridge with the vif's MAC), its vif Connected at both ends; the VM's domain
    (a guest whose kernel reset itself while booting was restarted: on_reboot = restart)."""
    try:
        wait_for(lambda: HELLO in vm.console()[mark:], HELLO_TIMEOUT, f"{vm.name}'s hello",
                 interval=0.5)
        now = domid_of(xm, vm)
        if now != domid:  # a PVH kernel's triple fault at its first boot: finding 12
            print(f"XM: WARNING: {vm.name}'s domain {domid} reset itself while booting; "
                  f"on_reboot = restart: now domain {now}")
            domid = now
        ends = (f"/local/domain/0/backend/vif/{domid}/0", f"/local/domain/{domid}/device/vif/0")
        wait_for(lambda: all(xs_read(f"{end}/state") == "4" for end in ends), NET_TIMEOUT,
                 f"{vm.name}'s vif Connected at both ends", interval=0.5)
        wait_for(lambda: "OXT-XENLAB-GUEST: net " in vm.console()[mark:], NET_TIMEOUT,
                 f"{vm.name}'s net line", interval=0.5)
        if vm.disk is not None:
            check_disk(vm, domid, mark)
    finally:
        tail = " | ".join(vm.console()[mark:].splitlines()[-4:])
        print(f"XM: {vm.name}'s console tail: {tail.encode('ascii', 'replace').decode()}")
    net = re.findall(r"OXT-XENLAB-GUEST: net .*", vm.console()[mark:])[-1]
    mac = xs_read(f"{ends[0]}/mac")
    assert mac and f"mac {mac}, address {vm.ip}/24" in net, (mac, net)
    received = re.search(r"ping \S+: (\d+) packets received", net)
    assert received and int(received.group(1)) >= 1, f"no ping reply from dom0: {net}"
    print(f"XM: {vm.name} ({vm.virt}, domain {domid}): {net}; vif Connected at both ends")
    return domid


def check_disk(vm: LabVm, domid: int, mark: int) -> None:
    """The guest read its disk's first sector (the image's marker) and wrote to it; the vbd
    Connected at both ends, one loop device behind it."""
    disk = re.findall(rf"OXT-XENLAB-GUEST: disk {DISK} .*", vm.console()[mark:])
    assert disk and f"first sector: {vm.marker}" in disk[-1], disk
    ends = (f"/local/domain/0/backend/vbd/{domid}/51712", f"/local/domain/{domid}/device/vbd/51712")
    assert [xs_read(f"{end}/state") for end in ends] == ["4", "4"]
    assert vm.disk is not None and len(loops_of(vm.disk)) == 1
    print(f"XM: {vm.name} (domain {domid}): {disk[-1]}; vbd Connected at both ends")


def booted(xm: Xenmgr, vm: LabVm, mark: int) -> int:
    """``xec-vm start``, the guest's hello after console offset ``mark``, running: its domain
    (read after the hello: finding 12 may have reset the first one)."""
    xm.vm(vm, "start")
    wait_for(lambda: HELLO in vm.console()[mark:], HELLO_TIMEOUT, f"{vm.name}'s hello",
             interval=0.5)
    wait_for(lambda: running_domid(xm, vm) is not None, 120, f"{vm.name} running",
             interval=0.5)
    return domid_of(xm, vm)


def stopped_and_clean(xm: Xenmgr, vm: LabVm, domid: int) -> None:
    """Domain ``domid`` gone, the VM stopped, nothing of the domain left (xenstore, vif, loop
    devices on the VM's disk image)."""
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
    wait_for(lambda: state_of(xm, vm) == "stopped", 60, f"{vm.name} stopped", interval=1.0)
    assert_clean(domid)
    if vm.disk is not None:
        disk = vm.disk
        wait_for(lambda: not loops_of(disk), 10, f"no loop device left on {disk}")


def running_domid(xm: Xenmgr, vm: LabVm) -> int | None:
    """The VM's domain while xenmgr says it is running; None otherwise (or between answers)."""
    try:
        return domid_of(xm, vm) if state_of(xm, vm) == "running" else None
    except AssertionError:  # xec failed: the monitor is between two domains
        return None


def assert_clean(domid: int) -> None:
    """Nothing of domain ``domid`` left in xenstore, nor its vif in dom0."""
    for path in (f"/local/domain/{domid}", f"/local/domain/0/backend/vif/{domid}",
                 f"/local/domain/0/backend/vbd/{domid}", f"/xapi/{domid}"):
        assert xs_read(path) is None, f"{path} left in xenstore"
    assert not Path(f"/sys/class/net/vif{domid}.0").exists()


@pytest.mark.timeout(2400)  # ~300 s on a quiet host
def test_xec_runs_a_pv_and_a_pvh_vm_at_once(xm: Xenmgr) -> None:
    pv = LabVm("oxt-xm-pv", "pv", "10.80.0.3")
    pvh = LabVm("oxt-xm-pvh", "pvh", "10.80.0.4", disk=xm.state / "pvh-disk.img")
    for vm in (pv, pvh):
        path = xm.xec("create-vm-with-template-and-json", "new-vm-empty", vm.template_json())
        vm.uuid = path.rsplit("/", 1)[-1].replace("_", "-")
        assert xm.vm(vm, "get", "virt-type") == vm.virt
        assert state_of(xm, vm) == "stopped"
    print(f"XM: xec created {pv.name} ({pv.uuid}, pv) and {pvh.name} ({pvh.uuid}, pvh)")

    domids, marks = {}, {}
    for vm in (pv, pvh):
        t0, marks[vm.name] = time.monotonic(), len(vm.console())  # a log of an earlier run
        xm.vm(vm, "start")
        # running (a PVH domain that reset itself in its first seconds is being restarted
        # already: finding 12; check_net follows it to its new domain)
        wait_for(lambda v=vm: running_domid(xm, v) is not None, 120, f"{vm.name} running",
                 interval=0.5)
        domids[vm.name] = domid_of(xm, vm)
        print(f"XM: xec-vm start {vm.name} -> running, domain {domids[vm.name]} after "
              f"{time.monotonic() - t0:.1f} s")
    for vm in (pv, pvh):
        domids[vm.name] = check_net(xm, vm, domids[vm.name], marks[vm.name])
    for vm in (pv, pvh):
        assert xl_domids(vm.name) == [domids[vm.name]]  # one domain each, Xen agrees
    info = run("xl", "list", str(domids[pvh.name]))
    print(f"XM: xl list: {' | '.join(info.splitlines())}")
    dom = f"/local/domain/{domids[pvh.name]}"
    assert xs_read(f"{dom}/hvmloader/bios") is None  # PVH: no firmware
    assert xs_read(f"{dom}/image/device-model-domid") is None  # and no device model

    xm.vm(pvh, "pause")
    assert state_of(xm, pvh) == "paused"
    assert "p" in run("xl", "list", str(domids[pvh.name])).splitlines()[1].split()[4]
    xm.vm(pvh, "unpause")
    assert state_of(xm, pvh) == "running"
    print(f"XM: xec-vm pause / unpause {pvh.name}: paused (xl: p), running")

    with xm.control() as ctl:
        seq = ctl.call("log.tail", n=1)[-1]["seq"]
        ctl.call("crash", path=f"/vms/{pvh.uuid}")

    def restarted() -> bool:
        try:
            with xm.control() as ctl:
                return any(e["kind"] == "restarted" and e["path"] == f"/vms/{pvh.uuid}"
                           for e in ctl.call("log.tail", n=200) if e["seq"] > seq)
        except (ControlError, OSError):
            return False

    wait_for(restarted, 60, "the PVH VM's monitor restarted", interval=0.5)
    assert state_of(xm, pvh) == "running" and domid_of(xm, pvh) == domids[pvh.name]
    assert xl_domids(pvh.name) == [domids[pvh.name]]
    print(f"XM: {pvh.name}'s monitor crashed and restarted: adopted domain "
          f"{domids[pvh.name]}")

    t0 = time.monotonic()
    xm.kill()
    for vm in (pv, pvh):
        assert xl_domids(vm.name) == [domids[vm.name]], "a guest did not outlive its toolstack"
    xm.start()
    wait_for(xm.answers, 120, "xenmgr answers after the restart", interval=1.0)
    for vm in (pv, pvh):
        wait_for(lambda v=vm: state_of(xm, v) == "running", 60, f"{vm.name} running",
                 interval=1.0)
        assert domid_of(xm, vm) == domids[vm.name]
        assert xl_domids(vm.name) == [domids[vm.name]]
        assert xs_read(f"/local/domain/0/backend/vif/{domids[vm.name]}/0/state") == "4"
    print(f"XM: oxt-supervisor SIGKILLed with both running and started again "
          f"({time.monotonic() - t0:.1f} s): both adopted (domains {domids[pv.name]}, "
          f"{domids[pvh.name]}), none duplicated (xl list), vifs still Connected")

    t0 = time.monotonic()
    xm.vm(pv, "shutdown")
    stopped_and_clean(xm, pv, domids[pv.name])
    assert "poweroff requested" in pv.console()[marks[pv.name]:]
    print(f"XM: xec-vm shutdown {pv.name}: the guest powered off, domain gone, stopped, "
          f"nothing left ({time.monotonic() - t0:.1f} s)")
    pvh_lifecycle(xm, pvh, domids[pvh.name])
    assert xl_domids(pv.name) == [] and xl_domids(pvh.name) == []


def pvh_lifecycle(xm: Xenmgr, vm: LabVm, domid: int) -> None:
    """The PVH VM's reboot, clean shutdown, start and crash, start and destroy, through
    ``xec-vm``."""
    t0, mark, old = time.monotonic(), len(vm.console()), domid
    xm.vm(vm, "reboot")
    wait_for(lambda: not domain_exists(old), GONE_TIMEOUT, f"rebooted domain {old} gone")
    wait_for(lambda: running_domid(xm, vm) not in (None, old), 120,
             f"{vm.name} running again after its reboot", interval=1.0)
    domid = check_net(xm, vm, domid_of(xm, vm), mark)
    assert xl_domids(vm.name) == [domid]
    assert_clean(old)
    print(f"XM: xec-vm reboot {vm.name}: domain {old} gone, domain {domid} booted and pinged "
          f"({time.monotonic() - t0:.1f} s)")

    t0 = time.monotonic()
    xm.vm(vm, "shutdown")
    stopped_and_clean(xm, vm, domid)
    assert "poweroff requested" in vm.console()[mark:]
    print(f"XM: xec-vm shutdown {vm.name}: the PVH guest powered itself off, domain gone, "
          f"stopped, nothing left ({time.monotonic() - t0:.1f} s)")

    t0, mark = time.monotonic(), len(vm.console())
    domid = booted(xm, vm, mark)
    run("xenstore-write", f"/local/domain/{domid}/control/sysrq", "c")
    stopped_and_clean(xm, vm, domid)
    time.sleep(5)  # on_crash = destroy: applied once, nothing restarts it
    assert state_of(xm, vm) == "stopped" and xl_domids(vm.name) == []
    assert "Kernel panic" in vm.console()[mark:]
    print(f"XM: xec-vm start {vm.name}, control/sysrq=c: the PVH guest panicked, on_crash = "
          f"destroy applied once: domain {domid} gone, stopped, nothing left "
          f"({time.monotonic() - t0:.1f} s)")

    t0 = time.monotonic()
    domid = booted(xm, vm, len(vm.console()))
    xm.vm(vm, "destroy")
    stopped_and_clean(xm, vm, domid)
    assert xl_domids(vm.name) == []
    print(f"XM: xec-vm start, destroy {vm.name}: domain {domid} gone, stopped, nothing left "
          f"({time.monotonic() - t0:.1f} s)")


@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("OXT_LAB_PVH_COMPARE") != "1",
                    reason="[lab-optional] a diagnostic (2-3 min), run with the benchmark "
                           "(XENLAB_BENCH=1 make xenlab-test)")
def test_xl_pvh_guest_with_a_vif_for_comparison(xm: Xenmgr) -> None:
    """The same PVH guest and vif started by ``xl`` (libxl's PVH build, with its ACPI tables):
    its vif must reach Connected; whether the guest's network comes up is printed, to compare
    with ours (docs/xenlab.md, finding 11: it came up with xl's build long before ours)."""
    name = "oxt-xl-pvh"
    cmdline = f"console=hvc0 rdinit=/init quiet oxt.nic=eth0 oxt.ip=10.80.0.5/24 oxt.ping={DOM0_IP}"
    run("xl", "create", "/xenlab/guest/guest-pvh.cfg", f'name="{name}"',
        f'vif=["bridge={BRIDGE}"]', f'extra="{cmdline}"', timeout=300)
    (domid,) = xl_domids(name)
    try:
        ends = (f"/local/domain/0/backend/vif/{domid}/0", f"/local/domain/{domid}/device/vif/0")
        wait_for(lambda: all(xs_read(f"{end}/state") == "4" for end in ends), NET_TIMEOUT,
                 "the xl PVH guest's vif Connected at both ends", interval=0.5)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "OXT-XENLAB-GUEST: net " not in console_text(name):
            time.sleep(0.5)
        tail = " | ".join(console_text(name).splitlines()[-4:])
        print(f"XM: xl's PVH guest with a vif (domain {domid}): vif Connected; console tail: "
              f"{tail.encode('ascii', 'replace').decode()}; xl list: "
              f"{run('xl', 'list', str(domid)).splitlines()[1]}")
    finally:
        subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=120,
                       check=False)
        wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
