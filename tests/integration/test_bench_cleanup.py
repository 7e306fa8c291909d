"""Benchmarks stop what they started when SIGTERM or SIGINT ends them (benchmarks/_cleanup.py).

A real benchmark (``benchmarks/dbus.py --quick``: a private dbus-daemon and three echo services
in their own sessions) runs in its own session; once its helper processes exist, the test
records every process whose parent chain leads to the benchmark, or whose session or group is
the benchmark's or one of theirs, sends the signal (SIGTERM to the benchmark, as ``timeout``
or ``kill`` would; SIGINT to its process group, as Ctrl-C at a terminal would), and asserts
that the benchmark exits with 128 + the signal and that none of the recorded processes is
left. A small script checks that a daemon which left the benchmark's session is found too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Proc:
    """A process as /proc shows it; ``start`` (clock ticks after boot) tells a reused pid."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int


def processes() -> dict[int, Proc]:
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if fields[0] in ("Z", "X"):  # ended, not reaped yet
            continue
        out[int(name)] = Proc(int(name), int(fields[1]), int(fields[2]), int(fields[3]),
                              int(fields[19]))
    return out


def family(root: int) -> set[Proc]:
    """The processes whose parent chain leads to ``root``, or whose session or group is
    ``root``'s or one of theirs (``root`` excluded)."""
    procs = processes()
    members = {root}
    grew = True
    while grew:
        grew = False
        for p in procs.values():
            if p.pid not in members and (p.ppid in members or p.sid in members
                                         or p.pgid in members):
                members.add(p.pid)
                grew = True
    return {procs[pid] for pid in members - {root} if pid in procs}


def left(recorded: set[Proc]) -> set[Proc]:
    """Those of ``recorded`` still running (same pid and start time)."""
    now = processes()
    return {p for p in recorded if p.pid in now and now[p.pid].start == p.start}


def kill_all(recorded: set[Proc]) -> None:
    for p in left(recorded):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Bench:
    proc: subprocess.Popen[bytes]
    stderr: Path
    recorded: set[Proc]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """``benchmarks/dbus.py --quick`` in its own session, once the bus and a service run."""
    err = tmp_path / "stderr"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "dbus.py"),
                                 "--quick"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    recorded: set[Proc] = set()
    try:
        wait_until(lambda: len(family(proc.pid)) >= 2 or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, err.read_text()
        recorded = family(proc.pid)
        names = {Path(f"/proc/{p.pid}/exe").resolve().name for p in left(recorded)}
        assert "dbus-daemon" in names, names
        yield Bench(proc, err, recorded)
    finally:
        proc.kill()
        proc.wait(10)
        kill_all(recorded)


def _assert_cleaned_up(bench: Bench, sig: int) -> None:
    assert bench.proc.wait(30) == 128 + sig, bench.stderr.read_text()
    assert f"interrupted by {signal.Signals(sig).name}" in bench.stderr.read_text()
    wait_until(lambda: not left(bench.recorded), timeout=5)  # our reaped orphans: init's


def test_sigterm_stops_what_the_benchmark_started(bench: Bench) -> None:
    bench.proc.send_signal(signal.SIGTERM)
    _assert_cleaned_up(bench, signal.SIGTERM)


def test_ctrl_c_stops_what_the_benchmark_started(bench: Bench) -> None:
    os.killpg(bench.proc.pid, signal.SIGINT)  # the terminal's foreground group
    _assert_cleaned_up(bench, signal.SIGINT)


SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    from benchmarks._cleanup import cleaning_up, run

    def main() -> int:
        with cleaning_up() as procs:
            procs.spawn(["sleep", "60"])
            r, w = os.pipe()  # close-on-exec: EOF once the daemon has exec'd
            if os.fork() == 0:  # a daemon: its own session, its parent gone at once
                if os.fork() == 0:
                    os.setsid()
                    os.execvp("sleep", ["sleep", "61"])
                os._exit(0)
            os.close(w)
            os.read(r, 1)
            os.wait()
            print("READY", flush=True)
            time.sleep(60)
        return 0

    sys.exit(run(main))
""")


def test_a_daemon_that_left_the_session_is_found_by_its_marker(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    recorded: set[Proc] = set()
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"READY\n"
        marker = f"OXT_BENCH_RUN={proc.pid}-".encode()
        daemons = {p for p in processes().values()
                   if p.sid == p.pid and p.pid != proc.pid and any(
                       entry.startswith(marker) for entry in _environ(p.pid).split(b"\0"))}
        recorded = family(proc.pid) | daemons
        assert len(daemons) == 2, daemons  # the sleep (spawned) and the daemon (escaped)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 128 + signal.SIGTERM
        assert time.monotonic() - start < 10
        wait_until(lambda: not left(recorded), timeout=5)
    finally:
        proc.kill()
        proc.wait(10)
        kill_all(recorded)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""
