"""Our own stack builds and runs a PV domain on real Xen 4.17, inside the lab's dom0: no xl.

`XcBackend.create` (xc_domain_create), the xenops plans (domain-create, build-pre,
build-post with INTRODUCE, vcpus) run by `PlanExecutor` over our `XenstoreClient`, and
`XcBuilder` (libxenguest's ``xc_dom_*``) load the lab's PV guest (the kernel and busybox
initramfs the xl tests boot). Then the guest must really run: its hello line reaches
xenconsoled's log through the console ring and event channel we handed it; ``xl list`` and
``xenstore-ls`` (Xen's own tools) see the domain as we built it; a clean shutdown request
(control/shutdown) powers it off; our destroy plan leaves nothing of it in Xen or xenstore.

Each test prints ``BUILD:`` lines (the lab runs pytest with ``-s``). Skipped off Xen.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.xenlab.dom0 import GONE_TIMEOUT, domain_exists, on_xen, run, wait_for
from xen.hypervisor import NoSuchDomain, ShutdownReason
from xen.xc import GuestImage, XcBackend
from xen.xenops import (
    BootImage,
    BuildResult,
    DomainSpec,
    Plan,
    PlanExecutor,
    XcBuilder,
    build_memory,
    domain_create_call,
    observe_domain,
    plan_build_post,
    plan_build_pre,
    plan_domain_create,
    plan_domain_destroy,
    plan_shutdown_request,
)
from xen.xenstore import XenstoreClient

pytestmark = on_xen

GUEST_DIR = Path(os.environ.get("OXT_LAB_GUEST_DIR", "/xenlab/guest"))
KERNEL, RAMDISK = str(GUEST_DIR / "vmlinux"), str(GUEST_DIR / "initrd.gz")
CMDLINE = "console=hvc0 rdinit=/init quiet"
#: A panicking Linux PV guest (6.1) waits for panic_timeout, then reboots with reason crash;
#: with ``xen_legacy_crash`` it reports SHUTDOWN_crash to Xen at once, as older kernels did.
CRASH_CMDLINE = CMDLINE + " xen_legacy_crash"
MIB = 1024
#: Seconds for the guest's kernel to boot to its hello line under TCG (xl's guest: ~10-25 s).
HELLO_TIMEOUT = 240.0  # a bound: 8-25 s on a quiet host, 80+ s at load 8-9

_names = itertools.count(1)


@dataclass
class Built:
    """A domain our stack built: its domid, name, VM UUID and what the builder returned."""

    domid: int
    name: str
    uuid: str
    store_mfn: int = 0
    store_port: int = 0
    console_mfn: int = 0
    console_port: int = 0

    @property
    def console_log(self) -> Path:
        return Path(f"/var/log/xen/console/guest-{self.name}.log")


@pytest.fixture
def stack() -> Iterator[tuple[XcBackend, XenstoreClient, PlanExecutor, list[Built]]]:
    xc = XcBackend()
    xs = XenstoreClient(timeout=10.0).connect()
    ex = PlanExecutor(xc, xs)
    built: list[Built] = []
    try:
        yield xc, xs, ex, built
    finally:
        for b in built:  # a failed test must not leave its domain to the next one
            if domain_exists(b.domid):
                subprocess.run(["xl", "destroy", str(b.domid)], capture_output=True,
                               timeout=60, check=False)
            wait_for(lambda b=b: not domain_exists(b.domid), GONE_TIMEOUT,
                     f"domain {b.domid} gone after the test")
            for path in (f"/local/domain/{b.domid}", f"/vm/{b.uuid}", f"/vss/{b.uuid}"):
                subprocess.run(["xenstore-rm", path], capture_output=True, timeout=30,
                               check=False)
        xs.close()
        xc.close()


def build_guest(xc: XcBackend, ex: PlanExecutor, built: list[Built],
                memory_mib: int = 128, cmdline: str = CMDLINE) -> Built:
    """Create and build the lab's PV guest as a VM monitor does (xenvm's DomainActions.build):
    create, the domain's xenstore tree, build-pre, the builder, build-post, vcpus."""
    vm = str(uuid.uuid4())
    name = f"oxt-build-{os.getpid()}-{next(_names)}"
    memory = build_memory(hvm=False, vcpus=1, static_max_kib=memory_mib * MIB,
                          target_kib=memory_mib * MIB)
    spec = DomainSpec(uuid=vm, name=name)
    t0 = time.monotonic()
    domid = ex.run(Plan("domain-create", (domain_create_call(
        spec, vcpus=1, memory_kib=memory.target_kib, max_memory_kib=memory.xen_max_kib),))).domid
    assert domid is not None
    b = Built(domid, name, vm)
    built.append(b)
    ex.run(plan_domain_create(spec, domid))
    ex.run(plan_build_pre(domid, memory))
    builder = XcBuilder()
    try:
        rings = builder.build(domid, BootImage(KERNEL, RAMDISK, cmdline), memory)
    finally:
        builder.close()
    ex.run(plan_build_post(domid, vm, memory, rings))  # the vcpus marked online too
    b.store_mfn, b.store_port = rings.store_mfn, rings.store_port
    b.console_mfn, b.console_port = rings.console_mfn, rings.console_port
    print(f"\nBUILD: domain {domid} ({name}) created and built in {time.monotonic() - t0:.2f} s:"
          f" store mfn {rings.store_mfn:#x} port {rings.store_port}, console mfn "
          f"{rings.console_mfn:#x} port {rings.console_port}")
    return b


