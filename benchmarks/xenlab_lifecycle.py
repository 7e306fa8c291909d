"""Benchmark, on real Xen (the lab's dom0): our stack against ``xl`` with the same PV guest.

Two guests, each started by both toolstacks in the same boot (the lab's PV kernel and
initramfs, 128 MiB, 1 vcpu):

* ``bare``: no devices but the console;
* ``devices``: the supervisor test's VM, a file-backed disk (a loop device behind blkback)
  and a vif on the bridge ``xenbr0`` (netback).

Rows: start -> running, ours (``oxt-supervisor --backend xc``: the control socket's ``vm.task
start``: VM monitor, XcBackend.create, XcBuilder, the xenops plans, the devices' hotplug)
against ``xl create`` of an equivalent xl config; and shutdown -> gone, ours (``vm.task
shutdown``: the guest powers off on control/shutdown, on_poweroff = destroy) against ``xl
shutdown -w`` (xl's daemon destroys it), each until Xen has no domain. Target: ours <= 1.2x
xl. Medians of ``--rounds`` starts (ours and xl alternate which goes first) after an untimed
warm-up of each side (a long-running supervisor has loaded libxenctrl and libxenguest through
cffi already); one shutdown each, of the last round's guests once they have booted.

Equally fast hotplug on both sides: Xen's vif-bridge takes 12-26 s a plug under the lab's
emulation, and libxl kills a hotplug script at a fixed 10 s (its ``block add`` with losetup
was killed so), so both sides run the same small scripts of benchmarks/xenlab_hotplug/:
``vif`` (the interface joins the bridge, hotplug-status) for the xl twin's vif (``script=``)
and for ours (tests/xenlab/in-dom0.sh restarts the uevent runner with
``OXT_VIF_SCRIPT`` set to it before the benchmark); the xl twin's disk is a loop device the
timed part attaches (``losetup``, as our VM monitor attaches its own) with ``block`` writing
only what libxl and blkback wait for, as examples/hotplug/oxt-hotplug only reports ours.
Absolute times under QEMU's software emulation mean little; the ratios do.

Run inside the lab's dom0 (tests/xenlab/in-dom0.sh runs it after the tests when
``XENLAB_BENCH=1``; ``XENLAB_BENCH_ARGS`` adds arguments): ``python3
benchmarks/xenlab_lifecycle.py [--rounds N] [--pairs bare,devices]``. Elsewhere it
says it is skipped and exits 0. Exits non-zero only when it could not run; its lines start with
``OXT-XENLAB-BENCH:``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervision.control import ControlClient
from tests.xenlab.dom0 import HAVE_XEN, run, wait_for
from tests.xenlab.test_dom0_supervisor import (
    BRIDGE,
    DISK,
    DOM0_IP,
    GUEST_DIR,
    NAME,
    NIC,
    VM,
    Supervisor,
    xl_domids,
)
from xen.hypervisor import NoSuchDomain
from xen.xc import XcBackend

TARGET = 1.2
SCRIPTS = Path(__file__).resolve().parent / "xenlab_hotplug"
XL_GUEST_IP = "10.80.0.3"  # the supervisor's guest has 10.80.0.2: both run at the end
BARE_VM, BARE_NAME = "00000000-0000-4000-8000-00000000b002", "oxt-bench-bare"
BASE_CMDLINE = "console=hvc0 rdinit=/init quiet"
TASK_TIMEOUT = 120.0


def say(text: str) -> None:
    print(f"OXT-XENLAB-BENCH: {text}", flush=True)


@dataclass
class Pair:
    """One guest as both toolstacks start it: our VM (uuid, name) and the xl twin's config."""

    label: str
    vm: str
    name: str
    xl_name: str
    xl_cfg: Path
    xl_disk: Path | None = None  # the twin's image: a loop device is attached per start


