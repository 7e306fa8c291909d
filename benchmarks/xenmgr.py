"""Benchmark xenmgr on the bus against a bare jeepney echo service on the same bus.

One run starts the simulated host, an ``oxt-supervisor`` with xenmgr (autostart off) on its
private bus, and the bare echo of ``benchmarks/dbus.py`` on that bus, then measures, as
ratios within the run (medians of rounds):

* ``list_vms`` with 100 VMs defined, per call, vs one echo round trip   [target <= 2x];
* ``GetAll`` of one VM's main interface (about 145 properties) vs echo  [target <= 3x];
* ``create_vm_with_template`` + ``delete`` round trip (milliseconds);
* signals delivered per second while 50 clients start and destroy their VMs;
* host shutdown of 50 running VMs in 4 ``shutdown-priority`` groups, repeated (``--reps``,
  3; the host is put back to ``idle`` between repetitions, as a restarted host would be): the
  slowest group's time (from the end of the previous group to its last VM's ``stopped``
  signal) vs the single VM shutdown time measured just before on 5 of the same VMs (their
  median: the VMs are identical, so the slowest VM is the typical one), median of the
  repetitions' ratios                                                    [target <= 1.5x].

Exit status is non-zero only when the benchmark could not run. SIGINT and SIGTERM stop every
process it started (the supervisor, the echo service, the simulated host).
Run: ``.venv/bin/python benchmarks/xenmgr.py [--quick] [--shutdown-only] [--reps N]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

XENMGR = "com.citrix.xenclient.xenmgr"
VM = "com.citrix.xenclient.xenmgr.vm"
ECHO = "org.openxt.bench.Bare"
CONFIG = """
[supervisor]
state_dir = "{state}"
backend = "sim"
syslog = false
log_level = "warning"
[sim]
state_dir = "simhost"
[xenmgr]
autostart = false
workers = 16
"""


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _rate(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _median_rounds(fn: Any, n: int, rounds: int) -> float:
    return statistics.median(_rate(fn, n) for _ in range(rounds))


GROUPS = 4  # shutdown-priority groups of the host shutdown measurement
SAMPLE = 5  # VMs shut down one at a time for the baseline, per repetition
SETTLE = 3.0  # s after starts before timing: their reactions (hooks, firewall) are done


def _parallel(fn: Any, items: list[str]) -> None:
    """``fn(item)`` for every item, 8 at a time (errors raised)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fn, items))


