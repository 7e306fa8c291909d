"""Resume snapshots survive a SIGKILL of the whole process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("resume_tree.py")


def run_until(state: Path, n_dynamic: int, increments: int) -> tuple[dict[str, object], bool]:
    """Start the tree, wait for DONE, SIGKILL it; returns the resumed counts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(state), str(n_dynamic), str(increments)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("READY "), ready
        counts = json.loads(ready[len("READY "):])
        done = proc.stdout.readline().strip() == "DONE"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return counts, done


def test_counts_survive_sigkill(tmp_path: Path) -> None:
    report, done = run_until(tmp_path, n_dynamic=3, increments=5)
    assert done and report["resumed"] == []
    assert report["counts"] == {"/counter": 0, "/vms/vm0": 0, "/vms/vm1": 0, "/vms/vm2": 0}
    report, done = run_until(tmp_path, n_dynamic=3, increments=2)
    # the dynamic children came back by themselves, from their snapshots
    assert report["resumed"] == ["vm0", "vm1", "vm2"]
    assert report["counts"] == {"/counter": 5, "/vms/vm0": 5, "/vms/vm1": 5, "/vms/vm2": 5}
    report, _ = run_until(tmp_path, n_dynamic=3, increments=0)
    assert report["counts"] == {"/counter": 7, "/vms/vm0": 7, "/vms/vm1": 7, "/vms/vm2": 7}
