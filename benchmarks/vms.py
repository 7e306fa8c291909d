"""Benchmark VM monitors on the simulated host, with baselines from the same run.

* start -> running latency per VM (through the monitor: plans, xenstore, hypervisor) vs the
  sim host's bare create + unpause (two hypervisor calls), and the xenstore round trips and
  requests and the hypervisor calls of one PV start (on the tree's shared clients, whoever
  made them), and the
  CPU the rounds took in this process, with the share of the simulated xenstored and
  hypervisor, which run here as threads (sharing the GIL with the monitor);
* monitor crash -> domain re-adopted latency [median <= 1 ms];
* 200 VMs booted concurrently: wall time; memory per idle monitor;
* on the full simulated host (guests, backends, dm-agents): start -> running of an HVM guest
  with a stub domain vs the same guest without a device model, and vs dom0's dm-agent.

Run: ``.venv/bin/python benchmarks/vms.py [--quick]``. Everything runs in this process;
interrupted (Ctrl-C, SIGTERM), it stops the tree and the simulated host on the way out
(benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actors
from benchmarks._cleanup import cleaning_up, run
from supervision import StartChild
from tests.integration.xen_fixtures import sim_tree, vm_config, xen_tree
from xen.hypervisor import DomainSpec
from xen.xenvm import VmStart, vm_task


def rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1024


def sim_cpu() -> float:
    """CPU seconds of this process's simulated xenstored and hypervisor threads (the host's
    side, which a real host runs in xenstored and Xen, not in the toolstack's process)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    ticks = 0
    for tid in os.listdir("/proc/self/task"):
        if names.get(int(tid)) in ("sim-xenstored", "sim-hypervisor"):
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    rounds = 10 if args.quick else 40
    n_boot = 50 if args.quick else 200
    with cleaning_up(), tempfile.TemporaryDirectory() as tmp, xen_tree(
            Path(tmp), memory_mib=n_boot * 40 + 4096, intensity=10_000, backoff=None) as tree:
        hv = tree.hv
        bare, ours = [], []
        vm = tree.add_vm(vm_config("bench", memory=32))
        cpu, sim = -time.process_time(), -sim_cpu()
        for _ in range(rounds):
            t0 = time.perf_counter()
            domid = hv.create(DomainSpec(handle=uuidlib.uuid4(), memory_kib=32 * 1024))
            hv.unpause(domid)
            bare.append(time.perf_counter() - t0)
            hv.destroy(domid)
            t0 = time.perf_counter()
            vm_task(vm, "start")
            ours.append(time.perf_counter() - t0)
            vm_task(vm, "destroy")
        cpu, sim = cpu + time.process_time(), sim + sim_cpu()
        b, o = statistics.median(bare) * 1000, statistics.median(ours) * 1000
        print(f"start -> running    monitor {o:7.2f} ms   bare create+unpause {b:6.2f} ms   "
              f"ratio {o / b:.1f}x (target <= 12x)")
        print(f"  CPU of this process per round (bare + start + destroy) {cpu / rounds * 1000:.1f}"
              f" ms, of which the simulated xenstored and hypervisor threads "
              f"{sim / rounds * 1000:.1f} ms")
        xs = tree.xs
        before, hv_before = xs.counters(), hv.calls
        vm_task(vm, "start")
        sent, trips = (after - was for after, was in zip(xs.counters(), before, strict=True))
        hv_calls = hv.calls - hv_before
        vm_task(vm, "destroy")
        print(f"xenstore per PV start (no devices): {trips} round trips, {sent} requests "
              f"(pipelined in transactions); hypervisor calls: {hv_calls} (the bare baseline "
              f"makes 2; the domain watcher's are counted too)")

        vm_task(vm, "start")
        adopt = []
        for _ in range(rounds):
            seq = tree.events.last_seq
            t0 = time.perf_counter()
            actors.tell(f"/vms/{vm}", actors.InjectCrash())
            ev = tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                      10, since=seq)
            assert ev is not None and vm_task(vm, "get-status") == "running"
            adopt.append(time.perf_counter() - t0)
        print(f"crash -> re-adopted  median {statistics.median(adopt) * 1000:.2f} ms  "
              f"p90 {statistics.quantiles(adopt, n=10)[-1] * 1000:.2f} ms  (target median <= 1 ms)")
        vm_task(vm, "destroy")

        gc.collect()
        before = rss_kb()
        vms = [str(uuidlib.UUID(int=i + 1)) for i in range(n_boot)]
        for i, u in enumerate(vms):
            actors.ask("/vms", StartChild(u, (VmStart(u, vm_config(f"vm{i}", memory=32)),)),
                       timeout=30)
        gc.collect()
        per_monitor = (rss_kb() - before) / n_boot
        t0 = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda u: vm_task(u, "start", timeout=300), vms))
        wall = time.perf_counter() - t0
        print(f"{n_boot} VMs booted concurrently  {wall:.2f} s  ({wall / n_boot * 1000:.1f} ms/VM)"
              f"   idle monitor memory {per_monitor:.1f} KB")
    stubdom_section(max(5, rounds // 2))
    return 0


_HVM = ("hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
        "disk = /dev/null:phy:hda:w:disk:none\nnic = id=0,bridge=xenbr0\n")


def stubdom_section(rounds: int) -> None:
    """Start -> running of one HVM guest: with a stub domain, with dom0's dm-agent, and with no
    device model (the baseline), interleaved round by round, on the full simulated host."""
    kinds = {"no device model": "",
             "dom0 dm-agent": "dm-mode = dm-agent\n",
             "stub domain": f"stubdom = {uuidlib.uuid4()}\n"}
    with tempfile.TemporaryDirectory() as tmp, sim_tree(Path(tmp)) as (tree, _host):
        vms = {kind: tree.add_vm(vm_config(kind.replace(" ", "-"), memory=64) + _HVM + extra)
               for kind, extra in kinds.items()}
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(rounds):
            for kind, vm in vms.items():
                t0 = time.perf_counter()
                vm_task(vm, "start")
                times[kind].append(time.perf_counter() - t0)
                vm_task(vm, "destroy")
        base = statistics.median(times["no device model"]) * 1000
        for kind in kinds:
            med = statistics.median(times[kind]) * 1000
            print(f"HVM start -> running, {kind:16s} {med:7.2f} ms   ratio {med / base:.2f}x")


if __name__ == "__main__":
    raise SystemExit(run(main))
