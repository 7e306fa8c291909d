"""SIGKILL the process that runs 20 VM monitors, start it again: every domain adopted, none
duplicated, none lost; deaths that happened meanwhile get their on_* action exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.xen_fixtures import xen_tree
from xen.hypervisor import ShutdownReason, SimBackend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("vm_tree_proc.py")
N = 20


def run_tree(state: Path, mode: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(state), str(N), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"tree process did not come up: {line!r}")
    return proc, json.loads(line[len("READY "):])


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Any]:
    with xen_tree(tmp_path, start_tree=False) as tree:
        yield tree


def live(hv: SimBackend, vm: str) -> list[int]:
    return [i.domid for i in hv.find_by_handle(uuidlib.UUID(vm))
            if not i.dying and not i.shutdown]


def test_sigkill_with_20_running_vms(host: Any) -> None:
    state = host.state
    proc, first = run_tree(state, "create")
    kill(proc)
    assert len(first) == N and all(s == "running" for s, _ in first.values())
    hv = SimBackend(str(state / "hv" / "socket"))
    try:
        # while nobody watches: one guest crashes, one powers off, one is destroyed outside
        vms = sorted(first)
        crashed, powered_off, destroyed = vms[0], vms[1], vms[2]
        host.hypervisor.crash(first[crashed][1])
        host.hypervisor.guest_shutdown(first[powered_off][1], ShutdownReason.POWEROFF)
        hv.destroy(first[destroyed][1])
        proc, second = run_tree(state, "resume")
        try:
            assert sorted(second) == vms  # none lost
            for vm in vms:
                status, domid = second[vm]
                if vm == crashed:       # on_crash = restart: a new domain, exactly one
                    deadline = time.monotonic() + 10
                    while len(live(hv, vm)) != 1 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    assert len(live(hv, vm)) == 1 and live(hv, vm)[0] != first[vm][1]
                elif vm in (powered_off, destroyed):  # destroy / no action
                    assert status == "shutdown" and domid == -1
                    assert live(hv, vm) == []
                else:                   # adopted untouched
                    assert (status, domid) == ("running", first[vm][1])
                    assert live(hv, vm) == [domid]
            # a second SIGKILL right away changes nothing: actions were applied once
            kill(proc)
            proc, third = run_tree(state, "resume")
            for vm in vms:
                if vm not in (powered_off, destroyed):
                    assert len(live(hv, vm)) == 1
            assert third[powered_off][0] == "shutdown"
            total = sum(len(live(hv, vm)) for vm in vms)
            assert total == N - 2
        finally:
            kill(proc)
    finally:
        hv.close()
