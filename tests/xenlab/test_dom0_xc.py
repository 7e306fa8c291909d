"""`XcBackend` on real Xen 4.17, inside the lab's dom0: each answer checked against what the
hypervisor's own tools (xl, libxl's xenstore entries, /sys/hypervisor) say, and a PV domain that
``xl create -p -e`` started walked through unpause, pause and destroy.

Each test prints one ``XC:`` line per fact it checked (the lab runs pytest with ``-s``; the
serial log shows them). Skipped off Xen (no /dev/xen/privcmd).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.xenlab.dom0 import (
    GONE_TIMEOUT,
    HVM_GUEST_CONFIG,
    Guest,
    on_xen,
    run,
    wait_for,
    xl_info,
)
from xen.hypervisor import DomainInfo, InvalidArgument, NoSuchDomain
from xen.xc import XcBackend

pytestmark = on_xen

MIB = 1024


def flags(info: DomainInfo) -> str:
    names = ("dying", "hvm", "shutdown", "paused", "blocked", "running", "hap")
    return ",".join(n for n in names if getattr(info, n)) or "-"


def describe(info: DomainInfo) -> str:
    return (f"domain {info.domid}: flags {info.flags:#x} [{flags(info)}], "
            f"{info.tot_kib // MIB} MiB of max {info.max_kib // MIB} MiB, "
            f"{info.nr_online_vcpus} vcpu(s), cpu_time {info.cpu_time / 1e9:.3f} s, "
            f"handle {info.uuid}")


def xl_list(domid: int) -> list[str]:
    """The row of ``xl list <domid>``: name, id, mem (MiB), vcpus, state, time."""
    return run("xl", "list", str(domid)).splitlines()[1].split()


def test_version_is_the_running_hypervisor(xc: XcBackend) -> None:
    version = xc.version()
    print(f"\nXC: version() = {version}")
    assert (version.major, version.minor) == (4, 17)
    sysfs = Path("/sys/hypervisor/version")
    assert version.major == int((sysfs / "major").read_text())
    assert version.minor == int((sysfs / "minor").read_text())
    assert version.extra == (sysfs / "extra").read_text().strip()
    assert xl_info()["xen_version"] == str(version)


def test_physinfo_agrees_with_xl_info(xc: XcBackend) -> None:
    info = xc.physinfo()
    xl = xl_info()
    print(f"\nXC: physinfo(): {info.nr_cpus} cpus ({info.threads_per_core} threads/core, "
          f"{info.cores_per_socket} cores/socket), {info.cpu_khz} kHz, "
          f"total {info.total_kib // MIB} MiB, free {info.free_kib // MIB} MiB, "
          f"pv={info.pv} hvm={info.hvm} hap={info.hap}, max_mfn {info.max_mfn:#x}")
    assert info.nr_cpus == int(xl["nr_cpus"])
    assert info.max_cpu_id >= info.nr_cpus - 1
    assert info.threads_per_core == int(xl["threads_per_core"])
    assert info.cores_per_socket == int(xl["cores_per_socket"])
    assert info.nr_nodes == int(xl["nr_nodes"])
    assert info.cpu_khz // 1000 == int(xl["cpu_mhz"].split(".")[0])
    assert info.total_kib // MIB == int(xl["total_memory"])
    assert abs(info.free_kib // MIB - int(xl["free_memory"])) <= 16  # dom0 may move a page
    assert info.pv and ("hvm" in xl["virt_caps"]) == info.hvm
    assert 0 < info.free_pages < info.total_pages <= info.max_mfn + 1


def test_getinfolist_lists_dom0_running(xc: XcBackend) -> None:
    infos = xc.getinfolist()
    dom0 = infos[0]
    print(f"\nXC: getinfolist() -> {len(infos)} domain(s); {describe(dom0)}")
    assert dom0.domid == 0 and [i.domid for i in infos] == sorted(i.domid for i in infos)
    assert dom0.running or dom0.blocked
    assert not (dom0.paused or dom0.dying or dom0.shutdown or dom0.hvm)
    assert dom0.uuid == uuid.UUID(int=0)
    _, _, mem, vcpus, _, _ = xl_list(0)
    assert dom0.tot_kib // MIB == int(mem)
    assert dom0.nr_online_vcpus == int(vcpus) and dom0.max_vcpu_id == dom0.nr_online_vcpus - 1
    assert dom0.cpu_time > 0
    assert xc.getinfo(0).domid == 0 and xc.getinfolist(0, 1)[0].domid == 0


def test_xl_created_domain_through_its_life(xc: XcBackend,
                                             xl_guest: Callable[..., Guest]) -> None:
    guest = xl_guest()
    info = xc.getinfo(guest.domid)
    print(f"\nXC: xl create -p -e -> {guest.name}, {describe(info)}")
    assert info.paused and not (info.running or info.blocked or info.dead or info.hvm)
    assert info.uuid == guest.uuid  # the handle libxl set is the VM UUID it wrote to /vm
    assert info.nr_online_vcpus == 1
    assert 120 * MIB <= info.max_kib and 100 * MIB <= info.tot_kib <= 140 * MIB
    assert [i.domid for i in xc.getinfolist()] == [0, guest.domid]
    assert [i.domid for i in xc.find_by_handle(guest.uuid)] == [guest.domid]

    xc.unpause(guest.domid)
    info = xc.getinfo(guest.domid)
    print(f"XC: unpause -> {describe(info)}")
    # runnable: neither running nor blocked until the scheduler puts its vcpu on a cpu
    assert not info.paused and not info.dead
    start = info.cpu_time
    wait_for(lambda: xc.getinfo(guest.domid).cpu_time > start + 10**7, 30,
             "the unpaused guest consumes cpu time")

    def on_cpu_or_blocked() -> bool:
        now = xc.getinfo(guest.domid)
        return now.running or now.blocked

    wait_for(on_cpu_or_blocked, 30, "the unpaused guest is seen running or blocked")
    info = xc.getinfo(guest.domid)
    print(f"XC: ... then {describe(info)}")
    assert xl_list(guest.domid)[4].replace("-", "") in ("r", "b", "")
    with pytest.raises(InvalidArgument):
        xc.unpause(guest.domid)  # Xen refuses an unpause of a domain not paused by us

    xc.pause(guest.domid)
    info = xc.getinfo(guest.domid)
    print(f"XC: pause -> {describe(info)}")
    assert info.paused and not (info.running or info.blocked)
    assert "p" in xl_list(guest.domid)[4]
    (listed,) = xc.getinfolist(guest.domid, 1)
    assert listed.paused and listed.domid == guest.domid

    t0 = time.monotonic()
    xc.destroy(guest.domid)
    seen: list[str] = []

    def gone() -> bool:
        try:
            seen.append(flags(xc.getinfo(guest.domid)))
        except NoSuchDomain:
            return True
        return False

    wait_for(gone, GONE_TIMEOUT, f"domain {guest.domid} gone after destroy")
    print(f"XC: destroy -> gone after {time.monotonic() - t0:.2f} s "
          f"(states seen meanwhile: {sorted(set(seen)) or 'none'})")
    assert all("dying" in s for s in seen)
    assert [i.domid for i in xc.getinfolist()] == [0]
    with pytest.raises(NoSuchDomain):
        xc.pause(guest.domid)


@pytest.mark.timeout(480)
def test_the_guest_really_runs(xc: XcBackend, xl_guest: Callable[..., Guest]) -> None:
    """The unpaused guest boots its kernel and prints on its console (xenconsoled's log)."""
    guest = xl_guest()
    xc.unpause(guest.domid)
    log = Path(f"/var/log/xen/console/guest-{guest.name}.log")
    t0 = time.monotonic()
    wait_for(lambda: log.exists() and "OXT-XENLAB-GUEST" in log.read_text(errors="replace"),
             240, f"the guest's hello in {log}", interval=0.5)  # 8-25 s quiet, 80+ s at load 10
    (hello,) = re.findall(r"OXT-XENLAB-GUEST: .*", log.read_text(errors="replace"))
    print(f"\nXC: guest {guest.domid} console after {time.monotonic() - t0:.1f} s: {hello}")
    info = xc.getinfo(guest.domid)
    assert not info.paused and not info.dead


def test_pvh_domain_is_hvm_with_hap(xc: XcBackend, xl_guest: Callable[..., Guest]) -> None:
    """A PVH guest (an HVM container, no device model) decodes as hvm + hap."""
    if not xc.physinfo().hvm:
        pytest.skip("[lab-optional] no HVM in this Xen (KVM without nested virtualisation?)")
    guest = xl_guest(HVM_GUEST_CONFIG)
    info = xc.getinfo(guest.domid)
    print(f"\nXC: xl create -p -e (type pvh) -> {describe(info)}")
    assert info.hvm and info.hap and info.paused and not info.dead
    assert info.uuid == guest.uuid
    xc.unpause(guest.domid)
    assert not xc.getinfo(guest.domid).paused
    xc.destroy(guest.domid)
    wait_for(lambda: not [i for i in xc.getinfolist(guest.domid, 1) if i.domid == guest.domid],
             GONE_TIMEOUT, f"PVH domain {guest.domid} gone after destroy")
