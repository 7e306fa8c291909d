"""Profile rpc-proxy's per-message path in-process with cProfile.

One private dbus-daemon, the bare echo service of ``benchmarks/dbus.py`` (its own process), a
proxy instance (``-w -d 0``, or with ``--rules FILE`` and ``-d 5``) in this process, and a
client loop of sequential calls through it. The proxy's pump thread of the client runs
under its own ``cProfile.Profile``; its stats are printed (top ``--top`` by
own time). Run: ``.venv/bin/python benchmarks/proxy_profile.py [--calls N]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cleanup import cleaning_up, run
from benchmarks.dbus import sequential

ECHO = "org.openxt.bench.Echo"
HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    import actors
    from rpc.dbus import BusConnection, CallerIdentity, IdentityService, start_bus
    from rpc.proxy import parse_options, proxy_instance_spec
    from rpc.proxy._client import ProxyClient
    from supervision import Strategy, Supervisor, SupFlags
    from supervision.dom0._proxies import forwarding_to

    profiles: list[cProfile.Profile] = []

    def profiled(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any) -> Any:
            prof = cProfile.Profile()
            profiles.append(prof)
            prof.enable()
            try:
                return fn(self)
            finally:
                prof.disable()
        return wrapper

    ProxyClient._pump_loop = profiled(ProxyClient._pump_loop)  # type: ignore[method-assign]
    directory = Path(tempfile.mkdtemp(prefix="oxt-prof-proxy-"))
    try:
        with cleaning_up() as procs:
            _bus, address = procs.adopt(*start_bus(directory, ("org.openxt",)))
            ident = IdentityService.start(address, CallerIdentity())
            assert actors.actor_of(ident).wait_started(10)
            echo = procs.spawn([sys.executable, str(HERE / "dbus.py"), "--serve", "bare",
                                address, ECHO, "0"], stdout=subprocess.PIPE, text=True)
            assert echo.stdout is not None and echo.stdout.readline().startswith("READY")
            sock = directory / "p.sock"
            options = forwarding_to(parse_options(["-i", f"unix:{sock}", "-w", "-d", "0"]),
                                    address)
            root = Supervisor.start_root(SupFlags(Strategy.ONE_FOR_ONE), [
                proxy_instance_spec("proxy", options, address, registry=CallerIdentity(),
                                    supervisor_path="/proxy")])
            deadline = time.monotonic() + 10
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            conn = BusConnection(f"unix:path={sock}")
            sequential(conn, ECHO, 200)
            for prof in profiles:
                prof.clear()  # drop the warm-up and setup
            t0 = time.process_time()
            rate = sequential(conn, ECHO, args.calls)
            cpu = time.process_time() - t0
            conn.close()
            sup = actors.actor_of(root)
            sup.request_stop()
            sup.wait_dead(30)
            ident.stop(block=True, timeout=5)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{rate:,.0f} calls/s, process CPU (client + proxy + profiler) "
          f"{cpu / args.calls * 1e6:.0f} µs per call")
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
