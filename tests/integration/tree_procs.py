"""Running a VM tree in its own process for the SIGKILL tests: start ``one_vm_tree_proc.py``
(any VM config, see its docstring) and read its READY line; kill a tree process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from xen.sim import SimHost

__all__ = ["kill", "run_vm_tree"]

ROOT = Path(__file__).resolve().parents[2]
VM_TREE = Path(__file__).with_name("one_vm_tree_proc.py")


def run_vm_tree(state: Path, host: SimHost, mode: str, vm: str,
                config: Path) -> tuple[subprocess.Popen[str], str, int, int]:
    """Start ``one_vm_tree_proc.py`` in ``mode`` (create, resume, destroy) for VM ``vm``; the
    process, the VM's status, its domid and its stub domain's (-1: none) once it printed
    READY."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(VM_TREE), str(state), host.xenstore_path, host.hypervisor_path,
         mode, vm, str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        kill(proc)
        raise AssertionError(f"tree process did not come up: {line!r}")
    _, status, domid, stub = line.split()
    return proc, status, int(domid), int(stub)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` if it still runs, reap it (bounded) and close its stdout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
