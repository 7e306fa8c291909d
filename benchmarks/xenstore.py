"""Benchmark xenstore access and the simulated host, with baselines from the same run.

* reads and writes per second against one simulated xenstored running in its own process
  (``python -m xen.sim.xenstored``, so the server does not share the client's GIL): through our
  client (`xen.xenstore.XenstoreClient`, one thread, then 4 threads sharing it) and through
  Debian's C libxenstore (``libxenstore.so.4``: xs_open / xs_read / xs_write in a ctypes loop,
  ``XENSTORED_PATH`` pointing at the same socket), one thread each in alternating rounds; the
  ratios ours / C (the median of the rounds' ratios) are printed beside the target;
* the simulated host in its own process (``python -m xen.sim.simhost --foreground``): create
  and destroy 1,000 domains through `SimBackend` (hypervisor only), then 1,000 with their
  xenstore tree (`plan_domain_create`; destroy through `observe_domain` + `plan_domain_destroy`,
  as the toolstack does), each timed; the RSS of the host process before, with 1,000 domains
  and after.

Run: ``.venv/bin/python benchmarks/xenstore.py [--quick]``. Without libxenstore.so.4 (Debian
package libxenstore4) the C baseline is skipped with a note. Interrupted (Ctrl-C, SIGTERM), it
stops the processes it started (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cleanup import Processes, cleaning_up, run
from xen.hypervisor import DomainSpec, SimBackend
from xen.xenops import DomainSpec as XsDomainSpec
from xen.xenops import (
    PlanExecutor,
    SimHostActions,
    Timeouts,
    observe_domain,
    plan_domain_create,
    plan_domain_destroy,
)
from xen.xenstore import XenstoreClient

PATHS = 100
VALUE = b"0123456789abcdef"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: {what} not ready within {timeout:g} s")
        time.sleep(0.02)


@contextmanager
def process(procs: Processes, cmd: list[str], ready: Callable[[], bool], what: str
            ) -> Iterator[subprocess.Popen[bytes]]:
    proc = procs.spawn(cmd, grace=15.0, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready() or proc.poll() is not None, what)
        if proc.poll() is not None:
            raise SystemExit(f"benchmark: {what} exited with status {proc.returncode}")
        yield proc
    finally:
        procs.stop(proc)


def rate(n: int, fn: Callable[[int], object]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def rate_cpu(n: int, fn: Callable[[int], object]) -> tuple[float, float]:
    """`rate`, and the calling thread's CPU time per call (client work: system calls, and the
    Python or C around them; the server's time is not in it)."""
    c0 = time.thread_time()
    ops = rate(n, fn)
    return ops, (time.thread_time() - c0) / n


def threaded_rate(n: int, threads: int, fn: Callable[[int], object]) -> float:
    per = n // threads

    def work(k: int) -> None:
        for i in range(per):
            fn(k * per + i)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - t0)


class CXenstore:
    """Debian's libxenstore through ctypes (xs_open honours $XENSTORED_PATH)."""

    def __init__(self, socket_path: str) -> None:
        os.environ["XENSTORED_PATH"] = socket_path
        self.lib = ctypes.CDLL("libxenstore.so.4")
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"))
        vp, u32 = ctypes.c_void_p, ctypes.c_uint32
        self.lib.xs_open.restype, self.lib.xs_open.argtypes = vp, [ctypes.c_ulong]
        self.lib.xs_close.argtypes = [vp]
        self.lib.xs_read.restype = vp
        self.lib.xs_read.argtypes = [vp, u32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]
        self.lib.xs_write.restype = ctypes.c_bool
        self.lib.xs_write.argtypes = [vp, u32, ctypes.c_char_p, vp, ctypes.c_uint]
        self.libc.free.argtypes = [vp]
        self.handle = self.lib.xs_open(0)
        if not self.handle:
            raise OSError(ctypes.get_errno(), f"xs_open failed on {socket_path}")
        self.length = ctypes.c_uint()

    def write(self, path: bytes, value: bytes) -> None:
        if not self.lib.xs_write(self.handle, 0, path, value, len(value)):
            raise OSError(f"xs_write {path!r} failed")

    def read(self, path: bytes) -> bytes:
        ptr = self.lib.xs_read(self.handle, 0, path, ctypes.byref(self.length))
        if not ptr:
            raise OSError(f"xs_read {path!r} failed")
        data = ctypes.string_at(ptr, self.length.value)
        self.libc.free(ptr)
        return data

    def close(self) -> None:
        self.lib.xs_close(self.handle)


ROUNDS = 10
TARGET = 0.85  # ours / C, one thread (issue 16)