def pair_of(tmp: Path, vm: str, name: str, devices: bool) -> Pair:
    """Our VM ``vm`` (named ``name``) and its xl twin: same kernel, ramdisk, memory, vcpus and
    (``devices``) a disk and a vif through the scripts of benchmarks/xenlab_hotplug/ (``LOOP``
    in its config is the loop device the timed part attaches)."""
    xl_name = f"{name}-xl"
    extra = BASE_CMDLINE
    lines = [f'name = "{xl_name}"', 'type = "pv"', f'kernel = "{GUEST_DIR / "vmlinux"}"',
             f'ramdisk = "{GUEST_DIR / "initrd.gz"}"', "memory = 128", "vcpus = 1",
             'on_poweroff = "destroy"', 'on_reboot = "restart"', 'on_crash = "restart"']
    image = None
    if devices:
        extra += (f" oxt.disk={DISK} oxt.nic={NIC} oxt.ip={XL_GUEST_IP}/24 "
                  f"oxt.ping={DOM0_IP}")
        image = tmp / f"{xl_name}.img"
        with open(image, "wb") as f:
            f.write(f"OXT-LAB-DISK {xl_name}\n".encode())
            f.truncate(8 << 20)
        # target= last: xl's disk syntax lets it hold commas
        lines += [f'disk = [ "format=raw, vdev={DISK}, access=rw, '
                  f'script={SCRIPTS / "block"}, target=LOOP" ]',
                  f'vif = [ "bridge={BRIDGE}, script={SCRIPTS / "vif"}" ]']
    lines.append(f'extra = "{extra}"')
    cfg = tmp / f"{xl_name}.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return Pair("devices" if devices else "bare", vm, name, xl_name, cfg, image)


def bare_vm(sup: Supervisor, tmp: Path) -> None:
    """A second VM in the supervisor's configuration: the lab's PV guest with no devices."""
    cfg = tmp / "bare-vm.cfg"
    cfg.write_text(f"name = {BARE_NAME}\nmemory = 128\nvcpus = 1\n"
                   f"kernel = {GUEST_DIR / 'vmlinux'}\ninitrd = {GUEST_DIR / 'initrd.gz'}\n"
                   f"cmdline = {BASE_CMDLINE}\n"
                   "on_poweroff = destroy\non_reboot = restart\non_crash = restart\n")
    with open(sup.config, "a") as f:
        f.write(f'[[vm]]\nuuid = "{BARE_VM}"\nconfig = "{cfg}"\n')


def xl_domid(name: str) -> int | None:
    done = subprocess.run(["xl", "domid", name], capture_output=True, text=True, timeout=30,
                          check=False)
    return int(done.stdout) if done.returncode == 0 else None


def gone(xc: XcBackend, domid: int) -> Callable[[], bool]:
    """Whether Xen has no domain ``domid`` any more (dying counts as there)."""

    def check() -> bool:
        try:
            xc.getinfo(domid)
        except NoSuchDomain:
            return True
        return False

    return check


def said_hello(name: str) -> Callable[[], bool]:
    log = Path(f"/var/log/xen/console/guest-{name}.log")
    start = log.stat().st_size if log.exists() else 0

    def check() -> bool:
        text = log.read_text(errors="replace") if log.exists() else ""
        return "OXT-XENLAB-GUEST: PV domU up" in (text[start:] if len(text) >= start else text)

    return check


