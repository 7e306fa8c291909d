"""Benchmark rpc-proxy beside xdg-dbus-proxy on the same bus, in the same run.

One private dbus-daemon, a bare jeepney echo service (``benchmarks/dbus.py --serve bare``), the
caller-identity service (in this process), and two proxies as their own processes, each on its
own unix socket: ``xdg-dbus-proxy BUS SOCK`` (no filter) and ``rpc-proxy -i unix:SOCK -o
unix:BUS -w -d 0`` (no rules: the forwarding cost; identity registration, serial remapping
and the always-denied checks still run). One client process measures.

Method: the round trips of every path are interleaved call by call (each step makes one call
through every path, in a fresh random order), so a change of the machine's load while the
benchmark runs hits every path alike, and no path always follows the same other one. Each
call is timed on its own; a path's round trip is the median of its calls (the p90 and the mean
are printed too, for the tail). Each round (``--rounds``) is ``--calls`` steps; the ratio of
every round is printed beside the ratio of all calls together.

* added median round-trip latency over the direct path: ours vs xdg [target <= 2x];
* proxy CPU per call (utime + stime of the proxy process over the interleaved calls, which
  are the only traffic it has; the median of the rounds): ours vs xdg [target <= 2x];
* calls/s with 32 in flight through each (one path after another, the order rotating each
  round);
* JSON round trip vs raw through rpc-proxy: two more rpc-proxy processes, ``--json-in`` (NUL
  framed) and ``--websockets-in``, the same echo call sent as JSON (with ``dbus-signature``, so
  no introspection) by a minimal blocking client, one call at a time (interleaved with the
  others).

Prints the target beside each figure; exits non-zero only when it cannot run (xdg-dbus-proxy
missing is reported and its figures skipped). Run: ``.venv/bin/python benchmarks/proxy.py
[--quick] [--calls N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cleanup import cleaning_up, run
from benchmarks.dbus import IFACE, PAYLOAD, in_flight

ECHO = "org.openxt.bench.Echo"
HERE = Path(__file__).resolve().parent


def cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_socket(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {path}")
        time.sleep(0.05)


class JsonEcho:
    """A minimal blocking JSON client of rpc-proxy (NUL-framed, or WebSocket via wsproto)."""

    def __init__(self, path: Path, websocket: bool) -> None:
        import socket
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10.0)
        self.sock.connect(str(path))
        self.ws = None
        self.buf = b""
        self.serial = 0
        if websocket:
            from wsproto import ConnectionType, WSConnection
            from wsproto.events import Request
            self.ws = WSConnection(ConnectionType.CLIENT)
            from wsproto.events import AcceptConnection
            self.sock.sendall(self.ws.send(Request(host="localhost", target="/")))
            accepted = False
            while not accepted:
                data = self.sock.recv(65536)
                if not data:
                    raise RuntimeError("the proxy refused the WebSocket")
                self.ws.receive_data(data)
                accepted = any(isinstance(e, AcceptConnection) for e in self.ws.events())
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "Hello", [], "")

    def _texts(self) -> list[str]:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the proxy closed the JSON connection")
        if self.ws is None:
            self.buf += data
            *texts, self.buf = self.buf.split(b"\0")
            return [t.decode() for t in texts]
        from wsproto.events import TextMessage
        self.ws.receive_data(data)
        return [e.data for e in self.ws.events() if isinstance(e, TextMessage)]

    def call(self, dest: str, path: str, iface: str, method: str, args: list[object],
             signature: str) -> dict[str, object]:
        import json
        self.serial += 1
        text = json.dumps({"id": self.serial, "destination": dest, "path": path,
                           "interface": iface, "method": method, "args": args,
                           "dbus-signature": signature})
        if self.ws is None:
            self.sock.sendall(text.encode() + b"\0")
        else:
            from wsproto.events import TextMessage
            self.sock.sendall(self.ws.send(TextMessage(data=text)))
        want = str(self.serial)
        while True:
            for t in self._texts():
                msg = json.loads(t)
                if msg.get("response-to") == want:
                    return dict(msg)

    def echo(self) -> None:
        """One echo call, waiting for its reply."""
        self.call(ECHO, "/bench", IFACE, "Echo", [PAYLOAD], "s")


def interleaved(steps: dict[str, Callable[[], object]], n: int, rng: random.Random
                ) -> dict[str, list[float]]:
    """``n`` round trips through every path of ``steps``, interleaved call by call in a fresh
    random order each time; each path's round trips in seconds."""
    samples: dict[str, list[float]] = {p: [] for p in steps}
    order = list(steps)
    clock = time.perf_counter
    for _ in range(n):
        rng.shuffle(order)
        for p in order:
            step = steps[p]
            t0 = clock()
            step()
            samples[p].append(clock() - t0)
    return samples


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, help="interleaved steps per round")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import actors
    from rpc.dbus import (
        BusConnection,
        CallerIdentity,
        IdentityService,
        method_call,
        socket_path,
        start_bus,
    )

    n = args.calls or (1000 if args.quick else 5000)
    rounds = args.rounds or (3 if args.quick else 5)
    rng = random.Random(args.seed)
    xdg = shutil.which("xdg-dbus-proxy")
    ours_bin = Path(sys.executable).parent / "rpc-proxy"
    directory = Path(tempfile.mkdtemp(prefix="oxt-bench-proxy-"))
    paths = ["direct", "ours", *(["xdg"] if xdg else [])]
    json_paths = ["json", "websocket"]
    lat: dict[str, list[float]] = {p: [] for p in [*paths, *json_paths]}
    round_lat: list[dict[str, float]] = []
    par: dict[str, list[float]] = {p: [] for p in paths}
    cpus: dict[str, list[float]] = {p: [] for p in paths if p != "direct"}
    ident = None
    try:
        with cleaning_up() as procs:
            _bus, address = procs.adopt(*start_bus(directory, ("org.openxt",)))
            ident = IdentityService.start(address, CallerIdentity())
            assert actors.actor_of(ident).wait_started(10)
            echo = procs.spawn([sys.executable, str(HERE / "dbus.py"), "--serve", "bare",
                                address, ECHO, "0"], stdout=subprocess.PIPE, text=True)
            assert echo.stdout is not None and echo.stdout.readline().startswith("READY")
            bus_path = socket_path(address)
            proxies: dict[str, subprocess.Popen[str]] = {}
            ours_sock = directory / "ours.sock"
            proxies["ours"] = procs.spawn([str(ours_bin), "-i", f"unix:{ours_sock}", "-o",
                                           f"unix:{bus_path}", "-w", "-d", "0"], text=True)
            wait_socket(ours_sock)
            socks = {"direct": address, "ours": f"unix:path={ours_sock}"}
            if xdg:
                xdg_sock = directory / "xdg.sock"
                proxies["xdg"] = procs.spawn([xdg, address, str(xdg_sock)], text=True)
                wait_socket(xdg_sock)
                socks["xdg"] = f"unix:path={xdg_sock}"
            for p, flag in (("json", "--json-in"), ("websocket", "--websockets-in")):
                sock = directory / f"{p}.sock"
                proxies[p] = procs.spawn([str(ours_bin), "-i", f"unix:{sock}", "-o",
                                          f"unix:{bus_path}", "-w", "-d", "0", flag], text=True)
                wait_socket(sock)
            jsons = {p: JsonEcho(directory / f"{p}.sock", p == "websocket") for p in json_paths}
            conns = {p: BusConnection(socks[p]) for p in paths}
            msg = method_call(ECHO, "/bench", IFACE, "Echo", "s", (PAYLOAD,))
            steps: dict[str, Callable[[], object]] = {
                **{p: functools.partial(conns[p].call, msg, 10.0) for p in paths},
                **{p: jsons[p].echo for p in json_paths}}
            interleaved(steps, 300, rng)  # warm-up
            for r in range(rounds):
                before = {p: cpu(proxies[p].pid) for p in cpus}
                samples = interleaved(steps, n, rng)
                for p in cpus:
                    cpus[p].append((cpu(proxies[p].pid) - before[p]) / n)
                for p, values in samples.items():
                    lat[p].extend(values)
                round_lat.append({p: statistics.median(v) for p, v in samples.items()})
                for i in range(len(paths)):
                    p = paths[(i + r) % len(paths)]
                    par[p].append(in_flight(conns[p], ECHO, n))
            for j in jsons.values():
                j.sock.close()
            for conn in conns.values():
                conn.close()
            ident.stop(block=True, timeout=5)  # before the bus goes
            ident = None
    finally:
        if ident is not None:
            ident.stop(block=True, timeout=5)
        shutil.rmtree(directory, ignore_errors=True)
    report(lat, round_lat, cpus, par, paths, json_paths, n, rounds)
    return 0