def bench_xenstore(procs: Processes, tmp: Path, n: int) -> None:
    """Ours and C in alternating rounds (the load of a shared machine hits both alike); the
    ratio is the median of the per-round ratios, the rates are the medians."""
    sock = tmp / "xenstored.sock"
    cmd = [sys.executable, "-m", "xen.sim.xenstored", "--socket", str(sock)]
    paths = [f"/bench/k{i}" for i in range(PATHS)]
    bpaths = [p.encode() for p in paths]
    per = max(1, n // ROUNDS)
    with process(procs, cmd, sock.exists, "xenstored") as server:
        rounds: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        with XenstoreClient(str(sock), timeout=10.0) as xs:
            value = VALUE.decode()
            ours = {"write": lambda i: xs.write(paths[i % PATHS], value),
                    "read": lambda i: xs.read(paths[i % PATHS])}
            try:
                c = CXenstore(str(sock))
            except OSError as exc:
                print(f"(libxenstore baseline skipped: {exc}; install libxenstore4)")
                c = None
            theirs = {} if c is None else {
                "write": lambda i: c.write(bpaths[i % PATHS], VALUE),
                "read": lambda i: c.read(bpaths[i % PATHS])}
            try:
                for _ in range(ROUNDS):
                    for op in ("write", "read"):
                        for name, fns in (("ours", ours), ("libxenstore (C)", theirs)):
                            if fns:
                                ops, cpu_per_op = rate_cpu(per, fns[op])
                                rounds.setdefault(name, {}).setdefault(op, []).append(ops)
                                cpu.setdefault(name, {}).setdefault(op, []).append(cpu_per_op)
            finally:
                if c is not None:
                    c.close()
            rounds["ours, 4 threads"] = {
                "write": [threaded_rate(n, 4, lambda i: xs.write(paths[i % PATHS], value))],
                "read": [threaded_rate(n, 4, lambda i: xs.read(paths[i % PATHS]))],
            }
        server_rss = rss_kib(server.pid)
    base = rounds.get("libxenstore (C)")
    print(f"xenstore, {per * ROUNDS} ops each in {ROUNDS} alternating rounds, {len(VALUE)}-byte "
          f"values, simulated xenstored in its own process (RSS {server_rss / 1024:.1f} MiB)")
    for name, r in rounds.items():
        ratio = ""
        if base and name == "ours":
            w = statistics.median(a / b for a, b in zip(r["write"], base["write"], strict=True))
            rd = statistics.median(a / b for a, b in zip(r["read"], base["read"], strict=True))
            ratio = (f"   ratio to C: write {w:.2f}x, read {rd:.2f}x "
                     f"(target >= {TARGET:.2f}x both)")
        elif base and name != "libxenstore (C)":
            ratio = (f"   ratio to C: write "
                     f"{statistics.median(r['write']) / statistics.median(base['write']):.2f}x, "
                     f"read {statistics.median(r['read']) / statistics.median(base['read']):.2f}x")
        print(f"  {name:18s} write {statistics.median(r['write']):9.0f}/s  "
              f"read {statistics.median(r['read']):9.0f}/s{ratio}")
    for name, c in cpu.items():
        print(f"  client CPU per op, {name}: write {statistics.median(c['write']) * 1e6:.1f} us, "
              f"read {statistics.median(c['read']) * 1e6:.1f} us (median of the rounds)")


def bench_simhost(procs: Processes, tmp: Path, n: int) -> None:
    state = tmp / "host"
    info = state / "simhost.json"
    memory_mib = n * 16 + 4096
    cmd = [sys.executable, "-m", "xen.sim.simhost", "--state", str(state), "--foreground",
           "--memory-mib", str(memory_mib)]
    with process(procs, cmd, info.exists, "simulated host") as host:
        doc = json.loads(info.read_text())
        hv = SimBackend(doc["hypervisor_socket"], timeout=10.0)
        xs = XenstoreClient(doc["xenstored_socket"], timeout=10.0).connect()
        try:
            rss0 = rss_kib(host.pid)
            t0 = time.perf_counter()
            domids = [hv.create(DomainSpec(handle=uuid.uuid4(), memory_kib=16 * 1024))
                      for _ in range(n)]
            create = time.perf_counter() - t0
            rss1 = rss_kib(host.pid)
            t0 = time.perf_counter()
            for domid in domids:
                hv.destroy(domid)
            destroy = time.perf_counter() - t0
            rss2 = rss_kib(host.pid)
            print(f"sim host, {n} domains through SimBackend (hypervisor only)")
            print(f"  create {create:6.2f} s ({create / n * 1000:.2f} ms each)   "
                  f"destroy {destroy:6.2f} s ({destroy / n * 1000:.2f} ms each)")
            print(f"  host RSS: start {rss0 / 1024:.1f} MiB, with {n} domains "
                  f"{rss1 / 1024:.1f} MiB (+{(rss1 - rss0) / n:.1f} KiB each), after destroy "
                  f"{rss2 / 1024:.1f} MiB")
            ex = PlanExecutor(hv, xs, SimHostActions(), poll=0.01)
            timeouts = Timeouts(domain_gone=5.0, domain_gone_poll=0.01)
            t0 = time.perf_counter()
            domids = []
            for i in range(n):
                handle = uuid.uuid4()
                domid = hv.create(DomainSpec(handle=handle, memory_kib=16 * 1024))
                ex.run(plan_domain_create(XsDomainSpec(uuid=str(handle), name=f"vm{i}"), domid))
                domids.append(domid)
            create = time.perf_counter() - t0
            rss3 = rss_kib(host.pid)
            t0 = time.perf_counter()
            failures = 0
            for domid in domids:
                result = ex.run(plan_domain_destroy(observe_domain(xs, domid),
                                                    timeouts=timeouts))
                failures += len(result.failures)
            destroy = time.perf_counter() - t0
            rss4 = rss_kib(host.pid)
            left = sum(1 for d in domids if xs.exists(f"/local/domain/{d}"))
            print(f"sim host, {n} domains with their xenstore tree (plans through the "
                  f"executor)")
            print(f"  create {create:6.2f} s ({create / n * 1000:.2f} ms each)   "
                  f"destroy {destroy:6.2f} s ({destroy / n * 1000:.2f} ms each)   "
                  f"failed steps {failures}, trees left {left}")
            print(f"  host RSS: with {n} domains {rss3 / 1024:.1f} MiB "
                  f"(+{(rss3 - rss2) / n:.1f} KiB each), after destroy {rss4 / 1024:.1f} MiB")
        finally:
            xs.close()
            hv.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and domains")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with cleaning_up() as procs, tempfile.TemporaryDirectory(prefix="bench-xs-") as tmp:
        bench_xenstore(procs, Path(tmp), 3000 if args.quick else 20000)
        bench_simhost(procs, Path(tmp), 200 if args.quick else 1000)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
