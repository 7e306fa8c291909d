"""Benchmark, on real Xen (the lab's dom0): our stack against ``xl`` with the same PV guest.

* start -> running: ``oxt-supervisor --backend xc`` starting the supervisor test's VM (the
  lab's PV kernel and initramfs, 128 MiB, 1 vcpu, a file-backed disk through blkback and a vif
  on the bridge ``xenbr0``) through the control socket's ``vm.task start`` (the VM monitor:
  XcBackend.create, XcBuilder, the xenops plans, the devices' hotplug), against ``xl create``
  of an equivalent xl config (same kernel, ramdisk, memory, vcpus; its disk and vif through
  libxl and the same Xen scripts), in the same boot. Target: ours <= 1.2x xl.
* shutdown -> gone: ``vm.task shutdown`` (the guest powers off on control/shutdown,
  on_poweroff = destroy) until Xen has no domain, against ``xl shutdown -w`` of the xl guest
  (its xl daemon destroys it) until Xen has no domain. Same target.

Each start round is followed by a destroy (not timed); the last round's two guests boot, and
each is shut down once it has said hello. A warm-up start and destroy come first, untimed: a
long-running supervisor has loaded libxenctrl and libxenguest through cffi already (about 5 s
under the lab's emulation). Absolute times under QEMU's software emulation mean little; the
ratios do.

Run inside the lab's dom0 (tests/xenlab/in-dom0.sh runs it after the tests): ``python3
benchmarks/xenlab_lifecycle.py [--rounds N]``. Elsewhere it says it is skipped and exits 0.
Exits non-zero only when it could not run; lines start with ``OXT-XENLAB-BENCH:``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

XL_NAME = "oxt-bench-xl"
TARGET = 1.2
XL_GUEST_IP = "10.80.0.3"  # the supervisor's guest has 10.80.0.2: both run at the end


def say(text: str) -> None:
    print(f"OXT-XENLAB-BENCH: {text}", flush=True)


def xl_config(tmp: Path) -> tuple[Path, str]:
    """The xl twin of the supervisor test's VM (its own disk image and address) and the loop
    device its disk is on. The loop device is attached here, as our stack attaches its own
    (Dom0HostActions.attach_file), so xl's ``block`` script takes its phy: path: given the
    image file itself it runs losetup under its lock, which took longer than libxl's fixed 10 s
    hotplug timeout in the lab (xl create failed)."""
    image = tmp / "xl-disk.img"
    with open(image, "wb") as f:
        f.write(b"OXT-LAB-DISK xl\n")
        f.truncate(8 << 20)
    loop = run("losetup", "--find", "--show", str(image)).strip()
    cfg = tmp / "xl.cfg"
    cfg.write_text(
        f'name = "{XL_NAME}"\ntype = "pv"\nkernel = "{GUEST_DIR / "vmlinuz"}"\n'
        f'ramdisk = "{GUEST_DIR / "initrd.gz"}"\n'
        f'extra = "console=hvc0 rdinit=/init quiet oxt.disk={DISK} oxt.nic={NIC} '
        f'oxt.ip={XL_GUEST_IP}/24 oxt.ping={DOM0_IP}"\n'
        "memory = 128\nvcpus = 1\n"
        f'disk = [ "format=raw, vdev={DISK}, access=rw, target={loop}" ]\n'
        f'vif = [ "bridge={BRIDGE}" ]\n'
        'on_poweroff = "destroy"\non_reboot = "restart"\non_crash = "restart"\n')
    return cfg, loop


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


def bench(xc: XcBackend, sup: Supervisor, tmp: Path, rounds: int) -> list[str]:
    cfg, loop = xl_config(tmp)
    try:
        return _bench(xc, sup, cfg, rounds)
    finally:
        cleanup()
        subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=30, check=False)


def _bench(xc: XcBackend, sup: Supervisor, cfg: Path, rounds: int) -> list[str]:
    ctl = sup.control()

    def task(name: str) -> str:
        return str(ctl.call("vm.task", uuid=VM, task=name, params={}, timeout=120.0,
                            wait=150.0))

    def our_domid() -> int:
        return int(task("get-domid"))

    task("start")  # warm-up: the monitor's first build loads libxenctrl/libxenguest (cffi)
    domid = our_domid()
    task("destroy")
    wait_for(gone(xc, domid), 30, f"warm-up domain {domid} gone")
    ours: list[float] = []
    xl: list[float] = []
    for i in range(rounds):
        last = i == rounds - 1
        ours_hello, xl_hello = said_hello(NAME), said_hello(XL_NAME)
        ours.append(timed(lambda: task("start")))
        xl.append(timed(lambda: run("xl", "create", str(cfg), timeout=120)))
        if not last:
            domid, xid = our_domid(), xl_domid(XL_NAME)
            task("destroy")
            run("xl", "destroy", XL_NAME)
            for d in (domid, xid):
                if d is not None:
                    wait_for(gone(xc, d), 30, f"domain {d} gone")
    wait_for(ours_hello, 120, "our guest's hello", interval=0.5)
    wait_for(xl_hello, 120, "the xl guest's hello", interval=0.5)
    domid, xid = our_domid(), xl_domid(XL_NAME)
    assert xid is not None, "the xl guest is not running"

    def ours_down() -> None:
        task("shutdown")
        wait_for(gone(xc, domid), 60, f"domain {domid} gone", interval=0.02)

    def xl_down() -> None:
        run("xl", "shutdown", "-w", XL_NAME, timeout=120)
        wait_for(gone(xc, xid), 60, f"domain {xid} gone", interval=0.02)

    down_ours, down_xl = timed(ours_down), timed(xl_down)
    return [ratio_line("start -> running", ours, xl),
            ratio_line("shutdown -> gone", [down_ours], [down_xl])]


def cleanup() -> None:
    """Destroy what a failed run left: both guests (xl destroy), the VM's xenstore trees."""
    for domid in [*xl_domids(NAME), *xl_domids(XL_NAME)]:
        subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=60,
                       check=False)
    subprocess.run(["xenstore-rm", f"/vm/{VM}"], capture_output=True, timeout=30, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not HAVE_XEN:
        print("xenlab_lifecycle: skipped: not a Xen dom0 (no /dev/xen/privcmd); "
              "`make xenlab-test` runs it inside the lab")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oxt-bench-") as tmp:
        sup = Supervisor(Path(tmp))
        xc = XcBackend()
        try:
            sup.start()
            lines = bench(xc, sup, Path(tmp), max(1, args.rounds))
        except Exception as exc:  # reported, then a failure to run
            say(f"failed to run: {type(exc).__name__}: {exc}")
            return 1
        finally:
            sup.stop()
            cleanup()
            xc.close()
    for line in lines:
        say(line)
    say(f"(took {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
