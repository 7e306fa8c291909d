"""Benchmark the dom0 supervisor as its own process, on a simulated host (own process too).

* cold start to ready with 0 VMs defined, and with 100 VMs defined (resumed from their
  snapshots, adopting 100 running domains);
* memory (RSS) of the whole tree with 100 running sim VMs, and per VM;
* control-socket request round trip (``stats``) vs a bare unix-socket echo in the same run
  [target <= 4x], served by a thread of this process; for information, also vs the same echo
  served by another process, as the control socket is.

Run: ``.venv/bin/python benchmarks/supervisor.py [--quick]``. Interrupted (Ctrl-C, SIGTERM), it
stops the supervisor and the simulated host it started (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._cleanup import Processes, cleaning_up, run  # noqa: E402
from supervision.control import ControlClient  # noqa: E402
from tests.integration.xen_fixtures import vm_config  # noqa: E402

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
"""


def start_dom0(procs: Processes, state: Path
               ) -> tuple[subprocess.Popen[bytes], float, dict[str, str]]:
    ready = state / "ready.json"
    ready.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = procs.spawn([sys.executable, "-m", "supervision.dom0", "--config",
                        str(state / "oxt.toml"), "--ready-file", str(ready)], grace=20.0,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    while not ready.exists():
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            raise SystemExit("the supervisor did not start")
        time.sleep(0.005)
    return proc, time.perf_counter() - t0, json.loads(ready.read_text())


def start_simhost(procs: Processes, sim_dir: Path, memory_mib: int) -> subprocess.Popen[bytes]:
    """The simulated host in the foreground of its own process (the supervisor adopts it)."""
    info = sim_dir / "simhost.json"
    with open(f"{sim_dir}.log", "wb") as log:
        proc = procs.spawn([sys.executable, "-m", "xen.sim.simhost", "--state", str(sim_dir),
                            "--foreground", "--memory-mib", str(memory_mib)], grace=30.0,
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = Path(f"{sim_dir}.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"oxt-simhost did not start:\n{tail}")
        time.sleep(0.01)
    return proc


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def echo_rtt(n: int) -> float:
    """Median round trip of a bare unix-socket echo (thread server), seconds."""
    path = tempfile.mktemp(prefix="oxt-echo-")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        while data := conn.recv(4096):
            conn.sendall(data)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    median = _echo_median(path, n)
    t.join(5)
    srv.close()
    os.unlink(path)
    return median


def _echo_median(path: str, n: int) -> float:
    """Median round trip of ``n`` 64-byte messages to the echo at ``path``, seconds."""
    cli = socket.socket(socket.AF_UNIX)
    cli.connect(path)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        cli.sendall(b"x" * 64)
        cli.recv(4096)
        samples.append(time.perf_counter() - t0)
    cli.close()
    return statistics.median(samples)


_ECHO_SERVER = """
import socket, sys
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
while data := conn.recv(4096):
    conn.sendall(data)
"""


def echo_rtt_process(procs: Processes, n: int) -> float:
    """Median round trip of a bare unix-socket echo served by another process, seconds (the
    control socket's server is another process too: its wake-ups cost more than a thread's)."""
    path = tempfile.mktemp(prefix="oxt-echo-")
    proc = procs.spawn([sys.executable, "-c", _ECHO_SERVER, path], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        median = _echo_median(path, n)
        proc.wait(10)
    finally:
        procs.stop(proc)
        Path(path).unlink(missing_ok=True)
    return median


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_vms = 30 if args.quick else 100
    with cleaning_up() as procs, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        (state / "oxt.toml").write_text(CONFIG.format(state=state))
        simhost = start_simhost(procs, state / "simhost", n_vms * 40 + 2048)
        proc, cold0, info = start_dom0(procs, state)
        base_rss = rss_mib(proc.pid)
        with ControlClient(info["control"], timeout=120) as ctl:
            for i in range(n_vms):
                vm = f"00000000-0000-4000-8000-{i:012x}"
                ctl.call("vm.add", uuid=vm, config=vm_config(f"vm{i}", memory=32))
                ctl.call("vm.task", uuid=vm, task="start", params={}, timeout=120, wait=130)
            time.sleep(1.0)
            full_rss = rss_mib(proc.pid)
            rtts = []
            for _ in range(300 if args.quick else 2000):
                t0 = time.perf_counter()
                ctl.call("stats", path="/vms")
                rtts.append(time.perf_counter() - t0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        proc, cold_n, _ = start_dom0(procs, state)  # every monitor resumes and adopts
        with ControlClient(info["control"]) as ctl:
            tree = ctl.call("tree")
        vms = [c for c in next(c for c in tree["children"] if c["id"] == "vms")["tree"]["children"]
               if c["id"].startswith("00000000-0000-4000-8000-")]  # not xenmgr's service VMs
        assert len(vms) == n_vms, len(vms)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        procs.stop(simhost)
        echo = echo_rtt(2000)
        echo_proc = echo_rtt_process(procs, 2000)
    ctl_rtt = statistics.median(rtts)
    print(f"cold start to ready   0 VMs {cold0:6.2f} s   {n_vms} VMs defined {cold_n:6.2f} s "
          f"(resumed and adopted)")
    print(f"memory of the tree    {base_rss:.1f} MiB idle, {full_rss:.1f} MiB with {n_vms} "
          f"running VMs ({(full_rss - base_rss) * 1024 / n_vms:.0f} KiB per VM)")
    print(f"control round trip    stats {ctl_rtt * 1e6:.0f} µs   bare unix echo "
          f"{echo * 1e6:.0f} µs   ratio {ctl_rtt / echo:.1f}x  (target <= 4x)")
    print(f"                      (the echo served by another process {echo_proc * 1e6:.0f} µs:"
          f" ratio {ctl_rtt / echo_proc:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