def for_serial(text: str) -> str:
    """A guest's console text made safe to print on dom0's console: lab.sh ends the run 15 s
    after it sees a kernel panic there, and a guest's panic is not dom0's."""
    return text.replace("Kernel panic - not syncing", "guest kernel panic (not syncing)")


def xl_row(domid: int) -> list[str]:
    """``xl list <domid>``: name, id, mem (MiB), vcpus, state, time."""
    return run("xl", "list", str(domid)).splitlines()[1].split()


def wait_hello(b: Built) -> str:
    log = b.console_log
    wait_for(lambda: log.exists() and "OXT-XENLAB-GUEST: PV domU up" in log.read_text(
        errors="replace"), HELLO_TIMEOUT, f"the guest's hello in {log}", interval=0.5)
    (hello,) = re.findall(r"OXT-XENLAB-GUEST: PV domU up.*", log.read_text(errors="replace"))
    return hello


def destroy_and_check_clean(xc: XcBackend, xs: XenstoreClient, ex: PlanExecutor,
                            b: Built) -> None:
    t0 = time.monotonic()
    result = ex.run(plan_domain_destroy(observe_domain(xs, b.domid, hvm=False)))
    assert result.ok, result.failures
    with pytest.raises(NoSuchDomain):
        xc.getinfo(b.domid)
    assert not domain_exists(b.domid)
    for path in (f"/local/domain/{b.domid}", f"/vm/{b.uuid}", f"/vss/{b.uuid}"):
        assert subprocess.run(["xenstore-read", path], capture_output=True,
                              timeout=30).returncode != 0, f"{path} left in xenstore"
    assert str(b.domid) not in run("xenstore-ls", "/local/domain").split()
    print(f"BUILD: destroy plan -> domain {b.domid} gone, nothing of it in xenstore, after "
          f"{time.monotonic() - t0:.2f} s")


