"""Benchmark dbd: DBus calls against a bare jeepney echo on the same bus, the store in process,
and flushing a 1,000-VM database. Ratios are taken within one run (shared, noisy machines).

* ``read`` calls/s over DBus, one call in flight, vs a bare jeepney echo round trip
  (``Echo(s) -> s``) on the same private dbus-daemon [target >= 0.95x, issue 16];
* durable ``write`` calls/s with 8 concurrent writers (8 connections, one call in flight each:
  every reply means the record was fsynced) vs the same bare echo with one call in flight
  [target >= 0.5x], and vs the bare echo with 8 concurrent clients for comparison;
* in process: ``ask`` reads/s, durable writes/s (one at a time, and 64 in flight) on the store;
* flush of a 1,000-VM database (every file, then after one VM changed), and its load at start.

dbd and the echo each run in their own process; rounds alternate and the median is reported.
The read rounds run before the write rounds, whose dirty files keep dbd's flusher busy.
Run: ``.venv/bin/python benchmarks/db.py [--quick]``. Interrupted (Ctrl-C, SIGTERM), it stops
the bus, dbd and the echo it started (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cleanup import Processes, cleaning_up, run

ECHO = "org.openxt.bench.Echo"
DB = "com.citrix.xenclient.db"


def serve_bare(address: str) -> None:
    """A bare jeepney echo service: receive, reply, in one thread."""
    from jeepney import new_method_return
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import Proxy, open_dbus_connection
    from jeepney.low_level import MessageType

    conn = open_dbus_connection(address)
    Proxy(message_bus, conn).RequestName(ECHO, 4)
    print("READY", flush=True)
    while True:
        msg = conn.receive()
        if msg.header.message_type is MessageType.method_call:
            conn.send(new_method_return(msg, "s", (msg.body[0],)))


def wait_for_name(address: str, name: str, timeout: float = 20.0) -> None:
    from rpc.dbus import BusConnection
    deadline = time.monotonic() + timeout
    with BusConnection(address) as conn:
        while not conn.bus_call("NameHasOwner", "s", (name,))[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not appear on the bus")
            time.sleep(0.01)


def sequential(conn: Any, msg: Any, n: int) -> float:
    call = conn.call
    t0 = time.perf_counter()
    for _ in range(n):
        call(msg, 10.0)
    return n / (time.perf_counter() - t0)


def concurrent(address: str, make_msg: Any, n: int, clients: int = 8) -> float:
    """Total calls/s of ``clients`` connections, each one call in flight, n calls each."""
    from rpc.dbus import BusConnection
    conns = [BusConnection(address) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def work(i: int) -> None:
        conn = conns[i]
        msgs = [make_msg(i, k) for k in range(n)]
        barrier.wait()
        for msg in msgs:
            conn.call(msg, 10.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    rate = clients * n / (time.perf_counter() - t0)
    for conn in conns:
        conn.close()
    return rate


def bus_benchmarks(procs: Processes, quick: bool, directory: Path) -> dict[str, float]:
    from rpc.dbus import BusConnection, method_call, start_bus

    n = 1500 if quick else 5000
    rounds = 3 if quick else 5
    bus, address = procs.adopt(*start_bus(directory / "bus",
                                          ("org.openxt", "com.citrix.xenclient")))
    echo = procs.spawn([sys.executable, __file__, "--serve-bare", address],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    dbd = procs.spawn([str(Path(sys.executable).parent / "dbd"), "--root",
                       str(directory / "db"), "--bus", address, "--foreground"],
                      grace=30.0, stdin=subprocess.DEVNULL)
    results: dict[str, list[float]] = {"echo": [], "read": [], "echo8": [], "write8": []}
    assert echo.stdout is not None and echo.stdout.readline().startswith("READY")
    wait_for_name(address, DB)
    conn = BusConnection(address)
    echo_msg = method_call(ECHO, "/", "org.openxt.Bench", "Echo", "s", ("/xenmgr/x",))
    read_msg = method_call(DB, "/", DB, "read", "s", ("/xenmgr/x",))
    conn.call(method_call(DB, "/", DB, "write", "ss", ("/xenmgr/x", "a value")), 10.0)
    sequential(conn, echo_msg, 300)
    sequential(conn, read_msg, 300)
    for _ in range(rounds):  # reads first: the writes below keep the flusher busy
        results["echo"].append(sequential(conn, echo_msg, n))
        results["read"].append(sequential(conn, read_msg, n))
    for _ in range(rounds):
        results["echo8"].append(concurrent(address, lambda _i, _k: echo_msg, n // 8))
        results["write8"].append(concurrent(
            address, lambda i, k: method_call(DB, "/", DB, "write", "ss",
                                              (f"/vm/w{i}/k{k % 50}", f"v{k}")), n // 8))
    conn.close()
    for proc in (dbd, echo, bus):
        procs.stop(proc)
    if bus.stderr is not None:
        bus.stderr.close()
    return {k: statistics.median(v) for k, v in results.items()}


def in_process(quick: bool, directory: Path) -> dict[str, float]:
    import actors
    from persistence import (
        DbInject,
        DbRead,
        DbWrite,
        FlushNow,
        commit,
        db_specs,
    )
    from supervision import Strategy, Supervisor, SupFlags

    n = 2000 if quick else 10000
    vms = 1000
    root = directory / "inproc"
    specs = db_specs(str(root), "unix:path=/nonexistent", 0.0)[:2]  # store and flusher only
    flags = SupFlags(Strategy.REST_FOR_ONE)
    sup = Supervisor.start_root(flags, specs)
    out: dict[str, float] = {}
    try:
        commit("/store", DbWrite("/xenmgr/x", "v"), timeout=10)
        t0 = time.perf_counter()
        for _ in range(n):
            actors.ask("/store", DbRead("/xenmgr/x"), timeout=10)
        out["ask_read"] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for k in range(n // 4):
            commit("/store", DbWrite(f"/a/k{k % 100}", str(k)), timeout=10)
        out["write_1"] = (n // 4) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        window: list[Any] = []
        for k in range(n):
            window.append(actors.ask("/store", DbWrite(f"/b/k{k % 100}", str(k)), timeout=10))
            if len(window) >= 64:
                window.pop(0).result(10)
        for future in window:
            future.result(10)
        out["write_64"] = n / (time.perf_counter() - t0)
        vm = {"name": "vm", "type": "svm", "config": {f"k{i}": f"value {i}" for i in range(25)},
              "disk": {str(d): {"path": f"/storage/disks/{d}.vhd", "mode": "w"}
                       for d in range(3)}}
        for i in range(vms):
            commit("/store", DbInject(f"/vm/{i:08d}-0000-0000-0000-000000000000",
                                      json.dumps(vm)), timeout=30)
        result = actors.ask("/flusher", FlushNow(), timeout=120)
        out["flush_all"] = result.seconds
        out["flush_files"] = result.written
        commit("/store", DbWrite("/vm/00000007-0000-0000-0000-000000000000/name", "x"),
               timeout=10)
        out["flush_one"] = actors.ask("/flusher", FlushNow(), timeout=120).seconds
    finally:
        actors.actor_of(sup).request_stop()
        actors.actor_of(sup).wait_dead(120)
    t0 = time.perf_counter()
    sup = Supervisor.start_root(flags, specs)
    out["load"] = time.perf_counter() - t0
    actors.actor_of(sup).request_stop()
    actors.actor_of(sup).wait_dead(120)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-bare", metavar="ADDRESS")
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    directory = Path(tempfile.mkdtemp(prefix="oxt-bench-db-"))
    try:
        with cleaning_up() as procs:
            bus = bus_benchmarks(procs, args.quick, directory)
            local = in_process(args.quick, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    echo = bus["echo"]
    print(f"bare echo, 1 in flight        {echo:8,.0f} calls/s ({1e6 / echo:.0f} µs)")
    print(f"dbd read, 1 in flight         {bus['read']:8,.0f} calls/s ({1e6 / bus['read']:.0f} µs)"
          f"  ratio {bus['read'] / echo:.2f}  (target >= 0.95)")
    print(f"bare echo, 8 clients          {bus['echo8']:8,.0f} calls/s")
    print(f"dbd durable write, 8 writers  {bus['write8']:8,.0f} calls/s"
          f"  ratio {bus['write8'] / echo:.2f} vs echo 1 in flight (target >= 0.5),"
          f" {bus['write8'] / bus['echo8']:.2f} vs echo 8 clients")
    print(f"in process: ask read {local['ask_read']:,.0f}/s, durable write "
          f"{local['write_1']:,.0f}/s one at a time, {local['write_64']:,.0f}/s 64 in flight")
    print(f"1,000 VMs: flush of {local['flush_files']:.0f} files {local['flush_all']:.3f} s, "
          f"flush after one VM changed {local['flush_one'] * 1000:.1f} ms, "
          f"load at start {local['load']:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