def timed(action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def ratio_line(what: str, ours: list[float], xl: list[float]) -> str:
    o, x = statistics.median(ours), statistics.median(xl)
    verdict = "meets" if o <= TARGET * x else "MISSES"
    return (f"{what}: ours {o:.2f} s (median of {len(ours)}: "
            f"{', '.join(f'{v:.2f}' for v in ours)}), xl {x:.2f} s (median of {len(xl)}: "
            f"{', '.join(f'{v:.2f}' for v in xl)}); ratio {o / x:.2f}x, target <= {TARGET}x: "
            f"{verdict}")


class Sides:
    """Both toolstacks' start, destroy and shutdown of one `Pair`."""

    def __init__(self, xc: XcBackend, ctl: ControlClient, pair: Pair) -> None:
        self.xc, self.ctl, self.pair = xc, ctl, pair
        self.loop: str | None = None

    def task(self, name: str) -> str:
        return str(self.ctl.call("vm.task", uuid=self.pair.vm, task=name, params={},
                                 timeout=TASK_TIMEOUT, wait=TASK_TIMEOUT + 30))

    def our_domid(self) -> int:
        return int(self.task("get-domid"))

    def ours_start(self) -> None:
        self.task("start")

    def xl_start(self) -> None:
        cfg = self.pair.xl_cfg
        if self.pair.xl_disk is not None:  # attached in the timed part, as ours does its own
            self.loop = run("losetup", "--find", "--show", str(self.pair.xl_disk)).strip()
            cfg = cfg.with_suffix(".run.cfg")
            cfg.write_text(self.pair.xl_cfg.read_text().replace("target=LOOP",
                                                                f"target={self.loop}"))
        run("xl", "create", str(cfg), timeout=TASK_TIMEOUT)

    def destroy_both(self) -> None:
        domid, xid = self.our_domid(), xl_domid(self.pair.xl_name)
        self.task("destroy")
        if xid is not None:
            run("xl", "destroy", self.pair.xl_name, timeout=60)
        for d in (domid, xid):
            if d is not None:
                wait_for(gone(self.xc, d), 60, f"domain {d} gone")
        self.detach()

    def detach(self) -> None:
        if self.loop is not None:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True, timeout=30,
                           check=False)
            self.loop = None

    def rounds(self, rounds: int) -> list[str]:
        """Warm-up, ``rounds`` timed starts of each side, then one timed shutdown each."""
        p = self.pair
        self.ours_start()
        self.xl_start()
        self.destroy_both()
        ours: list[float] = []
        xl: list[float] = []
        for i in range(rounds):
            hellos = said_hello(p.name), said_hello(p.xl_name)
            if i % 2:
                xl.append(timed(self.xl_start))
                ours.append(timed(self.ours_start))
            else:
                ours.append(timed(self.ours_start))
                xl.append(timed(self.xl_start))
            if i < rounds - 1:
                self.destroy_both()
        wait_for(hellos[0], 120, f"our {p.label} guest's hello", interval=0.5)
        wait_for(hellos[1], 120, f"the xl {p.label} guest's hello", interval=0.5)
        domid, xid = self.our_domid(), xl_domid(p.xl_name)
        assert xid is not None, f"the xl {p.label} guest is not running"

        def ours_down() -> None:
            self.task("shutdown")
            wait_for(gone(self.xc, domid), 60, f"domain {domid} gone", interval=0.02)

        def xl_down() -> None:
            run("xl", "shutdown", "-w", p.xl_name, timeout=TASK_TIMEOUT)
            wait_for(gone(self.xc, xid), 60, f"domain {xid} gone", interval=0.02)

        down_ours, down_xl = timed(ours_down), timed(xl_down)
        self.detach()
        return [ratio_line(f"{p.label}: start -> running", ours, xl),
                ratio_line(f"{p.label}: shutdown -> gone", [down_ours], [down_xl])]


def cleanup() -> None:
    """Destroy what a failed run left: every guest of ours and of xl, the VMs' /vm trees."""
    for name in (NAME, BARE_NAME, f"{NAME}-xl", f"{BARE_NAME}-xl"):
        for domid in xl_domids(name):
            subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=60,
                           check=False)
    for vm in (VM, BARE_VM):
        subprocess.run(["xenstore-rm", f"/vm/{vm}"], capture_output=True, timeout=30,
                       check=False)


def bench(xc: XcBackend, sup: Supervisor, tmp: Path, rounds: int,
          pairs: list[str]) -> list[str]:
    lines: list[str] = []
    chosen = [(vm, name, devices) for vm, name, devices, label in (
        (BARE_VM, BARE_NAME, False, "bare"), (VM, NAME, True, "devices")) if label in pairs]
    with sup.control() as ctl:
        for vm, name, devices in chosen:
            sides = Sides(xc, ctl, pair_of(tmp, vm, name, devices))
            try:
                lines += sides.rounds(rounds)
            finally:
                cleanup()
                sides.detach()
            for line in lines[-2:]:
                say(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", default="bare,devices",
                        help="which guests, comma-separated: bare, devices")
    args = parser.parse_args()
    pairs = [p for p in args.pairs.split(",") if p]
    if not pairs or set(pairs) - {"bare", "devices"}:
        parser.error(f"--pairs: bare and/or devices, got {args.pairs!r}")
    if not HAVE_XEN:
        print("xenlab_lifecycle: skipped: not a Xen dom0 (no /dev/xen/privcmd); "
              "`XENLAB_BENCH=1 make xenlab-test` runs it inside the lab")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oxt-bench-") as tmp:
        sup = Supervisor(Path(tmp))
        bare_vm(sup, Path(tmp))
        xc = XcBackend()
        try:
            sup.start()
            bench(xc, sup, Path(tmp), max(1, args.rounds), pairs)
        except Exception as exc:  # reported, then a failure to run
            say(f"failed to run: {type(exc).__name__}: {exc}")
            return 1
        finally:
            sup.stop()
            cleanup()
            xc.close()
    say(f"(took {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