class _Stops:
    """Arrival times (perf_counter) of ``vm_state_changed(..., "stopped", ...)`` by uuid."""

    def __init__(self, address: str) -> None:
        from rpc.dbus import BusConnection
        self.at: dict[str, float] = {}
        self.conn = BusConnection(address, on_signal=self._got)
        self.conn.add_match(f"type='signal',sender='{XENMGR}',member='vm_state_changed'")

    def _got(self, msg: Any) -> None:
        if len(msg.body) >= 3 and msg.body[2] == "stopped":
            self.at[str(msg.body[0])] = time.perf_counter()

    def wait(self, uuids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(u not in self.at for u in uuids):
            if time.monotonic() > deadline:
                raise SystemExit(f"no stopped signal for {set(uuids) - set(self.at)}")
            time.sleep(0.02)


def _host_shutdown(address: str, xenstored: str, paths: list[str],
                   reps: int) -> list[tuple[float, list[float], list[float]]]:
    """Host shutdown of ``paths`` in :data:`GROUPS` priority groups, ``reps`` times. Each
    repetition: start them all; shut :data:`SAMPLE` of them down one at a time (the baseline,
    timed from the bus call to its answer, the other VMs running) and start them again; then
    the host shutdown (each timing :data:`SETTLE` s after the starts, which would else still
    be reacting to them), each group timed from the end of the previous one (the first from the
    call) to the ``stopped`` signal of its last VM; then the host is put back to ``idle`` as
    a restarted host would be. Returns (wall, group times, single times) per repetition."""
    from rpc.dbus import BusConnection, RemoteObject
    from xen.xenstore import XenstoreClient
    conn = BusConnection(address)
    stops = _Stops(address)
    out = []
    try:
        def obj(path: str) -> Any:
            return RemoteObject(conn, XENMGR, path, timeout=300)
        groups: list[list[str]] = [[] for _ in range(GROUPS)]  # highest priority first
        for i, path in enumerate(paths):
            obj(path).set(VM, "shutdown-priority", "i", 10 * (GROUPS - 1 - i % GROUPS))
            groups[i % GROUPS].append(path.rsplit("/", 1)[1].replace("_", "-"))
        for _ in range(reps):
            _parallel(lambda p: obj(p).call(VM, "start"), paths)
            time.sleep(SETTLE)
            single = []
            for path in paths[:SAMPLE]:
                t0 = time.perf_counter()
                obj(path).call(VM, "shutdown")
                single.append(time.perf_counter() - t0)
            _parallel(lambda p: obj(p).call(VM, "start"), paths[:SAMPLE])
            time.sleep(SETTLE)
            stops.at.clear()
            t0 = time.perf_counter()
            obj("/host").call("com.citrix.xenclient.xenmgr.host", "shutdown")
            wall = time.perf_counter() - t0
            stops.wait([u for g in groups for u in g], 30)
            ends = [t0] + [max(stops.at[u] for u in g) for g in groups]
            out.append((wall, [b - a for a, b in itertools.pairwise(ends)], single))
            with XenstoreClient(xenstored, timeout=10.0) as xs:
                xs.write("/xenmgr/host-state", "idle")
                xs.rm("/sim/host/power")
        return out
    finally:
        stops.conn.close()
        conn.close()


def _report_shutdown(n_vms: int, runs: list[tuple[float, list[float], list[float]]]) -> None:
    """Per repetition: the baseline is the median of its single VM shutdowns (identical VMs:
    the slowest VM is the typical one; the maximum of noisy samples would flatter the ratio),
    the figure the slowest group's time over it; the row gives the median over repetitions."""
    ratios, walls, bases = [], [], []
    for wall, group_times, single in runs:
        base = statistics.median(single)
        ratios.append(max(group_times) / base)
        walls.append(wall)
        bases.append(base)
        print(f"  repetition: groups {' '.join(f'{g:.2f}' for g in group_times)} s, "
              f"single VM shutdowns {' '.join(f'{s:.2f}' for s in single)} s")
    print(f"host shutdown, {n_vms} VMs in {GROUPS} groups {statistics.median(walls):8.2f} s  "
          f"slowest group vs single VM shutdown {statistics.median(bases):.2f} s: ratio "
          f"{statistics.median(ratios):5.2f}x  (median of {len(runs)}; target <= 1.5x)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shutdown-only", action="store_true",
                        help="only the host shutdown measurement")
    parser.add_argument("--reps", type=int, default=3,
                        help="repetitions of the host shutdown measurement")
    args = parser.parse_args()
    n_vms, n_calls, rounds = (100, 200, 3) if args.quick else (100, 1000, 5)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)

    from rpc.dbus import BusConnection, RemoteObject, method_call
    from tests.integration.xenmgr_signals import SignalRecorder

    tmp = tempfile.TemporaryDirectory(prefix="oxt-bench-xenmgr-")
    state = Path(tmp.name)
    dom0: subprocess.Popen[bytes] | None = None
    echo: subprocess.Popen[str] | None = None
    sim_started = False
    try:
        (state / "oxt.toml").write_text(CONFIG.format(state=state))
        sim = subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state",
                              str(state / "simhost"), "--memory-mib",
                              str((64 + 96 + 16) * 60 + 4096)],  # VM, stub domain, slack
                             capture_output=True, cwd=ROOT, timeout=60)
        if sim.returncode != 0:
            raise SystemExit(f"oxt-simhost: {sim.stderr.decode()}")
        sim_started = True
        xenstored = json.loads(sim.stdout)["xenstored_socket"]
        ready = state / "ready.json"
        dom0 = subprocess.Popen([sys.executable, "-m", "supervision.dom0", "--config",
                                 str(state / "oxt.toml"), "--ready-file", str(ready)],
                                cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=open(state / "dom0.log", "wb"))
        deadline = time.monotonic() + 60
        while not ready.exists():
            if dom0.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("oxt-supervisor did not start:\n"
                                 + (state / "dom0.log").read_text()[-2000:])
            time.sleep(0.05)
        address = json.loads(ready.read_text())["bus"]
        echo = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "dbus.py"),
                                 "--serve", "bare", address, ECHO, "0"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert echo.stdout is not None
        if not echo.stdout.readline().startswith("READY"):
            raise SystemExit("the echo service did not start")
        conn = BusConnection(address)
        root = RemoteObject(conn, XENMGR, "/", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                root.call(XENMGR, "list_vms")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        small = json.dumps({"slot": "-1", "config": {"memory": "64"}})
        have = len(root.call(XENMGR, "list_vms")[0])
        paths = [str(root.call(XENMGR, "create_vm_with_template_and_json", "ss",
                               "new-vm-empty", small)[0]) for _ in range(n_vms - have)]
        if not args.shutdown_only:
            echo_msg = method_call(ECHO, "/bench", "org.openxt.Bench", "Echo", "s", ("x" * 32,))
            for _ in range(200):  # warm up
                conn.call(echo_msg, 10)
                root.call(XENMGR, "list_vms")
            t_echo = _median_rounds(lambda: conn.call(echo_msg, 10), n_calls, rounds)
            t_list = _median_rounds(lambda: root.call(XENMGR, "list_vms"), n_calls, rounds)
            vm = RemoteObject(conn, XENMGR, paths[0], timeout=60)
            t_getall = _median_rounds(lambda: vm.get_all(VM), n_calls // 2, rounds)

            def create_delete() -> None:
                p = str(root.call(XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-empty",
                                  small)[0])
                RemoteObject(conn, XENMGR, p, timeout=60).call(VM, "delete")
            t_create = _median_rounds(create_delete, 10 if args.quick else 30, rounds)

            clients = paths[:50]
            with SignalRecorder(address) as rec:
                def client(path: str) -> None:
                    c = BusConnection(address)
                    try:
                        obj = RemoteObject(c, XENMGR, path, timeout=60)
                        for _ in range(2 if args.quick else 4):
                            obj.call(VM, "start")
                            obj.call(VM, "destroy")
                    finally:
                        c.close()
                t0 = time.perf_counter()
                threads = [threading.Thread(target=client, args=(p,)) for p in clients]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(300)
                elapsed = time.perf_counter() - t0
                time.sleep(0.5)
                delivered = len(rec.signals)
        n_shut = 20 if args.quick else 50
        shut = _host_shutdown(address, xenstored, paths[:n_shut], args.reps)
        conn.close()
        if not args.shutdown_only:
            print(f"echo round trip                 {t_echo * 1e6:8.0f} µs")
            print(f"list_vms ({n_vms} VMs)             {t_list * 1e6:8.0f} µs  "
                  f"ratio {t_list / t_echo:5.2f}x  (target <= 2x)")
            print(f"GetAll of one VM                {t_getall * 1e6:8.0f} µs  "
                  f"ratio {t_getall / t_echo:5.2f}x  (target <= 3x)")
            print(f"create_vm_with_template+delete  {t_create * 1e3:8.1f} ms")
            print(f"signals delivered, 50 clients   {delivered / elapsed:8.0f} /s  "
                  f"({delivered} in {elapsed:.1f} s)")
        _report_shutdown(n_shut, shut)
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping", file=sys.stderr)
        return 130
    finally:
        if echo is not None and echo.stdin is not None:
            echo.stdin.close()
        _stop(echo)
        _stop(dom0)  # type: ignore[arg-type]
        if sim_started:
            subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state",
                            str(state / "simhost"), "--stop"], capture_output=True,
                           timeout=60, cwd=ROOT)
        tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
