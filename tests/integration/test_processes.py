"""The process ledger against real processes: records, reaping after an owner's SIGKILL,
detached processes left alone, reused pids never signalled, the parent-death signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from supervision import (
    ProcessLedger,
    die_with_parent,
    process_alive,
    process_start_time,
    stop_process,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

_OWNER = """
import subprocess, sys, time
from supervision import ProcessLedger
ledger = ProcessLedger(sys.argv[1])
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
ledger.record("worker", child.pid, ["sleep", "300"], kind=sys.argv[2])
print(child.pid, flush=True)
time.sleep(300)
"""


def _owner_leaves_a_child(tmp_path: Path, kind: str) -> int:
    """A process records a child of its own, then is SIGKILLed: returns the child's pid."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path), kind],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    owner.kill()
    owner.wait(10)
    owner.stdout.close()
    return pid


def test_record_survives_a_reread_and_names_the_owner(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "300"])
    try:
        ledger = ProcessLedger(tmp_path)
        rec = ledger.record("sleeper", child.pid, ["sleep", "300"])
        again = ProcessLedger(tmp_path).get("sleeper")
        assert again == rec
        assert rec.owner_pid == os.getpid() and rec.owner_alive and rec.alive
        assert [r.name for r in ledger.records()] == ["sleeper"]
    finally:
        child.kill()
        child.wait(5)
    assert not rec.alive


def test_reap_stops_an_owned_process_whose_owner_died(tmp_path: Path) -> None:
    pid = _owner_leaves_a_child(tmp_path, "owned")
    start = process_start_time(pid)
    assert start is not None
    ledger = ProcessLedger(tmp_path)
    stopped = ledger.reap()
    assert [r.pid for r in stopped] == [pid]
    assert not process_alive(pid, start)
    assert ledger.records() == []


def test_reap_leaves_a_detached_process_running(tmp_path: Path) -> None:
    pid = _owner_leaves_a_child(tmp_path, "detached")
    start = process_start_time(pid)
    assert start is not None
    try:
        ledger = ProcessLedger(tmp_path)
        assert ledger.reap() == []
        assert process_alive(pid, start)
        assert ledger.stop("worker")  # the one who decides stops it
        assert not process_alive(pid, start)
        assert ledger.get("worker") is None
    finally:
        stop_process(pid, start, 1.0)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "300"])
    try:
        ledger = ProcessLedger(tmp_path)
        rec = ledger.record("sleeper", child.pid, ["sleep", "300"])
        path = tmp_path / "sleeper.json"
        data = json.loads(path.read_text())
        data["start_time"] = rec.start_time - 1  # as if the pid now belonged to someone else
        data["owner_pid"] = 999_999_999  # and its owner were dead
        path.write_text(json.dumps(data))
        assert ledger.reap() == []
        assert child.poll() is None  # untouched
        assert ledger.get("sleeper") is None  # forgotten: its process is gone
    finally:
        child.kill()
        child.wait(5)


def test_an_unreadable_record_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    ledger = ProcessLedger(tmp_path)
    assert ledger.records() == []
    assert (tmp_path / "broken.json.bad").exists()
    with pytest.raises(ValueError, match="bad process name"):
        ledger.record("../escape", os.getpid(), ["x"])


def test_stop_process_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "print('ready', flush=True)\n"
                                 "time.sleep(300)"], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    start = process_start_time(stubborn.pid)
    assert start is not None
    assert stop_process(stubborn.pid, start, timeout=0.3)  # it ignores SIGTERM
    assert stubborn.wait(5) == -signal.SIGKILL
    stubborn.stdout.close()


_PARENT = """
import subprocess, sys, time
from supervision import die_with_parent
child = subprocess.Popen(die_with_parent(["sleep", "300"]))
print(child.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(die_with_parent(["x"]) == ["x"], reason="no setpriv on this system")
def test_a_process_started_with_die_with_parent_goes_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parents[2])
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    start = process_start_time(pid)
    assert start is not None
    # setpriv sets the signal, then execs: kill the parent only once it has (before that, no
    # tool can tell the parent died; the process ledger is the net for that window)
    wait_until(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", timeout=10)
    parent.kill()
    parent.wait(10)
    parent.stdout.close()
    try:
        wait_until(lambda: not process_alive(pid, start), timeout=10)
    finally:
        stop_process(pid, start, 1.0)
