"""Benchmark the DBus export framework against a bare jeepney echo service on the same bus.

Both services run in their own process on one private dbus-daemon; one client process calls
``Echo(s) -> s`` with a 32-byte string:

* method round trips, one call in flight: ours vs bare [target >= 0.85x];
* 32 calls in flight: calls/s, ours vs bare [target >= 0.95x, issue 16];
* ours with handlers on a worker pool (``parallel=4``) for comparison.

Rounds alternate the services; the median round is reported. The xec start-up figure is in
benchmarks/xec.py. Run: ``.venv/bin/python benchmarks/dbus.py [--quick]``. Interrupted (Ctrl-C,
SIGTERM), it stops the bus and the services it started (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cleanup import Processes, cleaning_up, run

PAYLOAD = "x" * 32
IFACE = "org.openxt.Bench"
XML = b"""<node><interface name="org.openxt.Bench">
  <method name="Echo"><arg name="v" type="s"/><arg type="s" direction="out"/></method>
</interface></node>"""


def serve_bare(address: str, name: str) -> None:
    """A bare jeepney echo service: receive, reply, in one thread."""
    from jeepney import new_method_return
    from jeepney.io.blocking import open_dbus_connection
    from jeepney.low_level import MessageType

    conn = open_dbus_connection(address)
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import Proxy
    Proxy(message_bus, conn).RequestName(name, 4)
    print("READY", flush=True)
    while True:
        msg = conn.receive()
        if msg.header.message_type is MessageType.method_call:
            conn.send(new_method_return(msg, "s", (msg.body[0],)))


def serve_ours(address: str, name: str, parallel: int) -> None:
    """The same echo through rpc.dbus (BusService, handler in the actor or a pool)."""
    import actors
    from rpc.dbus import BusService, Call, dbus_method
    from rpc.idl import parse_node

    interfaces = list(parse_node(XML).interfaces)

    class Echo(BusService):
        bus_names = (name,)

        def setup(self) -> None:
            self.export("/bench", interfaces, parallel=parallel)

        @dbus_method(IFACE, "Echo")
        def echo(self, _call: Call, v: str) -> str:
            return v

    ref = Echo.start(address)
    assert actors.actor_of(ref).wait_started(10)
    print("READY", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    ref.stop(block=True, timeout=5)


def spawn(procs: Processes, kind: str, address: str, name: str, parallel: int = 0
          ) -> subprocess.Popen[str]:
    proc = procs.spawn(
        [sys.executable, __file__, "--serve", kind, address, name, str(parallel)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"{kind} service did not start: {line!r}")
    return proc


def sequential(conn: object, name: str, n: int) -> float:
    from rpc.dbus import method_call
    msg = method_call(name, "/bench", IFACE, "Echo", "s", (PAYLOAD,))
    call = conn.call  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for _ in range(n):
        call(msg, 10.0)
    return n / (time.perf_counter() - t0)


def in_flight(conn: object, name: str, n: int, window: int = 32) -> float:
    from rpc.dbus import method_call
    msg = method_call(name, "/bench", IFACE, "Echo", "s", (PAYLOAD,))
    sem = threading.Semaphore(window)
    done = threading.Event()
    remaining = [n]
    lock = threading.Lock()

    def finished(_f: object) -> None:
        sem.release()
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    t0 = time.perf_counter()
    for _ in range(n):
        sem.acquire()
        conn.call_async(msg).add_done_callback(finished)  # type: ignore[attr-defined]
    done.wait(60)
    return n / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "ADDRESS", "NAME", "PARALLEL"))
    args = parser.parse_args()
    if args.serve:
        kind, address, name, parallel = args.serve
        if kind == "bare":
            serve_bare(address, name)
        else:
            serve_ours(address, name, int(parallel))
        return 0

    from rpc.dbus import BusConnection, start_bus
    n = 2000 if args.quick else 10000
    rounds = 3 if args.quick else 5
    results: dict[str, dict[str, list[float]]] = {
        k: {"seq": [], "par": []} for k in ("Bare", "Ours", "Pool")}
    directory = Path(tempfile.mkdtemp(prefix="oxt-bench-"))
    try:
        with cleaning_up() as procs:
            bus, address = procs.adopt(*start_bus(directory, ("org.openxt",)))
            services = [spawn(procs, "bare", address, "org.openxt.bench.Bare"),
                        spawn(procs, "ours", address, "org.openxt.bench.Ours"),
                        spawn(procs, "ours", address, "org.openxt.bench.Pool", 4)]
            conn = BusConnection(address)
            for kind in results:  # warm-up
                sequential(conn, f"org.openxt.bench.{kind}", 500)
            for _ in range(rounds):
                for kind in results:
                    name = f"org.openxt.bench.{kind}"
                    results[kind]["seq"].append(sequential(conn, name, n))
                    results[kind]["par"].append(in_flight(conn, name, n))
            conn.close()
            for proc in services:
                assert proc.stdin is not None
                proc.stdin.close()  # ours end on it; the bare one on SIGTERM
                procs.stop(proc)
            procs.stop(bus)
            if bus.stderr is not None:
                bus.stderr.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    bare = med["Bare"]
    print(f"round trip, 1 in flight   bare {bare['seq']:8,.0f}/s ({1e6 / bare['seq']:.0f} µs)")
    for kind, label in (("Ours", "ours (actor)"), ("Pool", "ours (pool of 4)")):
        m = med[kind]
        print(f"                          {label:<16} {m['seq']:8,.0f}/s "
              f"({1e6 / m['seq']:.0f} µs)  ratio {m['seq'] / bare['seq']:.2f}"
              f"{'  (target >= 0.85)' if kind == 'Ours' else ''}")
    print(f"32 calls in flight        bare {bare['par']:8,.0f}/s")
    for kind, label in (("Ours", "ours (actor)"), ("Pool", "ours (pool of 4)")):
        m = med[kind]
        print(f"                          {label:<16} {m['par']:8,.0f}/s  "
              f"ratio {m['par'] / bare['par']:.2f}"
              f"{'  (target >= 0.95)' if kind == 'Ours' else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