def report(lat: dict[str, list[float]], round_lat: list[dict[str, float]],
           cpus: dict[str, list[float]], par: dict[str, list[float]], paths: list[str],
           json_paths: list[str], n: int, rounds: int) -> None:
    """Print the figures, each target beside its figure (see the module docstring)."""
    med = {p: statistics.median(v) * 1e6 for p, v in lat.items()}
    mean = {p: statistics.fmean(v) * 1e6 for p, v in lat.items()}
    p90 = {p: quantile(v, 0.9) * 1e6 for p, v in lat.items()}
    print(f"{rounds} rounds x {n} calls per path, interleaved call by call")
    print(f"round trip, median        direct {med['direct']:7.0f} µs"
          f"   (p90 {p90['direct']:.0f}, mean {mean['direct']:.0f})")
    added = {p: med[p] - med["direct"] for p in paths if p != "direct"}
    for p in added:
        print(f"  added by {p:<5}          {added[p]:7.0f} µs   (median {med[p]:.0f}, "
              f"p90 {p90[p]:.0f}, mean {mean[p]:.0f})")
    if "xdg" in added:
        per_round = [(r["ours"] - r["direct"]) / (r["xdg"] - r["direct"])
                     if r["xdg"] > r["direct"] else float("nan") for r in round_lat]
        rounds_text = " ".join(f"{x:.2f}" for x in per_round)
        if added["xdg"] > 0:
            print(f"  ours / xdg              {added['ours'] / added['xdg']:7.2f}x"
                  f"   (target <= 2x; rounds {rounds_text})")
        else:
            print("  ours / xdg              n/a: the machine is too noisy (added <= 0); "
                  "rerun without --quick   (target <= 2x)")
        mean_added = (mean["ours"] - mean["direct"], mean["xdg"] - mean["direct"])
        if mean_added[1] > 0:
            print(f"  ours / xdg, by means    {mean_added[0] / mean_added[1]:7.2f}x"
                  "   (for the tail; no target)")
        c_ours, c_xdg = statistics.median(cpus["ours"]), statistics.median(cpus["xdg"])
        cpu_rounds = " ".join(f"{o / max(x, 1e-9):.2f}" for o, x in zip(cpus["ours"],
                                                                      cpus["xdg"], strict=True))
        print(f"proxy CPU per call        ours {c_ours * 1e6:6.0f} µs   xdg {c_xdg * 1e6:6.0f} µs"
              f"   ratio {c_ours / max(c_xdg, 1e-9):.2f}x   (target <= 2x; rounds {cpu_rounds})")
    else:
        print("xdg-dbus-proxy not installed (Makefile DEBS): no comparison")
    for p in paths:
        print(f"32 in flight  {p:<7}     {statistics.median(par[p]):8,.0f} calls/s")
    for p in json_paths:
        m = med[p]
        print(f"{p:<9} round trip       {m:7.0f} µs   vs raw through ours {med['ours']:.0f} µs: "
              f"{m / med['ours']:.2f}x   (added over direct {m - med['direct']:.0f} µs)")


if __name__ == "__main__":
    raise SystemExit(run(main))
