"""Benchmark xec's start-up: wall time of one method call vs ``python -c pass``.

A private dbus-daemon and the test EchoService run in this process; each round runs, as
child processes, ``python -c pass`` and the installed ``xec`` console script calling
``echo_s`` on the EchoService (as a user would type it: no ``-q``, so the syslog line is
included), alternately. Both use this interpreter (the venv's, which is what the console
script runs) and the same environment: ``.pyc`` files are written to a private cache
directory (``PYTHONPYCACHEPREFIX``) during warm-up runs, so the measured runs load compiled
code. The median of each is reported and their ratio [target <= 1.3x, issue 16]. The same call
with ``XEC_FULL_PATH=1`` (xec's full path: jeepney, the XML model; see docs/xec.md) is timed
in the same rounds, for reference (no target).

Run: ``.venv/bin/python benchmarks/xec.py [--quick] [--json]``. Interrupted (Ctrl-C, SIGTERM),
it stops the bus and the command it was timing (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._cleanup import cleaning_up, run  # noqa: E402


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit of ``argv``; the command must succeed."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def xec_command() -> list[str]:
    script = Path(sys.executable).parent / "xec"
    if not script.exists():
        raise SystemExit(f"{script} is missing: run `.venv/bin/pip install -e .` first")
    return [str(script)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    rounds = 15 if args.quick else 60

    import actors
    from rpc.dbus import start_bus
    from tests.integration.dbus_test_service import PATH, SERVICE, EchoService

    with cleaning_up() as procs, tempfile.TemporaryDirectory(prefix="xec-bench-") as tmp:
        proc, address = procs.adopt(*start_bus(Path(tmp), own_prefixes=("org.test",)))
        ref = EchoService.start(address)
        try:
            if not actors.actor_of(ref).wait_started(5):
                raise SystemExit("EchoService did not start")
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address,
                       PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            baseline = [sys.executable, "-c", "pass"]
            full_env = dict(env, XEC_FULL_PATH="1")
            xec = [*xec_command(), "-s", SERVICE, "-o", PATH, "echo-s", "x"]
            for _ in range(3):  # warm-up: writes the .pyc files
                wall(baseline, env)
                wall(xec, env)
                wall(xec, full_env)
            base_times: list[float] = []
            xec_times: list[float] = []
            full_times: list[float] = []
            for _ in range(rounds):
                base_times.append(wall(baseline, env))
                xec_times.append(wall(xec, env))
                full_times.append(wall(xec, full_env))
        finally:
            ref.stop(block=True, timeout=5)
            procs.stop(proc)
            if proc.stderr is not None:
                proc.stderr.close()

    base = statistics.median(base_times) * 1000
    ours = statistics.median(xec_times) * 1000
    full = statistics.median(full_times) * 1000
    figures = {"xec_call_ms": ours, "python_pass_ms": base, "ratio": ours / base,
               "xec_full_path_ms": full, "full_path_ratio": full / base,
               "rounds": rounds, "target": "<= 1.3"}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"xec one method call  median {ours:.1f} ms   python -c pass  median {base:.1f} ms   "
          f"ratio {ours / base:.2f}  (target <= 1.30, {rounds} rounds)")
    print(f"  for reference: the full path (XEC_FULL_PATH=1)  median {full:.1f} ms   "
          f"ratio {full / base:.2f}  (no target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