@pytest.mark.timeout(480)
def test_our_stack_builds_a_pv_guest_that_boots(stack: tuple[XcBackend, XenstoreClient,
                                                              PlanExecutor, list[Built]]) -> None:
    xc, xs, ex, built = stack
    b = build_guest(xc, ex, built)
    info = xc.getinfo(b.domid)
    assert info.paused and not (info.hvm or info.dying or info.shutdown)
    assert info.uuid == uuid.UUID(b.uuid)
    assert info.max_vcpu_id == 0
    # the builder populated what build-pre allowed: 128 MiB, maxmem a little above
    assert 127 * MIB <= info.tot_kib <= 129 * MIB and info.max_kib >= info.tot_kib
    name, domid, mem, vcpus, state, _ = xl_row(b.domid)
    print(f"BUILD: xl list -> {name} id {domid} mem {mem} MiB vcpus {vcpus} state {state}")
    assert (name, int(domid), int(vcpus)) == (b.name, b.domid, 1) and "p" in state
    assert abs(int(mem) - 128) <= 1
    dom = f"/local/domain/{b.domid}"
    assert xs.read(f"{dom}/console/ring-ref") == str(b.console_mfn)
    assert xs.read(f"{dom}/console/port") == str(b.console_port)
    assert xs.read(f"{dom}/console/type") == "xenconsoled"
    assert xs.read(f"{dom}/store/ring-ref") == str(b.store_mfn)
    assert xs.read(f"{dom}/store/port") == str(b.store_port)
    assert xs.is_domain_introduced(b.domid)
    assert xs.get_domain_path(b.domid) == dom
    listed = run("xenstore-ls", dom)
    assert re.search(rf'^name = "{b.name}"', listed, re.M), listed

    t0 = time.monotonic()
    xc.unpause(b.domid)
    hello = wait_hello(b)
    print(f"BUILD: unpaused; guest console (xenconsoled's log) after "
          f"{time.monotonic() - t0:.1f} s: {hello}")
    info = xc.getinfo(b.domid)
    assert not (info.paused or info.dying or info.shutdown) and info.cpu_time > 0
    # the guest's xenbus came up on the store ring we handed it: it wrote under its domain
    wait_for(lambda: xs.try_read(f"{dom}/control/feature-poweroff") is not None
             or xs.try_read(f"{dom}/data") is not None, 30,
             "the guest's kernel writes its control features")
    print(f"BUILD: guest control features: {run('xenstore-ls', f'{dom}/control').strip()!r}")

    t0 = time.monotonic()
    ex.run(plan_shutdown_request(b.domid, ShutdownReason.POWEROFF, hvm=False))
    wait_for(lambda: xc.getinfo(b.domid).shutdown, 60, "the guest powers off on request")
    info = xc.getinfo(b.domid)
    print(f"BUILD: control/shutdown=poweroff acknowledged; domain shut down "
          f"({info.shutdown_reason!r}) after {time.monotonic() - t0:.1f} s")
    assert info.shutdown_reason is ShutdownReason.POWEROFF
    destroy_and_check_clean(xc, xs, ex, b)


@pytest.mark.timeout(480)
def test_a_built_guest_crashes_on_request_and_is_destroyed(
        stack: tuple[XcBackend, XenstoreClient, PlanExecutor, list[Built]]) -> None:
    """control/sysrq = "c": the guest's kernel panics, Xen records a crash."""
    xc, xs, ex, built = stack
    b = build_guest(xc, ex, built, memory_mib=96, cmdline=CRASH_CMDLINE)
    xc.unpause(b.domid)
    wait_hello(b)
    xs.write(f"/local/domain/{b.domid}/control/sysrq", "c")
    try:
        wait_for(lambda: xc.getinfo(b.domid).shutdown, 60, "the guest crashes on sysrq c")
    finally:
        panic = [line for line in b.console_log.read_text(errors="replace").splitlines()
                 if "sysrq" in line.lower() or "Kernel panic" in line]
        print("BUILD: guest console: " + for_serial(" | ".join(panic[:2] or ["(no sysrq line)"])))
    info = xc.getinfo(b.domid)
    print(f"BUILD: control/sysrq=c -> domain {b.domid} shut down ({info.shutdown_reason!r})")
    assert info.shutdown_reason is ShutdownReason.CRASH
    destroy_and_check_clean(xc, xs, ex, b)


@pytest.mark.timeout(480)
def test_our_stack_builds_a_pvh_guest_that_boots(
        stack: tuple[XcBackend, XenstoreClient, PlanExecutor, list[Built]]) -> None:
    """The same kernel as a PVH guest: created HVM (local APIC only, HAP), HAP pool from
    build-pre, `XcBackend.build_guest(pvh=True)` (HVM container, memory map, ACPI tables),
    event channels in the HVM params; it boots with its ACPI tables (a local APIC per vcpu:
    the Xen timer), talks to xenstore, powers itself off on request."""
    xc, xs, ex, built = stack
    if not xc.physinfo().hvm:
        pytest.skip("[lab-optional] no HVM in this Xen (KVM without nested virtualisation?)")
    vm, name = str(uuid.uuid4()), f"oxt-build-pvh-{os.getpid()}-{next(_names)}"
    memory = build_memory(hvm=True, vcpus=1, static_max_kib=128 * MIB, target_kib=128 * MIB)
    spec = DomainSpec(uuid=vm, name=name, hvm=True)
    t0 = time.monotonic()
    domid = ex.run(Plan("domain-create", (domain_create_call(
        spec, vcpus=1, memory_kib=memory.target_kib, max_memory_kib=memory.xen_max_kib),))).domid
    assert domid is not None
    b = Built(domid, name, vm)
    built.append(b)
    ex.run(plan_domain_create(spec, domid))
    ex.run(plan_build_pre(domid, memory))
    # not quiet: the boot log shows the ACPI tables the kernel found
    rings = xc.build_guest(domid, GuestImage(KERNEL, RAMDISK, "console=hvc0 rdinit=/init",
                                             memory.build_start_mib, 1, pvh=True))
    ex.run(plan_build_post(domid, vm, memory, BuildResult(
        rings.store_mfn, rings.store_port, rings.console_mfn, rings.console_port)))
    info = xc.getinfo(domid)
    print(f"\nBUILD: PVH domain {domid} ({name}) created and built in "
          f"{time.monotonic() - t0:.2f} s: store gfn {rings.store_mfn:#x} port "
          f"{rings.store_port}, console gfn {rings.console_mfn:#x} port {rings.console_port}; "
          f"flags hvm={info.hvm} hap={info.hap}, {info.tot_kib // MIB} MiB")
    assert info.hvm and info.hap and info.paused
    assert 127 * MIB <= info.tot_kib <= 130 * MIB
    t0 = time.monotonic()
    xc.unpause(domid)
    try:
        hello = wait_hello(b)
    finally:
        text = b.console_log.read_text(errors="replace") if b.console_log.exists() else ""
        print("BUILD: PVH console tail: " + for_serial(" | ".join(text.splitlines()[-4:])))
    print(f"BUILD: PVH guest console after {time.monotonic() - t0:.1f} s: {hello}")
    dom = f"/local/domain/{domid}"
    wait_for(lambda: xs.try_read(f"{dom}/control/feature-poweroff") is not None, 30,
             "the PVH guest's kernel writes its control features")
    # the guest's PV drivers take the request: the kernel acknowledges (clears the node)
    ex.run(plan_shutdown_request(domid, ShutdownReason.POWEROFF, hvm=False))
    # the kernel takes the request and runs the init's poweroff helper, which says so
    wait_for(lambda: xc.getinfo(domid).shutdown or "poweroff requested" in
             b.console_log.read_text(errors="replace"), 60,
             "the PVH guest acknowledges the request (its poweroff helper runs)", interval=0.5)
    # it halts its vcpu; Xen then shuts the domain down (all vcpus down: poweroff)
    wait_for(lambda: xc.getinfo(domid).shutdown, 60, "the PVH guest powers itself off")
    text = b.console_log.read_text(errors="replace")
    for line in ("ACPI: RSDP", "ACPI: APIC", "installing Xen timer for CPU 0"):
        assert line in text, f"{line!r} not in the PVH guest's boot log"
    info = xc.getinfo(domid)
    assert info.shutdown and info.shutdown_reason is ShutdownReason.POWEROFF
    print("BUILD: PVH guest found its ACPI tables (RSDP, MADT: the Xen timer installed), "
          "acknowledged control/shutdown = poweroff and powered itself off")
    destroy_and_check_clean(xc, xs, ex, b)
